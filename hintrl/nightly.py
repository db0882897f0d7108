"""Run the `hintrl_nightly` DAG in this process with Airflow's `dag.test()` on a temporary SQLite
metadata database (the embedded default; a deployment runs the same DAG under a scheduler)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from hintrl.config import HintrlConfig
from hintrl.dates import NightlyWindow, parse_ds
from hintrl.errors import DataContractError, HintrlError
from hintrl.lake import RAW_DAILY_TABLES, Lake, partition_complete
from hintrl.orchestration import summary_path

DAGS_DIR = Path(__file__).resolve().parent.parent / "dags"


def check_raw_day(lake: Lake, ds: str) -> None:
    for table in RAW_DAILY_TABLES:
        uri = lake.raw(table, ds)
        if not partition_complete(uri):
            raise DataContractError(f"missing raw partition {table}/ds={ds} ({uri}): the nightly for the next day needs complete logs of {ds}")


def prepare_airflow(airflow_home: Path) -> None:
    """Point Airflow at a private home and SQLite DB; must run before airflow is imported."""
    airflow_home.mkdir(parents=True, exist_ok=True)
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


def run_nightly_dag(
    cfg: HintrlConfig, ds: str, settings: dict[str, Any], master: str | None, progress: Callable[[str], None]
) -> dict[str, Any]:
    from offline_rl.registry import check_tracking_uri

    parse_ds(ds)
    window = NightlyWindow(ds, cfg.train.train_days)
    check_tracking_uri(cfg.tracking_uri)
    check_raw_day(Lake(cfg.lake_uri), window.eval_day)
    airflow_home = Path(tempfile.mkdtemp(prefix="hintrl-airflow-"))
    prepare_airflow(airflow_home)
    progress(f"nightly {ds}: Airflow metadata DB in {airflow_home}")

    from airflow.utils import db

    db.initdb()
    dag = load_dag()
    summary_file = summary_path(cfg.home, ds)
    summary_file.unlink(missing_ok=True)
    conf = {"ds": ds, "home": str(Path(cfg.home).resolve()), "lake": cfg.lake, "mlflow_uri": cfg.mlflow_uri,
            "master": master, "settings": settings}
    logical_date = dt.datetime.combine(parse_ds(ds), dt.time(0), tzinfo=dt.timezone.utc)
    dag_run = dag.test(logical_date=logical_date, run_conf=conf)
    state = str(getattr(dag_run, "state", "unknown"))
    if not state.endswith("success") or not summary_file.exists():
        failed = []
        try:
            failed = [ti.task_id for ti in dag_run.get_task_instances() if str(ti.state).endswith("failed")]
        except Exception:  # the run object may be detached; the state alone still decides
            pass
        raise HintrlError(f"nightly DAG for ds={ds} ended {state}; failed task(s): {', '.join(failed) or 'unknown'} (see the task log above)")
    return {"ds": ds, "state": state, "summary": summary_file.read_text().rstrip()}
