"""The feature registry: every feature the jobs compute and the state vector the policies read.

A `FeatureSpec` is the ordered state vector for a hint catalog. Its version string changes whenever
a definition, its order or the catalog changes, and it is stamped on every transitions row and on
every registered model, so a model is never fed a state it was not trained on.

Per-hint counts are kept per *slot*: one slot per hint type in the small action space (column
suffix `t{k}`), one per hint family in the large one (suffix `f{family}`), where per-type columns
for 20,000 hint ids would be neither learnable nor storable.

Each state element has a Spark SQL expression (`state_expr`, used by the transitions job) and the
same element computed online (`online`, used by the simulator and serving) over a batch of feature
columns as `feature_store.online.OnlineFeatures.columns` returns them: numbers as 1-D arrays,
unknown demographics as NaN, arrays as padded 2-D arrays (see that module).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hintrl.contracts import ACTION_TYPES

SPEC_VERSION = 1
# The spec's JSON beside every trained policy, so the served model rebuilds states exactly.
SPEC_FILE = "feature_spec.json"

# Age bands of the stratum (gender|age band|purchase power); the upper bound is exclusive.
AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("<18", 0, 18),
    ("18-24", 18, 25),
    ("25-34", 25, 35),
    ("35-44", 35, 45),
    ("45-54", 45, 55),
    ("55+", 55, 200),
)

Columns = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class HintSlots:
    """How per-hint counts are keyed: `per` is "type" or "family"; `suffixes[s]` names slot s in
    column names; `slot_of_type[k]` is the slot of hint type k."""

    per: str
    suffixes: tuple[str, ...]
    slot_of_type: tuple[int, ...]

    @classmethod
    def by_type(cls, n_types: int) -> "HintSlots":
        return cls("type", tuple(f"t{k}" for k in range(n_types)), tuple(range(n_types)))

    @classmethod
    def by_family(cls, family_of_type: Sequence[str]) -> "HintSlots":
        names = sorted(set(family_of_type))
        bad = [n for n in names if not n.isidentifier()]
        if bad:
            raise ValueError(f"hint family names must be identifiers to name feature columns: {bad[:5]}")
        index = {n: i for i, n in enumerate(names)}
        return cls("family", tuple(f"f{n}" for n in names), tuple(index[f] for f in family_of_type))

    @property
    def n_slots(self) -> int:
        return len(self.suffixes)

    @property
    def n_types(self) -> int:
        return len(self.slot_of_type)

    def describe(self, slot: int) -> str:
        name = self.suffixes[slot][1:]
        return f"hint type {name}" if self.per == "type" else f"hints of family {name}"


@dataclass(frozen=True)
class FeatureDef:
    name: str
    dtype: str
    meaning: str
    source: str  # table the value is read from
    sql_file: str  # the SQL in sql/ that computes the source column
    version: int
    state_expr: str | None = None  # SQL over the transitions join giving the state element
    # The same element computed online over a batch of stored feature columns (serving, the simulator).
    online: Callable[[Columns], np.ndarray] | None = field(default=None, compare=False, repr=False)
    # Null is a legitimate value (the data-quality check between stages allows it).
    nullable: bool = field(default=False, compare=False)

    def definition(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("online", "nullable")}


def _ctr(clicks: str, shows: str, prior_clicks: float, prior_non_clicks: float) -> str:
    return f"(COALESCE({clicks}, 0) + {prior_clicks}) / (COALESCE({shows}, 0) + {prior_clicks + prior_non_clicks})"


def _n(values: np.ndarray) -> np.ndarray:
    """SQL's COALESCE(x, 0) for a batch of numbers (unknown = NaN)."""
    return np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)


def _array_mean_sql(column: str) -> str:
    """Mean of a numeric array, nulls as 0, and 0 for an empty array."""
    return (f"COALESCE(aggregate({column}, CAST(0 AS DOUBLE), (acc, x) -> acc + COALESCE(x, CAST(0 AS DOUBLE)))"
            f" / NULLIF(size({column}), 0), 0)")


def _array_mean(column: str) -> Callable[[Columns], np.ndarray]:
    """`_array_mean_sql` online: NaN entries count as 0, `last5_click_n` is the array's length."""
    def mean(c: Columns) -> np.ndarray:
        total = _n(c[column]).sum(axis=1)
        n = np.asarray(c["last5_click_n"], dtype=np.float64)
        return np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    return mean


def _action_share(action: str) -> Callable[[Columns], np.ndarray]:
    return lambda c: (np.asarray(c["last5_action_types"]) == action).sum(axis=1) / 5.0


def _ctr_online(clicks: str, shows: str, a: float, b: float) -> Callable[[Columns], np.ndarray]:
    return lambda c: (_n(c[clicks]) + a) / (_n(c[shows]) + a + b)


def count_features(slots: HintSlots, table: str, prefix: str, subject: str,
                   windows: Sequence[int] = ()) -> list[FeatureDef]:
    """Long-term counts of one entity (user_lt: no prefix, query_lt: "query_") over all days before
    ds, then the same counts over each recent window of W days before ds (suffix `_{W}d`)."""
    lt = "sql/lt_day_counts.sql"
    base = [
        (f"{prefix}page_views", f"search page views of {subject}"),
        (f"{prefix}hint_shows", f"hints shown to {subject}"),
        (f"{prefix}hint_clicks", f"hints clicked by {subject}"),
    ]
    for s, suffix in enumerate(slots.suffixes):
        what = slots.describe(s)
        base.append((f"{prefix}shows_{suffix}", f"{what} shown to {subject}"))
        base.append((f"{prefix}clicks_{suffix}", f"{what} clicked by {subject}"))
    feats = [FeatureDef(name, "bigint", f"{meaning} on all days before ds", table, lt, 1) for name, meaning in base]
    for w in windows:
        feats += [FeatureDef(f"{name}_{w}d", "bigint", f"{meaning} on the {w} days before ds", table, lt, 1)
                  for name, meaning in base]
    return feats


def table_features(slots: HintSlots, windows: Sequence[int] = (7, 30)) -> list[FeatureDef]:
    """Columns of features/user_lt, features/query_lt and features/pv_rt (the stored features)."""
    rt = "sql/pv_rt.sql"
    feats = [
        FeatureDef("gender", "string", "user gender F/M/U from the latest profile snapshot at or before ds", "user_lt", "sql/user_lt_merge.sql", 1),
        FeatureDef("age", "int", "user age from the latest profile snapshot at or before ds", "user_lt", "sql/user_lt_merge.sql", 1),
        FeatureDef("purchase_power", "int", "user purchasing power 1..5", "user_lt", "sql/user_lt_merge.sql", 1),
        *count_features(slots, "user_lt", "", "the user", windows),
        FeatureDef("query_category", "int", "the query's category (raw/query; null when unknown)", "query_lt", "sql/query_lt_merge.sql", 1,
                   nullable=True),
        *count_features(slots, "query_lt", "query_", "the query", windows),
    ]
    feats.append(FeatureDef("page", "int", "1-based page of this page view within its query", "pv_rt", rt, 1))
    for s, suffix in enumerate(slots.suffixes):
        what = slots.describe(s)
        feats.append(FeatureDef(f"clicks_last100_{suffix}", "int",
                                f"clicks on {what} in the user's previous 100 search page views (any day)", "pv_rt", rt, 1))
        feats.append(FeatureDef(f"shows_last100_{suffix}", "int",
                                f"{what} shown in the user's previous 100 search page views (any day)", "pv_rt", rt, 1))
    feats.append(
        FeatureDef("shown_in_session", "array<int>", "hint types shown earlier in this (session, query)", "pv_rt", rt, 1)
    )
    last5 = "sql/pv_rt.sql"
    feats += [
        FeatureDef("last5_action_types", "array<string>", "the user's last 5 action types before the page view, most recent first", "pv_rt", last5, 1),
        FeatureDef("last5_click_item_price", "array<double>", "prices of the user's last 5 clicked items, most recent first", "pv_rt", last5, 1),
        FeatureDef("last5_click_item_category", "array<int>", "categories of the user's last 5 clicked items, most recent first", "pv_rt", last5, 1),
        FeatureDef("last5_click_item_conversion_rate", "array<double>", "conversion rates of the user's last 5 clicked items", "pv_rt", last5, 1),
    ]
    return feats


@dataclass(frozen=True)
class FeatureSpec:
    slots: HintSlots
    state: tuple[FeatureDef, ...]
    ctr_prior_clicks: float
    ctr_prior_non_clicks: float

    @property
    def version(self) -> str:
        payload = json.dumps(
            {"per": self.slots.per, "slots": self.slots.suffixes, "slot_of_type": self.slots.slot_of_type,
             "state": [f.definition() for f in self.state]},
            sort_keys=True,
        ).encode()
        return f"v{SPEC_VERSION}-{hashlib.sha256(payload).hexdigest()[:10]}"

    @property
    def hint_types(self) -> tuple[int, ...]:
        return tuple(range(self.slots.n_types))

    @property
    def state_dim(self) -> int:
        return len(self.state)

    @property
    def n_actions(self) -> int:
        return self.slots.n_types

    def state_sql(self) -> str:
        """`array(...)` of the state elements in spec order, as floats."""
        return "array(" + ", ".join(f"CAST({f.state_expr} AS FLOAT)" for f in self.state) + ")"

    def state_matrix(self, columns: Columns) -> np.ndarray:
        """States (one row per page view) from a batch of stored feature columns, as Spark builds them."""
        return np.stack([np.asarray(f.online(columns), dtype=np.float64) for f in self.state], axis=1).astype(np.float32)  # type: ignore[misc]

    def to_json(self) -> dict[str, Any]:
        """Everything needed to rebuild the spec (`spec_from_json`), plus its readable definition."""
        return {"version": self.version, "per": self.slots.per, "suffixes": list(self.slots.suffixes),
                "slot_of_type": list(self.slots.slot_of_type), "ctr_prior_clicks": self.ctr_prior_clicks,
                "ctr_prior_non_clicks": self.ctr_prior_non_clicks, "state": self.describe()}

    def describe(self) -> list[dict[str, object]]:
        return [
            {"index": i, "name": f.name, "dtype": f.dtype, "source": f.source, "sql": f.sql_file,
             "version": f.version, "meaning": f.meaning}
            for i, f in enumerate(self.state)
        ]


# With more hint types than this, `per="auto"` counts per family (the large action space).
MAX_TYPES_COUNTED_PER_TYPE = 64
SLOT_CHOICES = ("auto", "type", "family")


def slots_for(hint_types: Sequence[int], families: Sequence[str] | None = None, per: str = "auto") -> HintSlots:
    """Slots of a catalog: hint types 0..n-1 and, for per-family counts, the family of each type.
    `per` is "type", "family", or "auto" (per type up to MAX_TYPES_COUNTED_PER_TYPE types)."""
    types = sorted(hint_types)
    if types != list(range(len(types))):
        raise ValueError(f"hint types must be 0..n-1 to serve as action ids, got {types[:10]}")
    if per not in SLOT_CHOICES:
        raise ValueError(f"features are counted per {' or '.join(SLOT_CHOICES)}, not {per!r}")
    if per == "auto":
        per = "type" if len(types) <= MAX_TYPES_COUNTED_PER_TYPE else "family"
    if per == "type":
        return HintSlots.by_type(len(types))
    if families is None or len(families) != len(types):
        raise ValueError("per-family features need the family of every hint type")
    return HintSlots.by_family(list(families))


def build_spec(hint_types: list[int] | HintSlots, ctr_prior_clicks: float = 1.0, ctr_prior_non_clicks: float = 9.0) -> FeatureSpec:
    """The state vector for a catalog whose hint types are 0..n-1 (the policies' action ids)."""
    slots = hint_types if isinstance(hint_types, HintSlots) else slots_for(hint_types)
    a, b = ctr_prior_clicks, ctr_prior_non_clicks
    lt, rt, merge = "sql/lt_day_counts.sql", "sql/pv_rt.sql", "sql/user_lt_merge.sql"

    def gender_is(g: str) -> Callable[[Columns], np.ndarray]:
        return lambda c: (np.asarray(c["gender"]) == g).astype(np.float64)

    def shown(k: int) -> Callable[[Columns], np.ndarray]:
        return lambda c: (np.asarray(c["shown_in_session"]) == k).any(axis=1).astype(np.float64)

    def recent(column: str) -> Callable[[Columns], np.ndarray]:
        return lambda c: np.minimum(_n(c[column]), 5.0) / 5.0

    state = [
        FeatureDef("gender_f", "float", "1 if the user's gender is F", "user_lt", merge, 1,
                   "COALESCE(gender, 'U') = 'F'", gender_is("F")),
        FeatureDef("gender_m", "float", "1 if the user's gender is M", "user_lt", merge, 1,
                   "COALESCE(gender, 'U') = 'M'", gender_is("M")),
        FeatureDef("gender_u", "float", "1 if the user's gender is unknown", "user_lt", merge, 1,
                   "COALESCE(gender, 'U') = 'U'", gender_is("U")),
        FeatureDef("age_scaled", "float", "age / 100, 0 when unknown", "user_lt", merge, 1,
                   "COALESCE(age, 0) / 100.0", lambda c: _n(c["age"]) / 100.0),
        FeatureDef("purchase_power_scaled", "float", "purchase power / 5, 0 when unknown", "user_lt", merge, 1,
                   "COALESCE(purchase_power, 0) / 5.0", lambda c: _n(c["purchase_power"]) / 5.0),
        FeatureDef("user_hint_shows_log", "float", "log1p of the user's hint shows before ds", "user_lt", lt, 1,
                   "LN(1 + COALESCE(hint_shows, 0))", lambda c: np.log1p(_n(c["hint_shows"]))),
        FeatureDef("user_hint_ctr", "float", "user's smoothed hint CTR before ds", "user_lt", lt, 1,
                   _ctr("hint_clicks", "hint_shows", a, b), _ctr_online("hint_clicks", "hint_shows", a, b)),
    ]
    for s, x in enumerate(slots.suffixes):
        state.append(
            FeatureDef(f"user_ctr_{x}", "float", f"user's smoothed CTR on {slots.describe(s)} before ds", "user_lt", lt, 1,
                       _ctr(f"clicks_{x}", f"shows_{x}", a, b), _ctr_online(f"clicks_{x}", f"shows_{x}", a, b))
        )
    state += [
        FeatureDef("query_volume_log", "float", "ln(1 + the query's page views before ds) / 10", "query_lt", lt, 1,
                   "LN(1 + COALESCE(query_page_views, 0)) / 10.0",
                   lambda c: np.log1p(_n(c["query_page_views"])) / 10.0),
        FeatureDef("query_hint_ctr", "float", "the query's smoothed hint CTR before ds", "query_lt", lt, 1,
                   _ctr("query_hint_clicks", "query_hint_shows", a, b),
                   _ctr_online("query_hint_clicks", "query_hint_shows", a, b)),
    ]
    for s, x in enumerate(slots.suffixes):
        state.append(
            FeatureDef(f"query_ctr_{x}", "float", f"the query's smoothed CTR on {slots.describe(s)} before ds", "query_lt", lt, 1,
                       _ctr(f"query_clicks_{x}", f"query_shows_{x}", a, b),
                       _ctr_online(f"query_clicks_{x}", f"query_shows_{x}", a, b))
        )
    state.append(FeatureDef("page_scaled", "float", "(page - 1) / 10", "pv_rt", rt, 1,
                            "(page - 1) / 10.0", lambda c: (_n(c["page"]) - 1.0) / 10.0))
    for x in slots.suffixes:
        state.append(
            FeatureDef(f"recent_clicks_{x}", "float", f"min(clicks_last100_{x}, 5) / 5", "pv_rt", rt, 1,
                       f"LEAST(clicks_last100_{x}, 5) / 5.0", recent(f"clicks_last100_{x}"))
        )
    if slots.per == "type":
        # In the large action space a per-type flag would be 20,000 wide; the candidates already
        # exclude what was shown.
        for k in range(slots.n_types):
            state.append(
                FeatureDef(f"shown_t{k}", "float", f"1 if type {k} was already shown in this (session, query)", "pv_rt", rt, 1,
                           f"array_contains(shown_in_session, {k})", shown(k))
            )
    last5 = "sql/pv_rt.sql"
    for action in ACTION_TYPES:
        state.append(
            FeatureDef(f"last5_share_{action}", "float", f"share of '{action}' among the user's last 5 actions", "pv_rt", last5, 1,
                       f"size(filter(last5_action_types, x -> x = '{action}')) / 5.0", _action_share(action))
        )
    state += [
        FeatureDef("last5_click_price_log", "float", "ln(1 + mean price of the last 5 clicked items) / 10, 0 without clicks",
                   "pv_rt", last5, 1, f"LN(1 + {_array_mean_sql('last5_click_item_price')}) / 10.0",
                   lambda c: np.log1p(_array_mean("last5_click_item_price")(c)) / 10.0),
        FeatureDef("last5_click_conversion", "float", "mean conversion rate of the last 5 clicked items, 0 without clicks",
                   "pv_rt", last5, 1, _array_mean_sql("last5_click_item_conversion_rate"),
                   _array_mean("last5_click_item_conversion_rate")),
    ]
    return FeatureSpec(slots, tuple(state), a, b)


def spec_from_json(data: Mapping[str, Any]) -> FeatureSpec:
    """The spec `FeatureSpec.to_json` describes; refuses one whose definitions changed since."""
    slots = HintSlots(data["per"], tuple(data["suffixes"]), tuple(data["slot_of_type"]))
    spec = build_spec(slots, data["ctr_prior_clicks"], data["ctr_prior_non_clicks"])
    if spec.version != data["version"]:
        raise ValueError(f"feature spec {data['version']} cannot be rebuilt: this code defines it as {spec.version}")
    return spec


def stratum_sql() -> str:
    """gender|age band|purchase power, the key of stratified sampling."""
    bands = " ".join(f"WHEN age >= {lo} AND age < {hi} THEN '{name}'" for name, lo, hi in AGE_BANDS)
    return (
        "concat_ws('|', COALESCE(gender, 'U'), "
        f"CASE {bands} ELSE 'unknown' END, "
        "COALESCE(CAST(purchase_power AS STRING), '0'))"
    )
