"""Real-time features of every page view of day `ds` (features/pv_rt), strictly before the event.

Windows read validated page views of `ds` and up to `FeatureConfig.realtime_lookback_days` days
before it, so a user's last 100 page views cross midnight.

    spark-submit pipelines/realtime.py --lake LAKE --ds YYYY-MM-DD
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hintrl.config import FeatureConfig
from hintrl.dates import shift
from hintrl.errors import DataContractError
from hintrl.lake import Lake
from pipelines.spark import list_partitions, load_sql, write_partition


def build_pv_rt(spark: SparkSession, lake: Lake, ds: str, hint_types: list[int], cfg: FeatureConfig) -> DataFrame:
    first = shift(ds, -cfg.realtime_lookback_days)
    days = [d for d in list_partitions(spark, lake.validated_table("search_pv")) if first <= d <= ds]
    if ds not in days:
        raise DataContractError(f"no validated search_pv for ds={ds}: run ingest first")
    frames = [spark.read.parquet(lake.validated("search_pv", d)).withColumn("ds", F.lit(d)) for d in days]
    lookback = frames[0]
    for frame in frames[1:]:
        lookback = lookback.unionByName(frame)
    lookback.createOrReplaceTempView("pv_lookback")
    window = (
        f"OVER (PARTITION BY user_id ORDER BY ts, event_id "
        f"ROWS BETWEEN {cfg.realtime_window_pvs} PRECEDING AND 1 PRECEDING)"
    )
    per_type = ",\n    ".join(
        f"CAST(COALESCE(SUM(CASE WHEN hint_clicked AND hint_type = {k} THEN 1 ELSE 0 END) {window}, 0) AS INT)"
        f" AS clicks_last100_t{k}"
        for k in hint_types
    )
    return spark.sql(load_sql("pv_rt.sql", ds=ds, per_type_clicks=per_type))


def run(spark: SparkSession, lake: Lake, ds: str, hint_types: list[int], cfg: FeatureConfig) -> int:
    return write_partition(build_pv_rt(spark, lake, ds, hint_types, cfg), lake.features("pv_rt", ds))


if __name__ == "__main__":
    from pipelines.entry import run_job

    run_job("realtime")
