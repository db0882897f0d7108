"""Data-quality checks the DAGs run between stages, on what the Spark jobs wrote to the lake.

Each check reads the lake with pyarrow (no Spark), returns the per-day figures the nightly summary
prints, and raises `DataQualityError` naming every failed check, so that a bad day stops the DAG
before the next stage reads it. The checks recount rows instead of trusting a job's own report:
  ingest       raw rows = clean + quarantined (nothing silently dropped); reject share within bounds
  features     one real-time row per clean page view; long-term snapshots present; feature null rates
  transitions  transitions present, propensities in (0, 1], quarantined episodes within bounds
"""

from __future__ import annotations

from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from feature_store.catalog import catalog_slots
from feature_store.registry import table_features
from hintrl.config import FeatureConfig, QualityConfig
from hintrl.dates import day_range
from hintrl.errors import HintrlError
from hintrl.lake import (
    RAW_DAILY_TABLES,
    Lake,
    filesystem,
    partition_complete,
    raw_day_complete,
)

Progress = Callable[[str], None]


class DataQualityError(HintrlError):
    """A stage's output failed a data-quality check; the next stage must not read it."""


def _dataset(uri: str) -> pads.Dataset:
    fs, path = filesystem(uri)
    return pads.dataset(path, filesystem=fs, format="parquet", exclude_invalid_files=True)


def _rows(uri: str) -> int:
    return _dataset(uri).count_rows() if partition_complete(uri) else 0


def days_with_raw(lake: Lake, ds: str, since: str | None = None) -> list[str]:
    """The days from `since` to `ds` whose raw logs are complete (the days the Spark stages process);
    `ds` itself must be one of them."""
    days = [d for d in (day_range(since, ds) if since else [ds]) if raw_day_complete(lake, d)]
    if ds not in days:
        raise DataQualityError(f"raw logs of ds={ds} are incomplete: nothing to check")
    return days


def _raise_on(failures: list[str], stage: str) -> None:
    if failures:
        raise DataQualityError(f"{stage} data-quality check failed: " + "; ".join(failures))


def check_ingest(lake: Lake, days: list[str], features: FeatureConfig, progress: Progress = print) -> dict[str, Any]:
    report: dict[str, Any] = {"days": {}}
    failures = []
    for day in days:
        tables = {}
        for table in RAW_DAILY_TABLES:
            raw = _rows(lake.raw(table, day))
            if not partition_complete(lake.validated(table, day)):
                failures.append(f"{table}/ds={day}: no validated partition (ingest did not finish)")
                continue
            clean = _rows(lake.validated(table, day))
            quarantine = lake.quarantine(table, day)
            reasons: dict[str, int] = {}
            if partition_complete(quarantine):
                rejected = _dataset(quarantine).to_table(columns=["reject_reason"]).column("reject_reason")
                reasons = {r["values"]: int(r["counts"]) for r in pc.value_counts(rejected).to_pylist()}
            quarantined = sum(reasons.values())
            tables[table] = {"in": raw, "clean": clean, "quarantined": quarantined, "reasons": reasons}
            if clean + quarantined != raw:
                failures.append(f"{table}/ds={day}: {raw} raw rows but {clean} clean + {quarantined} quarantined")
            if raw and quarantined / raw > features.max_reject_fraction:
                failures.append(f"{table}/ds={day}: {quarantined / raw:.1%} of rows quarantined "
                                f"(> {features.max_reject_fraction:.1%}): {reasons}")
            if table == "search_pv" and clean == 0:
                failures.append(f"search_pv/ds={day}: no clean page views")
        report["days"][day] = tables
        if "search_pv" in tables:
            pv = tables["search_pv"]
            progress(f"check ingest {day}: search_pv {pv['in']} in = {pv['clean']} clean + {pv['quarantined']} quarantined")
    _raise_on(failures, "ingest")
    return report


def _null_rates(uri: str, columns: list[str]) -> dict[str, float]:
    table = _dataset(uri).to_table(columns=columns)
    n = max(table.num_rows, 1)
    return {c: table.column(c).null_count / n for c in columns}


def check_features(lake: Lake, days: list[str], features: FeatureConfig, quality: QualityConfig,
                   progress: Progress = print) -> dict[str, Any]:
    defs = table_features(catalog_slots(lake, features.hint_slots), features.lt_windows_days)
    report: dict[str, Any] = {"days": {}}
    failures = []
    for day in days:
        entry: dict[str, Any] = {}
        worst = ("", 0.0)
        for table in ("user_lt", "query_lt", "pv_rt"):
            uri = lake.features(table, day)
            if not partition_complete(uri):
                failures.append(f"features/{table}/ds={day}: missing (the features job did not finish)")
                continue
            columns = [f.name for f in defs if f.source == table and not f.nullable]
            schema = _dataset(uri).schema
            absent = [c for c in columns if c not in schema.names]
            if absent:
                failures.append(f"features/{table}/ds={day}: missing column(s) {absent}")
                continue
            entry[f"{table}_rows"] = _rows(uri)
            for column, rate in _null_rates(uri, columns).items():
                if rate > worst[1]:
                    worst = (f"{table}.{column}", rate)
                if rate > quality.max_feature_null_rate:
                    failures.append(f"features/{table}/ds={day}: {column} null on {rate:.2%} of rows "
                                    f"(> {quality.max_feature_null_rate:.2%})")
        page_views = _rows(lake.validated("search_pv", day))
        if "pv_rt_rows" in entry and entry["pv_rt_rows"] != page_views:
            failures.append(f"features/pv_rt/ds={day}: {entry['pv_rt_rows']} rows for {page_views} clean page views")
        if entry.get("user_lt_rows") == 0:
            failures.append(f"features/user_lt/ds={day}: empty")
        entry["max_null_rate"] = round(worst[1], 6)
        if worst[0]:
            entry["max_null_column"] = worst[0]
        report["days"][day] = entry
        progress(f"check features {day}: " + ", ".join(f"{k} {v}" for k, v in entry.items()))
    _raise_on(failures, "features")
    return report


def check_transitions(lake: Lake, days: list[str], quality: QualityConfig, progress: Progress = print) -> dict[str, Any]:
    report: dict[str, Any] = {"days": {}}
    failures = []
    for day in days:
        uri = lake.transitions(day)
        if not partition_complete(uri):
            failures.append(f"transitions/ds={day}: missing (build-mdp did not finish)")
            continue
        table = _dataset(uri).to_table(columns=["episode_id", "propensity"])
        episodes = pc.count_distinct(table.column("episode_id")).as_py()
        bad = pc.sum(pc.invert(pc.and_(pc.greater(table.column("propensity"), 0.0),
                                       pc.less_equal(table.column("propensity"), 1.0))).cast(pa.int64())).as_py() or 0
        quarantined = 0
        quarantine = lake.quarantine("transitions", day)
        if partition_complete(quarantine):
            q = _dataset(quarantine).to_table(columns=["episode_id"]).column("episode_id")
            quarantined = pc.count_distinct(q).as_py() if len(q) else 0
        entry = {"page_views": _rows(lake.validated("search_pv", day)), "transitions": table.num_rows,
                 "episodes": episodes, "quarantined_episodes": quarantined}
        report["days"][day] = entry
        if table.num_rows == 0:
            failures.append(f"transitions/ds={day}: empty")
        if bad:
            failures.append(f"transitions/ds={day}: {bad} propensities outside (0, 1]")
        share = quarantined / max(episodes + quarantined, 1)
        if share > quality.max_quarantined_episode_share:
            failures.append(f"transitions/ds={day}: {share:.1%} of episodes quarantined "
                            f"(> {quality.max_quarantined_episode_share:.1%})")
        progress(f"check transitions {day}: " + ", ".join(f"{k} {v}" for k, v in entry.items()))
    _raise_on(failures, "transitions")
    return report


CHECKS = ("ingest", "features", "transitions")


def run_check(stage: str, lake: Lake, ds: str, since: str | None, features: FeatureConfig, quality: QualityConfig,
              progress: Progress = print) -> dict[str, Any]:
    """The named check over the days from `since` to `ds` that have raw logs."""
    days = days_with_raw(lake, ds, since)
    if stage == "ingest":
        return check_ingest(lake, days, features, progress)
    if stage == "features":
        return check_features(lake, days, features, quality, progress)
    if stage == "transitions":
        return check_transitions(lake, days, quality, progress)
    raise HintrlError(f"unknown check {stage!r}: choose from {', '.join(CHECKS)}")
