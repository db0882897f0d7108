"""The Spark stages of a nightly, over the newest day plus any earlier day of the window whose
output is missing (so a first run on a fresh lake catches up, and a rerun only redoes its day).
With `force` every day of the range is recomputed (backfill), each partition replaced whole.

Each stage returns a report (rows in and out) that the CLI prints and the DAG passes on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, Callable

from pyspark.sql import SparkSession

from feature_store.registry import build_spec
from hintrl.config import HintrlConfig
from hintrl.dates import day_range
from hintrl.lake import RAW_DAILY_TABLES, Lake
from pipelines import ingest, long_term, mdp, realtime
from pipelines.spark import partition_exists

Progress = Callable[[str], None]


def _days(ds: str, since: str | None) -> list[str]:
    return day_range(since, ds) if since else [ds]


def _raw_complete(spark: SparkSession, lake: Lake, ds: str) -> bool:
    return all(partition_exists(spark, lake.raw(t, ds)) for t in RAW_DAILY_TABLES)


def ingest_stage(spark: SparkSession, cfg: HintrlConfig, ds: str, since: str | None = None, progress: Progress = print,
                 force: bool = False) -> dict[str, Any]:
    lake = Lake(cfg.lake_uri)
    report: dict[str, Any] = {"days": {}, "skipped": {}}
    for day in _days(ds, since):
        fresh = day == ds or force
        done = all(partition_exists(spark, lake.validated(t, day)) for t in RAW_DAILY_TABLES)
        if not fresh and done:
            continue
        if not fresh and not _raw_complete(spark, lake, day):
            report["skipped"][day] = "no raw logs"
            progress(f"ingest {day}: skipped (no raw logs for this earlier day)")
            continue
        results = ingest.ingest_day(spark, lake, day, cfg.features)
        report["days"][day] = {r.table: {"in": r.rows_in, "clean": r.clean, "quarantined": r.quarantined, "reasons": r.reasons} for r in results}
        progress(f"ingest {day}: " + ", ".join(f"{r.table} {r.rows_in} in / {r.clean} clean / {r.quarantined} quarantined" for r in results))
    return report


def _catalog_spec(spark: SparkSession, cfg: HintrlConfig, lake: Lake):
    slots = ingest.read_slots(spark, lake, cfg.features.hint_slots)
    return slots, build_spec(slots, cfg.features.ctr_prior_clicks, cfg.features.ctr_prior_non_clicks)


def features_stage(spark: SparkSession, cfg: HintrlConfig, ds: str, since: str | None = None, progress: Progress = print,
                   force: bool = False, jobs: tuple[str, ...] = ("long_term", "realtime")) -> dict[str, Any]:
    """The long-term and real-time jobs of every day that needs them. The two jobs never read each
    other's output, so their day-by-day chains run side by side: one chain's driver-side planning
    overlaps the other's tasks."""
    lake = Lake(cfg.lake_uri)
    slots, spec = _catalog_spec(spark, cfg, lake)
    days = []
    for day in _days(ds, since):
        if partition_exists(spark, lake.validated("search_pv", day)):
            days.append(day)
        elif day == ds or force:
            ingest.check_raw(spark, lake, "search_pv", day)  # says which input is missing
    fresh = {day: day == ds or force for day in days}

    def long_term_chain() -> dict[str, dict[str, int]]:
        done = {}
        for day in days:
            if fresh[day] or not all(partition_exists(spark, lake.features(e.table, day)) for e in long_term.ENTITIES):
                done[day] = long_term.run(spark, lake, day, slots, cfg.features.lt_windows_days)
                progress(f"features {day}: " + ", ".join(f"{k} {v}" for k, v in done[day].items()))
        return done

    def realtime_chain() -> dict[str, dict[str, int]]:
        done = {}
        for day in days:
            if fresh[day] or not partition_exists(spark, lake.features("pv_rt", day)):
                done[day] = {"pv_rt_rows": realtime.run(spark, lake, day, slots, cfg.features)}
                progress(f"features {day}: pv_rt_rows {done[day]['pv_rt_rows']}")
        return done

    chains = [chain for name, chain in (("long_term", long_term_chain), ("realtime", realtime_chain)) if name in jobs]
    with ThreadPoolExecutor(max_workers=max(1, len(chains) - 1), thread_name_prefix="features") as pool:
        others = [pool.submit(chain) for chain in chains[1:]]
        try:
            results = [chains[0]()] if chains else []
        finally:
            wait(others)  # never leave a write running behind an error
        results += [other.result() for other in others]
    report: dict[str, Any] = {"days": {}, "feature_spec_version": spec.version}
    for day in days:
        entry = {k: v for result in results for k, v in result.get(day, {}).items()}
        if entry:
            report["days"][day] = entry
    return report


def mdp_stage(spark: SparkSession, cfg: HintrlConfig, ds: str, since: str | None = None, progress: Progress = print,
              force: bool = False) -> dict[str, Any]:
    lake = Lake(cfg.lake_uri)
    _, spec = _catalog_spec(spark, cfg, lake)
    report: dict[str, Any] = {"days": {}, "feature_spec_version": spec.version, "reward_preset": cfg.reward.preset}
    for day in _days(ds, since):
        if day != ds and not force and (
            partition_exists(spark, lake.transitions(day)) or not partition_exists(spark, lake.features("pv_rt", day))
        ):
            continue
        r = mdp.run(spark, lake, day, spec, cfg.reward)
        report["days"][day] = r.__dict__
        progress(
            f"build-mdp {day}: {r.page_views} page views -> {r.transitions} transitions in {r.episodes} episodes "
            f"({r.pages_without_hint} pages without hint, {r.quarantined_episodes} episodes quarantined)"
        )
    return report


STAGES = {"ingest": ingest_stage, "features": features_stage, "mdp": mdp_stage}


def backfill(spark: SparkSession, cfg: HintrlConfig, start: str, end: str, progress: Progress = print) -> dict[str, Any]:
    """Recompute raw validation, features and transitions for every day from start to end."""
    day_range(start, end)  # refuses an empty range
    return {name: stage(spark, cfg, end, start, progress, force=True) for name, stage in STAGES.items()}
