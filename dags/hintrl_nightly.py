"""hintrl_nightly: the nightly run for `ds` (the logical date).

Logs are complete through ds-1: the Spark stages process ds-1 (and catch up any earlier day of the
training window whose outputs are missing), CQL and DQN train on the days before ds-1 in their own
processes, every policy is evaluated off-policy on ds-1, and the gate decides whether the
challenger becomes the `champion` that serves on ds. Wiring only: each task runs a `hintrl` stage.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from hintrl.config import TrainConfig
from hintrl.dates import NightlyWindow
from hintrl.orchestration import publish_summary, run_stage

DEFAULT_HOME = os.environ.get("HINTRL_HOME", os.path.expanduser("~/.hintrl"))


@dag(
    dag_id="hintrl_nightly",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["hintrl"],
    params={
        "ds": Param(None, type=["null", "string"], description="override the day (default: the logical date)"),
        "home": Param(DEFAULT_HOME, type="string", description="hintrl home folder"),
        "lake": Param(None, type=["null", "string"], description="lake root (default <home>/lake)"),
        "mlflow_uri": Param(None, type=["null", "string"], description="MLflow tracking URI"),
        "master": Param(None, type=["null", "string"], description="Spark master (default local[*])"),
        "settings": Param({}, type="object", description="hintrl.config overrides, e.g. {'reward.preset': 'guided'}"),
    },
)
def hintrl_nightly():
    @task(multiple_outputs=True)
    def plan() -> dict:
        context = get_current_context()
        params = context["params"]
        when = context.get("logical_date") or context["dag_run"].run_after
        ds = params["ds"] or when.strftime("%Y-%m-%d")
        settings = params["settings"] or {}
        window = NightlyWindow(ds, int(settings.get("train.train_days", TrainConfig().train_days)))
        conf = {k: params[k] for k in ("home", "lake", "mlflow_uri", "master")} | {"settings": settings}
        algos = list(settings.get("train.algos", TrainConfig().algos))
        return {"ds": ds, "eval_day": window.eval_day, "since": window.first_day, "algos": algos, "conf": conf}

    @task
    def algorithms(p: dict) -> list:
        return p["algos"]

    @task
    def ingest(p: dict) -> dict:
        return run_stage(["ingest", "--since", p["since"]], p["eval_day"], p["conf"])

    @task
    def features(p: dict) -> dict:
        return run_stage(["features", "--since", p["since"]], p["eval_day"], p["conf"])

    @task
    def build_mdp(p: dict) -> dict:
        return run_stage(["build-mdp", "--since", p["since"]], p["eval_day"], p["conf"])

    @task
    def train(p: dict, algo: str) -> dict:
        return run_stage(["train", "--algo", algo], p["ds"], p["conf"])

    @task
    def evaluate(p: dict) -> dict:
        return run_stage(["evaluate"], p["ds"], p["conf"])

    @task
    def promote(p: dict) -> dict:
        return run_stage(["promote"], p["ds"], p["conf"])

    @task
    def summary(p: dict, ingested: dict, featured: dict, mdp: dict, trained: list, evaluated: dict, promoted: dict) -> str:
        reports = {"ingest": ingested, "features": featured, "mdp": mdp,
                   "train": {t["algo"]: t for t in trained}, "evaluate": evaluated, "promote": promoted}
        text = publish_summary(p["conf"]["home"], p["ds"], reports)
        print(text)
        return text

    p = plan()
    ingested = ingest(p)
    featured = features(p)
    mdp = build_mdp(p)
    trained = train.partial(p=p).expand(algo=algorithms(p))
    evaluated = evaluate(p)
    promoted = promote(p)
    ingested >> featured >> mdp >> trained >> evaluated >> promoted
    summary(p, ingested, featured, mdp, trained, evaluated, promoted)


nightly_dag = hintrl_nightly()
