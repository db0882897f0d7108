"""docker/ is checked by reading, not running (no Docker engine here): structure and pins."""

import yaml
from conftest import REPO


def test_compose_has_every_component_of_the_deployment():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "mlflow", "spark-master", "spark-worker", "airflow-init", "airflow-apiserver",
            "airflow-scheduler", "airflow-dag-processor"} <= set(services)
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        env = services[name]["environment"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/hintrl/src/dags"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert services["airflow-scheduler"]["command"] == "airflow scheduler"
    assert "spark://spark-master:7077" in services["spark-worker"]["command"]
    assert services["mlflow"]["command"].split()[:2] == ["mlflow", "server"]
    assert "airflow pools set spark" in services["airflow-init"]["command"]


def test_spark_default_resolves_to_the_master_spark_submit_gets(monkeypatch):
    """The compose file's spark_default (URI form) and the local one `hintrl nightly` defines (JSON
    form) give SparkSubmitHook the right --master."""
    from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

    from hintrl.nightly import spark_connection

    env = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())["services"]["airflow-scheduler"]["environment"]
    for value, master in ((env["AIRFLOW_CONN_SPARK_DEFAULT"], "spark://spark-master:7077"),
                          (spark_connection("local[*]"), "local[*]")):
        monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", value)
        assert SparkSubmitHook(conn_id="spark_default")._resolve_connection()["master"] == master


def test_image_installs_the_pinned_tree_and_cpu_torch():
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile and "openjdk-17" in dockerfile
    assert '"torch==2.13.0"' in dockerfile and "-c constraints.txt -e ." in dockerfile and "pip check" in dockerfile
    for folder in ("hintrl", "pipelines", "feature_store", "offline_rl", "simulator", "sql", "dags"):
        assert f"COPY {folder} ./{folder}" in dockerfile
    pins = (REPO / "constraints.txt").read_text()
    assert "psycopg2-binary==" in pins and "apache-airflow==3.3.2" in pins
