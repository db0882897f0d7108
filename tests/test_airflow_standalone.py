"""The DAGs under a real scheduler: `airflow standalone` (api-server, scheduler, dag-processor,
triggerer) on loopback with its own SQLite home; `hintrl_nightly` is triggered through the REST API
and must succeed, then `hintrl_backfill` over two days."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hintrl.nightly import spark_connection

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SMALL_WORLD = ["--set", "simulator.n_users=400", "--set", "simulator.n_queries=40", "--set", "simulator.n_items=200"]
FAST = {"train.n_steps": 200, "train.n_steps_per_epoch": 100, "ope.n_bootstrap": 100, "ope.fqe_steps": 50}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base: str):
        self.base = base
        self.token = ""

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(self.base + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json",
                                                  **({"Authorization": f"Bearer {self.token}"} if self.token else {})})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            run = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(5)
        raise AssertionError(f"{dag_id} run {run_id} did not finish in {timeout:.0f}s")

    def task_states(self, dag_id: str, run_id: str) -> dict:
        tis = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]
        return {(t["task_id"], t["map_index"]): t["state"] for t in tis}


@pytest.fixture(scope="module")
def airflow(tmp_path_factory):
    home = tmp_path_factory.mktemp("hintrl-home")
    airflow_home = tmp_path_factory.mktemp("airflow-standalone")
    subprocess.run([sys.executable, "-m", "hintrl.cli", "simulate", "--ds", "2026-11-01", "--days", "3",
                    "--home", str(home), *SMALL_WORLD], check=True, capture_output=True, timeout=300)
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW_CONN_SPARK_DEFAULT": spark_connection("local[2]"),
        "HINTRL_HOME": str(home),
    }
    log = open(airflow_home / "standalone.log", "w")
    proc = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    api = Api(f"http://127.0.0.1:{port}")
    try:
        deadline = time.time() + 240
        while True:
            try:
                api.token = api.call("GET", "/auth/token")["access_token"]
                dags = {d["dag_id"] for d in api.call("GET", "/api/v2/dags")["dags"]}
                if {"hintrl_nightly", "hintrl_backfill"} <= dags:
                    break
            except (OSError, urllib.error.HTTPError, KeyError):
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("airflow standalone did not come up: " + (airflow_home / "standalone.log").read_text()[-3000:])
            time.sleep(3)
        api.call("POST", "/api/v2/pools", {"name": "spark", "slots": 1, "description": "hintrl Spark jobs"})
        yield api, home, airflow_home
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def trigger(api: Api, dag_id: str, logical_date: str, conf: dict) -> str:
    run = api.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": conf})
    return run["dag_run_id"]


def unpause(api: Api, dag_id: str) -> None:
    api.call("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})


def fail_other_runs(api: Api, dag_id: str, keep: str) -> None:
    """Unpausing makes the scheduler start its own run for the latest interval (a day with no logs
    here); mark it failed so that max_active_runs=1 leaves room for the run under test."""
    for run in api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns")["dag_runs"]:
        if run["dag_run_id"] != keep and run["state"] in ("queued", "running"):
            api.call("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}", {"state": "failed"})


def test_nightly_then_backfill_under_a_real_scheduler(airflow):
    api, home, airflow_home = airflow
    conf = {"home": str(home), "train_days": 1, "settings": FAST,
            "gate": {"min_effective_sample_size": 0, "min_margin_over_behavior": -100}}
    run_id = trigger(api, "hintrl_nightly", "2026-11-04T00:00:00Z", conf)
    unpause(api, "hintrl_nightly")
    time.sleep(3)
    fail_other_runs(api, "hintrl_nightly", run_id)
    run = api.wait_for_run("hintrl_nightly", run_id, timeout=900)
    states = api.task_states("hintrl_nightly", run_id)
    assert run["state"] == "success", (states, (airflow_home / "standalone.log").read_text()[-4000:])
    assert states[("ingest", -1)] == "success" and states[("check_transitions", -1)] == "success"
    assert {states[("train", 0)], states[("train", 1)]} == {"success"}
    summary = (home / "staging" / "ds=2026-11-04" / "summary.txt").read_text()
    assert "Gate: PROMOTED to champion" in summary

    unpause(api, "hintrl_backfill")
    backfill = trigger(api, "hintrl_backfill", "2026-11-05T00:00:00Z",
                       {"home": str(home), "start": "2026-11-02", "end": "2026-11-03"})
    run = api.wait_for_run("hintrl_backfill", backfill, timeout=900)
    states = api.task_states("hintrl_backfill", backfill)
    assert run["state"] == "success", states
    assert states[("ingest", 0)] == states[("ingest", 1)] == "success"
    assert states[("build_mdp", 0)] == states[("build_mdp", 1)] == "success"
    checked = api.call("GET", f"/api/v2/dags/hintrl_backfill/dagRuns/{backfill}/taskInstances/check_transitions/xcomEntries/return_value")
    value = json.loads(checked["value"]) if isinstance(checked["value"], str) else checked["value"]
    assert set(value["days"]) == {"2026-11-02", "2026-11-03"}
