"""hintrl_nightly: the nightly run for `ds` (the logical date; a param overrides it on manual runs).

Logs are complete through ds-1. The run waits for ds-1's raw partitions, runs the Spark jobs on the
`spark_default` connection (ds-1, plus any earlier day of the training window whose output is
missing), checks the data between stages, trains CQL and DQN in parallel in their own processes on
the days before ds-1, evaluates every policy off-policy on ds-1, and the gate decides whether the
challenger becomes the `champion` that serves on ds. Every output is replaced whole, so a rerun of a
day duplicates nothing. Wiring only: the work is in hintrl.orchestration and the `hintrl` stages.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, PokeReturnValue, dag, get_current_context, task

from hintrl.config import GATE_ESTIMATORS, HintrlConfig
from hintrl.orchestration import (
    nightly_plan,
    publish_summary,
    quality_check,
    raw_logs_ready,
    run_stage,
    spark_job,
    task_defaults,
)
from hintrl.rewards import PRESETS
from offline_rl.train import ALGOS

DEFAULT_HOME = os.environ.get("HINTRL_HOME", os.path.expanduser("~/.hintrl"))
ORCH = HintrlConfig().orchestration


@dag(
    dag_id="hintrl_nightly",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=task_defaults(ORCH),
    tags=["hintrl"],
    params={
        "ds": Param(None, type=["null", "string"], description="override the day (default: the logical date)"),
        "home": Param(DEFAULT_HOME, type="string", description="hintrl home folder"),
        "lake": Param(None, type=["null", "string"], description="lake root (default <home>/lake)"),
        "mlflow_uri": Param(None, type=["null", "string"], description="MLflow tracking URI"),
        "reward_preset": Param(None, type=["null", "string"], enum=[None, *PRESETS],
                               description="reward preset of the transitions (default: reward.preset)"),
        "algos": Param(None, type=["null", "array"], items={"type": "string", "enum": list(ALGOS)},
                       description="algorithms to train (default: train.algos)"),
        "train_days": Param(None, type=["null", "integer"], minimum=1, description="days of logs to train on"),
        "gate": Param({}, type="object", description=f"gate settings, e.g. {{'estimator': one of {list(GATE_ESTIMATORS)}, "
                                                      "'min_margin_over_champion': 0.01}"),
        "settings": Param({}, type="object", description="any hintrl.config override, e.g. {'train.n_steps': 5000}"),
    },
)
def hintrl_nightly():
    @task(multiple_outputs=True, retries=0)
    def plan() -> dict:
        context = get_current_context()
        return nightly_plan(context["params"], context.get("logical_date") or context["dag_run"].run_after)

    @task.sensor(poke_interval=ORCH.raw_poke_interval_s, timeout=ORCH.raw_wait_timeout_s, mode="reschedule")
    def wait_for_raw_logs(conf: dict, day: str) -> PokeReturnValue:
        return PokeReturnValue(is_done=raw_logs_ready(conf, day))

    @task(retries=0)
    def check(stage: str, conf: dict, day: str, since: str) -> dict:
        return quality_check(stage, conf, day, since)

    @task(retries=0)
    def algorithms(p: dict) -> list:
        return p["algos"]

    @task
    def train(conf: dict, day: str, algo: str) -> dict:
        return run_stage(["train", "--algo", algo], day, conf)

    @task
    def evaluate(conf: dict, day: str) -> dict:
        return run_stage(["evaluate"], day, conf)

    @task
    def promote(conf: dict, day: str) -> dict:
        return run_stage(["promote"], day, conf)

    @task
    def summary(conf: dict, day: str, ingested: dict, featured: dict, mdp: dict, trained: list, evaluated: dict,
                promoted: dict) -> str:
        reports = {"ingest": ingested, "features": featured, "mdp": mdp,
                   "train": {t["algo"]: t for t in trained}, "evaluate": evaluated, "promote": promoted}
        text = publish_summary(conf["home"], day, reports)
        print(text)
        return text

    p = plan()
    conf, ds, day, since = p["conf"], p["ds"], p["eval_day"], p["since"]  # ds: the nightly; day: ds-1
    raw = wait_for_raw_logs(conf, day)
    ingest = spark_job("ingest", "ingest", p, ORCH)
    ingested = check.override(task_id="check_ingest")("ingest", conf, day, since)
    long_term = spark_job("long_term_features", "long_term", p, ORCH)
    realtime = spark_job("realtime_features", "realtime", p, ORCH)
    featured = check.override(task_id="check_features")("features", conf, day, since)
    build_mdp = spark_job("build_mdp", "mdp", p, ORCH)
    mdp = check.override(task_id="check_transitions")("transitions", conf, day, since)
    trained = train.partial(conf=conf, day=ds).expand(algo=algorithms(p))
    evaluated = evaluate(conf, ds)
    promoted = promote(conf, ds)
    raw >> ingest >> ingested >> [long_term, realtime] >> featured >> build_mdp >> mdp >> trained >> evaluated >> promoted
    summary(conf, ds, ingested, featured, mdp, trained, evaluated, promoted)


nightly_dag = hintrl_nightly()
