import datetime as dt
import json

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"), safe_mode=False)
    assert bag.import_errors == {}
    return bag


def test_dagbag_imports_both_dags(bag):
    assert set(bag.dags) == {"hintrl_nightly", "hintrl_backfill"}


def test_nightly_structure(bag):
    dag = bag.dags["hintrl_nightly"]
    assert set(dag.task_ids) == {"plan", "wait_for_raw_logs", "ingest", "check_ingest", "long_term_features",
                                 "realtime_features", "check_features", "build_mdp", "check_transitions", "algorithms",
                                 "train", "evaluate", "promote", "summary"}
    up = {t: dag.get_task(t).upstream_task_ids for t in dag.task_ids}
    assert "wait_for_raw_logs" in up["ingest"] and "ingest" in up["check_ingest"]
    assert {"check_ingest"} <= up["long_term_features"] and {"check_ingest"} <= up["realtime_features"]
    assert {"long_term_features", "realtime_features"} <= up["check_features"]
    assert "check_features" in up["build_mdp"] and "build_mdp" in up["check_transitions"]
    assert "check_transitions" in up["train"] and "train" in up["evaluate"] and "evaluate" in up["promote"]
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert {"ds", "home", "lake", "mlflow_uri", "reward_preset", "algos", "train_days", "gate", "settings"} <= set(dag.params.keys())


def test_spark_tasks_use_spark_submit_on_spark_default_in_the_spark_pool(bag):
    from airflow.providers.apache.spark.operators.spark_submit import (
        SparkSubmitOperator,
    )

    for dag_id, tasks in {"hintrl_nightly": ("ingest", "long_term_features", "realtime_features", "build_mdp"),
                          "hintrl_backfill": ("ingest", "long_term_features", "realtime_features", "build_mdp")}.items():
        dag = bag.dags[dag_id]
        for task_id in tasks:
            task = dag.get_task(task_id)
            assert task.operator_class in (SparkSubmitOperator,) or task.task_type == "SparkSubmitOperator"
            kwargs = getattr(task, "partial_kwargs", None) or vars(task)
            application = kwargs.get("application") or task.application
            assert application.startswith(str(REPO / "pipelines")) and application.endswith(".py")
            assert (kwargs.get("conn_id") or getattr(task, "_conn_id", None)) == "spark_default"
            assert task.pool == "spark"


def test_retries_backoff_and_failure_callback(bag):
    from hintrl.orchestration import record_failure

    dag = bag.dags["hintrl_nightly"]
    for task_id in ("ingest", "train", "evaluate", "promote"):
        task = dag.get_task(task_id)
        assert task.retries == 2 and task.retry_exponential_backoff and task.max_retry_delay
        callbacks = task.on_failure_callback if isinstance(task.on_failure_callback, list) else [task.on_failure_callback]
        assert record_failure in callbacks
    # Bad data does not get better by retrying: the checks fail at once.
    assert dag.get_task("check_features").retries == 0
    sensor = dag.get_task("wait_for_raw_logs")
    assert sensor.mode == "reschedule" and sensor.timeout == 6 * 3600


def test_backfill_structure_bounds_parallel_days(bag):
    dag = bag.dags["hintrl_backfill"]
    assert set(dag.task_ids) == {"plan", "ingest_args", "ingest", "check_ingest", "long_term_features",
                                 "realtime_features", "check_features", "mdp_args", "build_mdp", "check_transitions"}
    assert dag.get_task("ingest").max_active_tis_per_dagrun == 2
    assert dag.get_task("build_mdp").max_active_tis_per_dagrun == 2
    assert "check_features" in dag.get_task("build_mdp").upstream_task_ids
    assert {"start", "end", "home", "lake", "settings"} <= set(dag.params.keys())


def test_nightly_plan_merges_params_into_settings_and_spark_arguments():
    from hintrl.orchestration import nightly_plan

    params = {"ds": None, "home": "/h", "lake": "/lake", "mlflow_uri": None, "reward_preset": "guided",
              "algos": ["dqn"], "train_days": 3, "gate": {"estimator": "wis"}, "settings": {"train.n_steps": 500}}
    plan = nightly_plan(params, dt.datetime(2026, 11, 8, tzinfo=dt.timezone.utc))
    assert (plan["ds"], plan["eval_day"], plan["since"]) == ("2026-11-08", "2026-11-07", "2026-11-04")
    assert plan["algos"] == ["dqn"]
    assert plan["conf"]["settings"] == {"train.n_steps": 500, "reward.preset": "guided", "train.algos": ["dqn"],
                                        "train.train_days": 3, "gate.estimator": "wis"}
    args = plan["mdp_args"]
    assert args[:6] == ["--lake", "/lake", "--ds", "2026-11-07", "--since", "2026-11-04"]
    assert "reward.preset=" + json.dumps("guided") in args
    assert plan["spark_conf"]["spark.sql.shuffle.partitions"] == "4"


def test_nightly_plan_refuses_bad_settings():
    from hintrl.errors import HintrlError
    from hintrl.orchestration import nightly_plan

    with pytest.raises(HintrlError, match="unknown setting"):
        nightly_plan({"ds": "2026-11-08", "home": "/h", "settings": {"train.nope": 1}}, dt.datetime(2026, 11, 8))


def test_spark_jobs_accept_settings(tmp_path):
    """A setting given to a job file reaches its config (the reward preset of build-mdp, say)."""
    from pipelines.entry import run_job

    with pytest.raises(SystemExit) as exit_info:
        run_job("mdp", ["--lake", str(tmp_path), "--ds", "2026-11-01", "--set", "reward.preset=nope"])
    assert exit_info.value.code == 1


def test_failure_callback_records_the_failed_task(tmp_path):
    from hintrl.orchestration import failures_path, record_failure

    class TI:
        dag_id, task_id, run_id, try_number, map_index = "hintrl_nightly", "check_features", "r1", 1, -1

    record_failure({"ti": TI(), "params": {"home": str(tmp_path)}, "exception": ValueError("null rate 3%")})
    entry = json.loads(failures_path(tmp_path).read_text().splitlines()[-1])
    assert entry["task_id"] == "check_features" and entry["error"] == "null rate 3%"


def test_stage_relay_reads_a_large_report_while_relaying_progress():
    import sys

    from hintrl.orchestration import relay

    # A report far larger than a pipe buffer, after progress on stderr: reading one pipe to its end
    # before the other would deadlock here.
    script = ("import sys\n"
              "for i in range(3): print(f'progress {i}', file=sys.stderr, flush=True)\n"
              "print('x' * 1_000_000)\n"
              "print('error: last words', file=sys.stderr)\n"
              "sys.exit(3)\n")
    logged = []
    code, out, last_error = relay([sys.executable, "-c", script], logged.append)
    assert code == 3 and len(out.strip()) == 1_000_000 and last_error == "last words"
    assert logged == ["progress 0", "progress 1", "progress 2", "error: last words"]
