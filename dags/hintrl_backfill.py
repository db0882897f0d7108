"""hintrl_backfill: recompute raw validation, features and transitions for a date range.

For ad-hoc Spark backfills. Ingest and transitions run per day, at most
`orchestration.backfill_max_parallel_days` at once (and never more Spark jobs than the Spark pool's
slots); the feature jobs run once over the range in date order, because each day's long-term
snapshot builds on the day before. Data-quality checks sit between the stages. Every partition is
replaced whole, so a rerun is idempotent. Wiring only: the work is in hintrl.orchestration.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from hintrl.config import HintrlConfig
from hintrl.orchestration import backfill_plan, quality_check, spark_job, task_defaults

DEFAULT_HOME = os.environ.get("HINTRL_HOME", os.path.expanduser("~/.hintrl"))
ORCH = HintrlConfig().orchestration


@dag(
    dag_id="hintrl_backfill",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    default_args=task_defaults(ORCH),
    tags=["hintrl"],
    params={
        "start": Param("2026-11-01", type="string", format="date", description="first day (YYYY-MM-DD)"),
        "end": Param("2026-11-07", type="string", format="date", description="last day (YYYY-MM-DD)"),
        "home": Param(DEFAULT_HOME, type="string", description="hintrl home folder"),
        "lake": Param(None, type=["null", "string"], description="lake root (default <home>/lake)"),
        "settings": Param({}, type="object", description="hintrl.config overrides, e.g. {'reward.preset': 'guided'}"),
    },
)
def hintrl_backfill():
    @task(multiple_outputs=True, retries=0)
    def plan() -> dict:
        return backfill_plan(get_current_context()["params"])

    @task(retries=0)
    def per_day(p: dict, key: str) -> list:
        return p[key]

    @task(retries=0)
    def check(stage: str, conf: dict, start: str, end: str) -> dict:
        return quality_check(stage, conf, end, start)

    p = plan()
    conf, start, end = p["conf"], p["start"], p["end"]
    parallel = ORCH.backfill_max_parallel_days
    ingest = spark_job("ingest", "ingest", p, ORCH, per_day=per_day.override(task_id="ingest_args")(p, "ingest_args"), max_active_tis_per_dagrun=parallel)
    features = [spark_job("long_term_features", "long_term", p, ORCH), spark_job("realtime_features", "realtime", p, ORCH)]
    mdp = spark_job("build_mdp", "mdp", p, ORCH, per_day=per_day.override(task_id="mdp_args")(p, "mdp_args"), max_active_tis_per_dagrun=parallel)
    checked_ingest = check.override(task_id="check_ingest")("ingest", conf, start, end)
    checked_features = check.override(task_id="check_features")("features", conf, start, end)
    checked_transitions = check.override(task_id="check_transitions")("transitions", conf, start, end)
    ingest >> checked_ingest >> features >> checked_features >> mdp >> checked_transitions

backfill_dag = hintrl_backfill()
