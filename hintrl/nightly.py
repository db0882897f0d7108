"""Run the `hintrl_nightly` DAG in this process with Airflow's `dag.test()` on a temporary SQLite
metadata database (the embedded default; a deployment runs the same DAG under a scheduler)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from hintrl.config import HintrlConfig
from hintrl.dates import parse_ds
from hintrl.errors import DataContractError, HintrlError
from hintrl.lake import RAW_DAILY_TABLES, Lake, partition_complete
from hintrl.orchestration import failures_path, summary_path

DAGS_DIR = Path(__file__).resolve().parent.parent / "dags"


def check_raw_day(lake: Lake, ds: str) -> None:
    for table in RAW_DAILY_TABLES:
        uri = lake.raw(table, ds)
        if not partition_complete(uri):
            raise DataContractError(f"missing raw partition {table}/ds={ds} ({uri}): the nightly for the next day needs complete logs of {ds}")


def spark_connection(master: str) -> str:
    """The `spark_default` connection (JSON form) for a Spark master URL: local[*], spark://host:port, yarn."""
    return json.dumps({"conn_type": "spark", "host": master})


def prepare_airflow(airflow_home: Path, master: str | None = None) -> None:
    """Point Airflow at a private home and SQLite DB, and `spark_default` at the master (local[*]
    unless given or already defined in the environment); must run before airflow is imported."""
    airflow_home.mkdir(parents=True, exist_ok=True)
    if master or "AIRFLOW_CONN_SPARK_DEFAULT" not in os.environ:
        os.environ["AIRFLOW_CONN_SPARK_DEFAULT"] = spark_connection(master or "local[*]")
    os.environ["AIRFLOW_HOME"] = str(airflow_home)
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{airflow_home / 'airflow.db'}"
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(DAGS_DIR)


def load_dag(dag_id: str = "hintrl_nightly"):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"hintrl_dag_{dag_id}", DAGS_DIR / f"{dag_id}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(v for v in vars(module).values() if getattr(v, "dag_id", None) == dag_id)


def _failure_report(home: Path, dag_run) -> str:  # type: ignore[no-untyped-def]
    """Which tasks failed, with the errors the failure callback recorded for this run."""
    run_id = getattr(dag_run, "run_id", None)
    errors = {}
    path = failures_path(home)
    if path.exists():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("run_id") == run_id:
                errors[entry["task_id"]] = entry["error"]
    failed, skipped = [], []
    try:
        for ti in dag_run.get_task_instances():
            state = str(ti.state)
            if state.endswith("upstream_failed"):
                skipped.append(ti.task_id)
            elif state.endswith("failed"):
                failed.append(ti.task_id)
    except Exception:  # the run object may be detached: the callback's record still says what failed
        failed = list(errors)
    text = "failed task(s): " + (", ".join(f"{t} ({errors[t]})" if t in errors else t for t in sorted(set(failed)))
                                 or "unknown")
    if skipped:
        text += f"; not run: {', '.join(sorted(set(skipped)))}"
    return text + " (see the task log above)"


def run_nightly_dag(
    cfg: HintrlConfig, ds: str, settings: dict[str, Any], master: str | None, progress: Callable[[str], None]
) -> dict[str, Any]:
    from offline_rl.registry import check_tracking_uri

    parse_ds(ds)
    window = cfg.nightly_window(ds)
    check_tracking_uri(cfg.tracking_uri)
    check_raw_day(Lake(cfg.lake_uri), window.eval_day)
    airflow_home = Path(tempfile.mkdtemp(prefix="hintrl-airflow-"))
    prepare_airflow(airflow_home, master)
    progress(f"nightly {ds}: Airflow metadata DB in {airflow_home}")

    from airflow.models.pool import Pool
    from airflow.utils import db

    db.initdb()
    orch = cfg.orchestration
    Pool.create_or_update_pool(orch.spark_pool, orch.spark_pool_slots, "hintrl Spark jobs", include_deferred=False)
    dag = load_dag()
    for task in dag.tasks:
        # An interactive run reports a failure at once; the scheduler's retries (with backoff) are for
        # transient trouble on a cluster.
        task.retries = 0
    summary_file = summary_path(cfg.home, ds)
    summary_file.unlink(missing_ok=True)
    conf = {"ds": ds, "home": str(Path(cfg.home).resolve()), "lake": cfg.lake, "mlflow_uri": cfg.mlflow_uri,
            "settings": settings}
    logical_date = dt.datetime.combine(parse_ds(ds), dt.time(0), tzinfo=dt.timezone.utc)
    dag_run = dag.test(logical_date=logical_date, run_conf=conf)
    state = str(getattr(dag_run, "state", "unknown"))
    if not state.endswith("success") or not summary_file.exists():
        raise HintrlError(f"nightly DAG for ds={ds} ended {state}; " + _failure_report(cfg.home, dag_run))
    return {"ds": ds, "state": state, "summary": summary_file.read_text().rstrip()}
