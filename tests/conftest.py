"""Test-session fixtures: one SparkSession, Airflow pointed at a temporary home, 2 torch threads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Airflow reads its home and DB at import time: point them at a throwaway folder first.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="hintrl-test-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import logging  # noqa: E402

import pytest  # noqa: E402

# py4j logs "Closing down clientserver connection" after pytest closed its streams.
logging.getLogger("py4j").setLevel(logging.WARNING)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def spark():
    from hintrl.config import SparkConfig
    from pipelines.spark import get_spark

    session = get_spark(SparkConfig(master="local[2]", shuffle_partitions=2, app_name="hintrl-tests"))
    yield session
    session.stop()
