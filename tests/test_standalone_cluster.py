"""The Spark jobs under spark-submit against a real standalone master and worker on loopback
(started from the pyspark package's own scripts) give the same tables as local mode."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hintrl.config import HintrlConfig, SimulatorConfig
from hintrl.lake import Lake
from pipelines.stages import features_stage, ingest_stage
from simulator.writer import simulate_to_lake

pytestmark = pytest.mark.spark
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
D1, D2 = "2026-11-01", "2026-11-02"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    work = tmp_path_factory.mktemp("spark-standalone")
    import pyspark

    env = {**os.environ, "SPARK_HOME": os.path.dirname(pyspark.__file__), "PYSPARK_PYTHON": sys.executable,
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(work), "SPARK_WORKER_DIR": str(work)}
    port, ui = free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    master = subprocess.Popen([str(BIN / "spark-class"), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(ui)], env=env,
                              stdout=open(work / "master.log", "w"), stderr=subprocess.STDOUT)
    worker = subprocess.Popen([str(BIN / "spark-class"), "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                               "--webui-port", str(free_port()), "--cores", "2", "--memory", "2g", url], env=env,
                              stdout=open(work / "worker.log", "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as r:
                    if json.loads(r.read()).get("aliveworkers", 0) >= 1:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("standalone master/worker did not come up: " + (work / "master.log").read_text()[-2000:])
            time.sleep(1)
        yield url, env
    finally:
        for proc in (worker, master):
            proc.terminate()
            proc.wait(timeout=30)


def test_feature_jobs_on_a_standalone_cluster_equal_local_mode(spark, standalone, tmp_path):
    url, env = standalone
    world = SimulatorConfig(n_users=300, n_queries=40, n_items=100, seed=8)
    local_lake, cluster_lake = Lake(str(tmp_path / "local")), Lake(str(tmp_path / "cluster"))
    simulate_to_lake(world, local_lake, D1, 2, progress=lambda _: None)
    shutil.copytree(tmp_path / "local" / "raw", tmp_path / "cluster" / "raw")

    cfg = HintrlConfig(home=tmp_path, lake=local_lake.root)
    ingest_stage(spark, cfg, D2, D1, progress=lambda _: None)
    features_stage(spark, cfg, D2, D1, progress=lambda _: None)

    for job in ("ingest", "long_term", "realtime"):
        proc = subprocess.run(
            [str(BIN / "spark-submit"), "--master", url, "--conf", f"spark.pyspark.python={sys.executable}",
             "--conf", "spark.executor.memory=1g", str(REPO / "pipelines" / f"{job}.py"),
             "--lake", cluster_lake.root, "--ds", D2, "--since", D1],
            env=env, capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    def same(a_uri, b_uri):
        a, b = spark.read.parquet(a_uri), spark.read.parquet(b_uri)
        return a.count() == b.count() and a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0

    for day in (D1, D2):
        for table in ("search_pv", "user_action", "user_profile"):
            assert same(local_lake.validated(table, day), cluster_lake.validated(table, day)), (table, day)
        for table in ("user_lt", "query_lt", "pv_rt"):
            assert same(local_lake.features(table, day), cluster_lake.features(table, day)), (table, day)
    # query_lt of the first day is empty (no earlier days); the second day's tables are not
    for table in ("user_lt", "query_lt", "pv_rt"):
        assert spark.read.parquet(cluster_lake.features(table, D2)).count() > 0, table
