"""hintrl_backfill: recompute raw validation, features and transitions for a date range.

For ad-hoc Spark backfills. Ingest and transitions run per day with bounded concurrency; features
run in date order in one task, because each day's long-term snapshot builds on the day before.
Every partition is replaced whole, so a rerun is idempotent. Wiring only: each task runs `hintrl`.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from hintrl.dates import day_range
from hintrl.orchestration import run_stage

DEFAULT_HOME = os.environ.get("HINTRL_HOME", os.path.expanduser("~/.hintrl"))
MAX_PARALLEL_DAYS = 2


@dag(
    dag_id="hintrl_backfill",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["hintrl"],
    params={
        "start": Param("2026-11-01", type="string", description="first day (YYYY-MM-DD)"),
        "end": Param("2026-11-07", type="string", description="last day (YYYY-MM-DD)"),
        "home": Param(DEFAULT_HOME, type="string", description="hintrl home folder"),
        "lake": Param(None, type=["null", "string"], description="lake root (default <home>/lake)"),
        "master": Param(None, type=["null", "string"], description="Spark master (default local[*])"),
        "settings": Param({}, type="object", description="hintrl.config overrides"),
    },
)
def hintrl_backfill():
    @task
    def plan() -> dict:
        params = get_current_context()["params"]
        conf = {k: params[k] for k in ("home", "lake", "master")} | {"settings": params["settings"] or {}}
        return {"start": params["start"], "end": params["end"], "days": day_range(params["start"], params["end"]), "conf": conf}

    @task
    def days(p: dict) -> list:
        return p["days"]

    @task(max_active_tis_per_dagrun=MAX_PARALLEL_DAYS)
    def ingest(p: dict, day: str) -> dict:
        return run_stage(["ingest", "--force"], day, p["conf"])

    @task
    def features(p: dict) -> dict:
        return run_stage(["features", "--since", p["start"], "--force"], p["end"], p["conf"])

    @task(max_active_tis_per_dagrun=MAX_PARALLEL_DAYS)
    def build_mdp(p: dict, day: str) -> dict:
        return run_stage(["build-mdp", "--force"], day, p["conf"])

    p = plan()
    every_day = days(p)
    ingest.partial(p=p).expand(day=every_day) >> features(p) >> build_mdp.partial(p=p).expand(day=every_day)


backfill_dag = hintrl_backfill()
