"""The feature registry: every feature the jobs compute and the state vector the policies read.

A `FeatureSpec` is the ordered state vector for a hint catalog. Its version string changes whenever
a definition, its order or the catalog changes, and it is stamped on every transitions row and on
every registered model, so a model is never fed a state it was not trained on.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from hintrl.contracts import ACTION_TYPES

SPEC_VERSION = 1

# Age bands of the stratum (gender|age band|purchase power); the upper bound is exclusive.
AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("<18", 0, 18),
    ("18-24", 18, 25),
    ("25-34", 25, 35),
    ("35-44", 35, 45),
    ("45-54", 45, 55),
    ("55+", 55, 200),
)


@dataclass(frozen=True)
class FeatureDef:
    name: str
    dtype: str
    meaning: str
    source: str  # table the value is read from
    sql_file: str  # the SQL in sql/ that computes the source column
    version: int
    state_expr: str | None = None  # SQL over the transitions join giving the state element
    # The same element computed online from the stored feature columns (serving, the simulator).
    online: Callable[[Mapping[str, Any]], float] | None = field(default=None, compare=False, repr=False)

    def definition(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "online"}


def _ctr(clicks: str, shows: str, prior_clicks: float, prior_non_clicks: float) -> str:
    return f"(COALESCE({clicks}, 0) + {prior_clicks}) / (COALESCE({shows}, 0) + {prior_clicks + prior_non_clicks})"


def _n(value: Any) -> float:
    """SQL's COALESCE(x, 0) for a number."""
    return 0.0 if value is None else float(value)


def _array_mean_sql(column: str) -> str:
    """Mean of a numeric array, nulls as 0, and 0 for an empty array."""
    return (f"COALESCE(aggregate({column}, CAST(0 AS DOUBLE), (acc, x) -> acc + COALESCE(x, CAST(0 AS DOUBLE)))"
            f" / NULLIF(size({column}), 0), 0)")


def _array_mean(values: Any) -> float:
    values = list(values or [])
    total = 0.0
    for v in values:
        total += 0.0 if v is None else float(v)
    return total / len(values) if values else 0.0


def _action_share(action: str) -> Callable[[Mapping[str, Any]], float]:
    return lambda c: sum(1 for a in (c.get("last5_action_types") or []) if a == action) / 5.0


def _ctr_online(clicks: str, shows: str, a: float, b: float) -> Callable[[Mapping[str, Any]], float]:
    return lambda c: (_n(c.get(clicks)) + a) / (_n(c.get(shows)) + a + b)


def count_features(hint_types: list[int], table: str, prefix: str, subject: str) -> list[FeatureDef]:
    """Long-term counts of one entity (user_lt: no prefix, query_lt: "query_"), before ds."""
    lt = "sql/lt_day_counts.sql"
    feats = [
        FeatureDef(f"{prefix}page_views", "bigint", f"search page views of {subject} on all days before ds", table, lt, 1),
        FeatureDef(f"{prefix}hint_shows", "bigint", f"hints shown to {subject} on all days before ds", table, lt, 1),
        FeatureDef(f"{prefix}hint_clicks", "bigint", f"hints clicked by {subject} on all days before ds", table, lt, 1),
    ]
    for k in hint_types:
        feats.append(FeatureDef(f"{prefix}shows_t{k}", "bigint", f"hints of type {k} shown to {subject} before ds", table, lt, 1))
        feats.append(FeatureDef(f"{prefix}clicks_t{k}", "bigint", f"hints of type {k} clicked by {subject} before ds", table, lt, 1))
    return feats


def table_features(hint_types: list[int]) -> list[FeatureDef]:
    """Columns of features/user_lt, features/query_lt and features/pv_rt (the stored features)."""
    rt = "sql/pv_rt.sql"
    feats = [
        FeatureDef("gender", "string", "user gender F/M/U from the latest profile snapshot at or before ds", "user_lt", "sql/user_lt_merge.sql", 1),
        FeatureDef("age", "int", "user age from the latest profile snapshot at or before ds", "user_lt", "sql/user_lt_merge.sql", 1),
        FeatureDef("purchase_power", "int", "user purchasing power 1..5", "user_lt", "sql/user_lt_merge.sql", 1),
        *count_features(hint_types, "user_lt", "", "the user"),
        *count_features(hint_types, "query_lt", "query_", "the query"),
    ]
    feats.append(FeatureDef("page", "int", "1-based page of this page view within its query", "pv_rt", rt, 1))
    for k in hint_types:
        feats.append(
            FeatureDef(
                f"clicks_last100_t{k}", "int",
                f"hint clicks of type {k} in the user's previous 100 search page views (any day)", "pv_rt", rt, 1,
            )
        )
        feats.append(
            FeatureDef(
                f"shows_last100_t{k}", "int",
                f"hints of type {k} shown in the user's previous 100 search page views (any day)", "pv_rt", rt, 1,
            )
        )
    feats.append(
        FeatureDef("shown_in_session", "array<int>", "hint types shown earlier in this (session, query)", "pv_rt", rt, 1)
    )
    last5 = "sql/pv_last5_actions.sql"
    feats += [
        FeatureDef("last5_action_types", "array<string>", "the user's last 5 action types before the page view, most recent first", "pv_rt", last5, 1),
        FeatureDef("last5_click_item_price", "array<double>", "prices of the user's last 5 clicked items, most recent first", "pv_rt", last5, 1),
        FeatureDef("last5_click_item_category", "array<int>", "categories of the user's last 5 clicked items, most recent first", "pv_rt", last5, 1),
        FeatureDef("last5_click_item_conversion_rate", "array<double>", "conversion rates of the user's last 5 clicked items", "pv_rt", last5, 1),
    ]
    return feats


@dataclass(frozen=True)
class FeatureSpec:
    hint_types: tuple[int, ...]
    state: tuple[FeatureDef, ...]
    ctr_prior_clicks: float
    ctr_prior_non_clicks: float

    @property
    def version(self) -> str:
        payload = json.dumps(
            {"types": self.hint_types, "state": [f.definition() for f in self.state]}, sort_keys=True
        ).encode()
        return f"v{SPEC_VERSION}-{hashlib.sha256(payload).hexdigest()[:10]}"

    @property
    def state_dim(self) -> int:
        return len(self.state)

    @property
    def n_actions(self) -> int:
        return len(self.hint_types)

    def state_sql(self) -> str:
        """`array(...)` of the state elements in spec order, as floats."""
        return "array(" + ", ".join(f"CAST({f.state_expr} AS FLOAT)" for f in self.state) + ")"

    def state_vector(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The state from stored feature columns (user_lt and pv_rt names), as Spark builds it."""
        return np.array([f.online(columns) for f in self.state], dtype=np.float32)  # type: ignore[misc]

    def describe(self) -> list[dict[str, object]]:
        return [
            {"index": i, "name": f.name, "dtype": f.dtype, "source": f.source, "sql": f.sql_file,
             "version": f.version, "meaning": f.meaning}
            for i, f in enumerate(self.state)
        ]


def build_spec(hint_types: list[int], ctr_prior_clicks: float = 1.0, ctr_prior_non_clicks: float = 9.0) -> FeatureSpec:
    """The state vector for a catalog whose hint types are 0..n-1 (the policies' action ids)."""
    types = sorted(hint_types)
    if types != list(range(len(types))):
        raise ValueError(f"hint types must be 0..n-1 to serve as action ids, got {types[:10]}")
    a, b = ctr_prior_clicks, ctr_prior_non_clicks
    lt, rt, merge = "sql/lt_day_counts.sql", "sql/pv_rt.sql", "sql/user_lt_merge.sql"
    def gender(c: Mapping[str, Any]) -> str:
        return c.get("gender") or "U"

    def shown(k: int) -> Callable[[Mapping[str, Any]], float]:
        return lambda c: float(k in (c.get("shown_in_session") or []))

    def recent(k: int) -> Callable[[Mapping[str, Any]], float]:
        return lambda c: min(_n(c.get(f"clicks_last100_t{k}")), 5.0) / 5.0

    state = [
        FeatureDef("gender_f", "float", "1 if the user's gender is F", "user_lt", merge, 1,
                   "COALESCE(gender, 'U') = 'F'", lambda c: float(gender(c) == "F")),
        FeatureDef("gender_m", "float", "1 if the user's gender is M", "user_lt", merge, 1,
                   "COALESCE(gender, 'U') = 'M'", lambda c: float(gender(c) == "M")),
        FeatureDef("gender_u", "float", "1 if the user's gender is unknown", "user_lt", merge, 1,
                   "COALESCE(gender, 'U') = 'U'", lambda c: float(gender(c) == "U")),
        FeatureDef("age_scaled", "float", "age / 100, 0 when unknown", "user_lt", merge, 1,
                   "COALESCE(age, 0) / 100.0", lambda c: _n(c.get("age")) / 100.0),
        FeatureDef("purchase_power_scaled", "float", "purchase power / 5, 0 when unknown", "user_lt", merge, 1,
                   "COALESCE(purchase_power, 0) / 5.0", lambda c: _n(c.get("purchase_power")) / 5.0),
        FeatureDef("user_hint_shows_log", "float", "log1p of the user's hint shows before ds", "user_lt", lt, 1,
                   "LN(1 + COALESCE(hint_shows, 0))", lambda c: math.log(1.0 + _n(c.get("hint_shows")))),
        FeatureDef("user_hint_ctr", "float", "user's smoothed hint CTR before ds", "user_lt", lt, 1,
                   _ctr("hint_clicks", "hint_shows", a, b), _ctr_online("hint_clicks", "hint_shows", a, b)),
    ]
    for k in types:
        state.append(
            FeatureDef(f"user_ctr_t{k}", "float", f"user's smoothed CTR on hint type {k} before ds", "user_lt", lt, 1,
                       _ctr(f"clicks_t{k}", f"shows_t{k}", a, b), _ctr_online(f"clicks_t{k}", f"shows_t{k}", a, b))
        )
    state += [
        FeatureDef("query_volume_log", "float", "ln(1 + the query's page views before ds) / 10", "query_lt", lt, 1,
                   "LN(1 + COALESCE(query_page_views, 0)) / 10.0",
                   lambda c: math.log(1.0 + _n(c.get("query_page_views"))) / 10.0),
        FeatureDef("query_hint_ctr", "float", "the query's smoothed hint CTR before ds", "query_lt", lt, 1,
                   _ctr("query_hint_clicks", "query_hint_shows", a, b),
                   _ctr_online("query_hint_clicks", "query_hint_shows", a, b)),
    ]
    for k in types:
        state.append(
            FeatureDef(f"query_ctr_t{k}", "float", f"the query's smoothed CTR on hint type {k} before ds", "query_lt", lt, 1,
                       _ctr(f"query_clicks_t{k}", f"query_shows_t{k}", a, b),
                       _ctr_online(f"query_clicks_t{k}", f"query_shows_t{k}", a, b))
        )
    state.append(FeatureDef("page_scaled", "float", "(page - 1) / 10", "pv_rt", rt, 1,
                            "(page - 1) / 10.0", lambda c: (_n(c.get("page")) - 1.0) / 10.0))
    for k in types:
        state.append(
            FeatureDef(f"recent_clicks_t{k}", "float", f"min(clicks_last100_t{k}, 5) / 5", "pv_rt", rt, 1,
                       f"LEAST(clicks_last100_t{k}, 5) / 5.0", recent(k))
        )
    for k in types:
        state.append(
            FeatureDef(f"shown_t{k}", "float", f"1 if type {k} was already shown in this (session, query)", "pv_rt", rt, 1,
                       f"array_contains(shown_in_session, {k})", shown(k))
        )
    last5 = "sql/pv_last5_actions.sql"
    for action in ACTION_TYPES:
        state.append(
            FeatureDef(f"last5_share_{action}", "float", f"share of '{action}' among the user's last 5 actions", "pv_rt", last5, 1,
                       f"size(filter(last5_action_types, x -> x = '{action}')) / 5.0", _action_share(action))
        )
    state += [
        FeatureDef("last5_click_price_log", "float", "ln(1 + mean price of the last 5 clicked items) / 10, 0 without clicks",
                   "pv_rt", last5, 1, f"LN(1 + {_array_mean_sql('last5_click_item_price')}) / 10.0",
                   lambda c: math.log(1.0 + _array_mean(c.get("last5_click_item_price"))) / 10.0),
        FeatureDef("last5_click_conversion", "float", "mean conversion rate of the last 5 clicked items, 0 without clicks",
                   "pv_rt", last5, 1, _array_mean_sql("last5_click_item_conversion_rate"),
                   lambda c: _array_mean(c.get("last5_click_item_conversion_rate"))),
    ]
    return FeatureSpec(tuple(types), tuple(state), a, b)


def stratum_sql() -> str:
    """gender|age band|purchase power, the key of stratified sampling."""
    bands = " ".join(f"WHEN age >= {lo} AND age < {hi} THEN '{name}'" for name, lo, hi in AGE_BANDS)
    return (
        "concat_ws('|', COALESCE(gender, 'U'), "
        f"CASE {bands} ELSE 'unknown' END, "
        "COALESCE(CAST(purchase_power AS STRING), '0'))"
    )
