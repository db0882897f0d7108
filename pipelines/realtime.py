"""Real-time features of every page view of day `ds` (features/pv_rt), strictly before the event.

Windows read validated page views of `ds` and up to `FeatureConfig.realtime_lookback_days` days
before it, so a user's last 100 page views cross midnight.

    spark-submit pipelines/realtime.py --lake LAKE --ds YYYY-MM-DD
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store.registry import HintSlots
from hintrl.config import FeatureConfig
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
    window = (
        f"OVER (PARTITION BY user_id ORDER BY ts, event_id "
        f"ROWS BETWEEN {cfg.realtime_window_pvs} PRECEDING AND 1 PRECEDING)"
    )
    per_slot = ",\n    ".join(
        f"CAST(COALESCE(SUM(CASE WHEN hint_clicked AND hint_slot = {s} THEN 1 ELSE 0 END) {window}, 0) AS INT)"
        f" AS clicks_last100_{x},\n    "
        f"CAST(COALESCE(SUM(CASE WHEN hint_slot = {s} THEN 1 ELSE 0 END) {window}, 0) AS INT) AS shows_last100_{x}"
        for s, x in enumerate(slots.suffixes)
    )
    windows = spark.sql(load_sql("pv_rt.sql", ds=ds, per_slot_counts=per_slot))
    return windows.join(_last5_actions(spark, lake, ds, days), "event_id", "left")


def _last5_actions(spark: SparkSession, lake: Lake, ds: str, days: list[str]) -> DataFrame:
    """last5_action_types and the last 5 clicked items' price, category and conversion rate."""
    action_days = [d for d in list_partitions(spark, lake.validated_table("user_action")) if d in days]
    if action_days:
        actions = spark.read.parquet(*[lake.validated("user_action", d) for d in action_days])
    else:
        actions = spark.createDataFrame([], "event_id string, ts timestamp, user_id string, session_id string, "
                                            "action_type string, item_id string")
    item_uri = lake.raw("item")
    if partition_exists(spark, item_uri):
        items = spark.read.parquet(item_uri).select("item_id", "price", "category_id", "conversion_rate")
    else:
        items = spark.createDataFrame([], "item_id string, price double, category_id int, conversion_rate double")
    actions.join(items, "item_id", "left").createOrReplaceTempView("actions")
    spark.table("pv_lookback").where(F.col("ds") == ds).select("event_id", "user_id", "ts").createOrReplaceTempView("pv_day")
    return spark.sql(load_sql("pv_last5_actions.sql"))


def run(spark: SparkSession, lake: Lake, ds: str, slots: HintSlots, cfg: FeatureConfig) -> int:
    return write_partition(build_pv_rt(spark, lake, ds, slots, cfg), lake.features("pv_rt", ds))


if __name__ == "__main__":
    from pipelines.entry import run_job

    run_job("realtime")
