"""Backfill recomputes a date range; running it twice changes nothing (no duplicates)."""

import pytest

from hintrl.config import HintrlConfig, SimulatorConfig
from hintrl.lake import Lake
from pipelines.stages import backfill
from simulator.writer import simulate_to_lake

pytestmark = pytest.mark.spark


def snapshot(spark, lake, days):
    out = {}
    for day in days:
        t = spark.read.parquet(lake.transitions(day))
        out[day] = (t.count(), t.select("event_id").distinct().count(),
                    spark.read.parquet(lake.features("pv_rt", day)).count(),
                    spark.read.parquet(lake.features("user_lt", day)).count(),
                    spark.read.parquet(lake.validated("search_pv", day)).count())
    return out


def test_backfill_is_idempotent(spark, tmp_path):
    world = SimulatorConfig(n_users=200, n_queries=30, n_items=100, seed=4)
    cfg = HintrlConfig(home=tmp_path, simulator=world)
    lake = Lake(cfg.lake_uri)
    written = simulate_to_lake(world, lake, "2026-11-01", 2, progress=lambda _: None)
    days = ["2026-11-01", "2026-11-02"]
    report = backfill(spark, cfg, days[0], days[1], progress=lambda _: None)
    assert set(report["mdp"]["days"]) == set(days)
    first = snapshot(spark, lake, days)
    backfill(spark, cfg, days[0], days[1], progress=lambda _: None)
    assert snapshot(spark, lake, days) == first
    assert sum(first[d][4] for d in days) == written["search_pv"]  # every page view validated once
    for count, distinct, *_ in first.values():
        assert count == distinct  # one transition per page view, no duplicates
