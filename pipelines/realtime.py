"""Real-time features of every page view of day `ds` (features/pv_rt), strictly before the event.

Windows read validated page views of `ds` and up to `FeatureConfig.realtime_lookback_days` days
before it, so a user's last 100 page views cross midnight. The last-5 features read the day's
actions plus a small carried tail (each user's last 5 actions and clicks before ds, written by the
previous day's run to features/action_tail), falling back to the lookback days when it is missing.
Everything is one pass over the page views and actions shuffled by user (sql/pv_rt.sql).

    spark-submit pipelines/realtime.py --lake LAKE --ds YYYY-MM-DD
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store.registry import HintSlots
from hintrl.config import FeatureConfig
from hintrl.contracts import RAW_CONTRACT, spark_ddl
from hintrl.dates import shift
from hintrl.errors import DataContractError
from hintrl.lake import Lake
from pipelines.spark import (
    list_partitions,
    load_sql,
    partition_exists,
    with_hint_slot,
    write_partition,
)


def build_pv_rt(spark: SparkSession, lake: Lake, ds: str, slots: HintSlots, cfg: FeatureConfig) -> DataFrame:
    first = shift(ds, -cfg.realtime_lookback_days)
    days = [d for d in list_partitions(spark, lake.validated_table("search_pv")) if first <= d <= ds]
    if ds not in days:
        raise DataContractError(f"no validated search_pv for ds={ds}: run ingest first")
    frames = [spark.read.parquet(lake.validated("search_pv", d)).withColumn("ds", F.lit(d)) for d in days]
    lookback = frames[0]
    for frame in frames[1:]:
        lookback = lookback.unionByName(frame)
    with_hint_slot(spark, lookback, slots).createOrReplaceTempView("pv_lookback")
    n = cfg.realtime_window_pvs
    running, counts, names = [], [], []
    for s, x in enumerate(slots.suffixes):
        for kind, condition in (("clicks", f"hint_clicked AND hint_slot = {s}"), ("shows", f"hint_slot = {s}")):
            run = f"run_{kind}_{x}"
            names.append(run)
            running.append(f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END) OVER s AS {run}")
            counts.append(f"CAST(COALESCE(LAG({run}, 1) OVER o, 0) - COALESCE(LAG({run}, {n + 1}) OVER o, 0) AS INT)"
                          f" AS {kind}_last100_{x}")
    _with_items(spark, lake, _actions_before(spark, lake, ds, days).unionByName(_actions_of(spark, lake, [ds]))
                ).createOrReplaceTempView("actions")
    return spark.sql(load_sql("pv_rt.sql", ds=ds, running_counts=",\n    ".join(running),
                              window_counts=",\n    ".join(counts), running_columns=", ".join(names)))


# Internal table (an extension of the lake layout): per user, the last 5 actions and last 5 clicks
# before ds, which is all the last-5 features of day ds need from earlier days.
ACTION_TAIL = "action_tail"


def _actions_of(spark: SparkSession, lake: Lake, days: list[str]) -> DataFrame:
    present = [d for d in days if partition_exists(spark, lake.validated("user_action", d))]
    if not present:
        return spark.createDataFrame([], spark_ddl("user_action"))
    columns = [name for name, _, _ in RAW_CONTRACT["user_action"]]
    return spark.read.parquet(*[lake.validated("user_action", d) for d in present]).select(*columns)


def _actions_before(spark: SparkSession, lake: Lake, ds: str, days: list[str]) -> DataFrame:
    """Earlier actions the last-5 features of ds need: the carried tail, else the lookback days."""
    tail_uri = lake.features(ACTION_TAIL, ds)
    if partition_exists(spark, tail_uri):
        return spark.read.parquet(tail_uri)
    return _actions_of(spark, lake, [d for d in days if d < ds])


def _with_items(spark: SparkSession, lake: Lake, actions: DataFrame) -> DataFrame:
    """Actions with the price, category and conversion rate of their item (null when unknown)."""
    item_uri = lake.raw("item")
    if partition_exists(spark, item_uri):
        items = spark.read.parquet(item_uri).select("item_id", "price", "category_id", "conversion_rate")
    else:
        items = spark.createDataFrame([], "item_id string, price double, category_id int, conversion_rate double")
    return actions.join(items, "item_id", "left")


def build_action_tail(spark: SparkSession, lake: Lake, ds: str, cfg: FeatureConfig) -> DataFrame:
    """The action tail before day ds + 1: from the tail before ds (or the lookback days) and ds's actions."""
    first = shift(ds, -cfg.realtime_lookback_days)
    days = [d for d in list_partitions(spark, lake.validated_table("user_action")) if first <= d <= ds]
    _actions_before(spark, lake, ds, days).unionByName(_actions_of(spark, lake, [ds])).createOrReplaceTempView("actions_upto")
    return spark.sql(load_sql("action_tail.sql"))


def run(spark: SparkSession, lake: Lake, ds: str, slots: HintSlots, cfg: FeatureConfig) -> int:
    """Write pv_rt of ds, then the action tail that day ds + 1 starts from."""
    rows = write_partition(build_pv_rt(spark, lake, ds, slots, cfg), lake.features("pv_rt", ds))
    write_partition(build_action_tail(spark, lake, ds, cfg), lake.features(ACTION_TAIL, shift(ds, 1)))
    return rows


if __name__ == "__main__":
    from pipelines.entry import run_job

    run_job("realtime")
