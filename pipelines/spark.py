"""SparkSession creation and lake IO shared by the jobs."""

from __future__ import annotations

import uuid
from pathlib import Path

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from feature_store.registry import HintSlots
from hintrl.config import SparkConfig

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


def get_spark(cfg: SparkConfig) -> SparkSession:
    """The job's session; an active session (tests, spark-submit) is reused as it is."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder
    if cfg.master:  # empty: the master comes from spark-submit (or PySpark's local default)
        builder = builder.master(cfg.master)
    builder = builder.appName(cfg.app_name).config("spark.ui.showConsoleProgress", "false")
    for key, value in cfg.session_conf().items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def load_sql(name: str, **params: str) -> str:
    text = (SQL_DIR / name).read_text()
    return text.format(**params) if params else text


def _hadoop_path(spark: SparkSession, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def partition_exists(spark: SparkSession, uri: str) -> bool:
    """True when the partition folder holds a completed write (its _SUCCESS marker)."""
    path, fs = _hadoop_path(spark, uri.rstrip("/") + "/_SUCCESS")
    return bool(fs.exists(path))


def list_partitions(spark: SparkSession, table_uri: str) -> list[str]:
    """The ds values of completed partitions under a table folder, sorted."""
    path, fs = _hadoop_path(spark, table_uri)
    if not fs.exists(path):
        return []
    days = []
    for status in fs.listStatus(path):
        name = status.getPath().getName()
        if name.startswith("ds=") and "__tmp_" not in name and fs.exists(
            spark.sparkContext._jvm.org.apache.hadoop.fs.Path(status.getPath(), "_SUCCESS")
        ):
            days.append(name[3:])
    return sorted(days)


def write_partition(df: DataFrame, uri: str) -> int:
    """Replace partition folder `uri` whole with `df`; readers never see a half-written partition.

    Returns the number of rows written.
    """
    tmp_uri = f"{uri.rstrip('/')}.__tmp_{uuid.uuid4().hex}"
    # Rows are counted while they are written (not by reading the files back).
    rows = Observation(f"rows_written_{uuid.uuid4().hex}")
    df.observe(rows, F.count(F.lit(1)).alias("rows")).write.mode("overwrite").parquet(tmp_uri)
    written = rows.get["rows"]
    spark = df.sparkSession
    final, fs = _hadoop_path(spark, uri)
    tmp, _ = _hadoop_path(spark, tmp_uri)
    if fs.exists(final):
        fs.delete(final, True)
    fs.mkdirs(final.getParent())
    if not fs.rename(tmp, final):
        raise OSError(f"could not move {tmp_uri} to {uri}")
    return int(written)


def read_partition(spark: SparkSession, uri: str) -> DataFrame:
    return spark.read.parquet(uri)


def with_hint_slot(spark: SparkSession, pv: DataFrame, slots: HintSlots) -> DataFrame:
    """`pv` with `hint_slot`: the feature slot of its hint_type (null without a hint)."""
    if slots.per == "type":
        return pv.withColumn("hint_slot", F.col("hint_type"))
    slot_map = spark.createDataFrame(
        [(k, s) for k, s in enumerate(slots.slot_of_type)], "hint_type int, hint_slot int"
    )
    return pv.join(F.broadcast(slot_map), "hint_type", "left")
