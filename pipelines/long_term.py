"""Long-term user features as of `ds`, from days strictly before it.

user_lt(ds) = user_lt(ds-1) + counts of day ds-1, with demographics from the latest profile snapshot
at or before ds (a snapshot of day X is the state at the start of X). When user_lt(ds-1) is absent it is a full recompute over every validated day before ds;
both give the same table.

    spark-submit pipelines/long_term.py --lake LAKE --ds YYYY-MM-DD
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from hintrl.dates import shift
from hintrl.lake import Lake
from pipelines.spark import list_partitions, load_sql, partition_exists, write_partition


def count_columns(hint_types: list[int]) -> list[str]:
    return ["hint_shows", "hint_clicks"] + [c for k in hint_types for c in (f"shows_t{k}", f"clicks_t{k}")]


def _day_counts(spark: SparkSession, pv: DataFrame, hint_types: list[int]) -> DataFrame:
    per_type = ",\n  ".join(
        f"CAST(SUM(CASE WHEN hint_type = {k} THEN 1 ELSE 0 END) AS BIGINT) AS shows_t{k},\n  "
        f"CAST(SUM(CASE WHEN hint_type = {k} AND hint_clicked THEN 1 ELSE 0 END) AS BIGINT) AS clicks_t{k}"
        for k in hint_types
    )
    pv.createOrReplaceTempView("pv_days")
    return spark.sql(load_sql("user_lt_day_counts.sql", per_type=per_type))


def _empty_counts(spark: SparkSession, hint_types: list[int]) -> DataFrame:
    schema = "user_id string, " + ", ".join(f"{c} bigint" for c in count_columns(hint_types))
    return spark.createDataFrame([], schema)


def _validated_days_before(spark: SparkSession, lake: Lake, table: str, ds: str) -> list[str]:
    return [d for d in list_partitions(spark, lake.validated_table(table)) if d < ds]


def _latest_profile(spark: SparkSession, lake: Lake, ds: str) -> DataFrame:
    # A profile snapshot of day X is the state at the start of X, so ds's own snapshot is usable.
    days = [d for d in list_partitions(spark, lake.validated_table("user_profile")) if d <= ds]
    if days:
        return spark.read.parquet(lake.validated("user_profile", days[-1]))
    return spark.createDataFrame([], "user_id string, gender string, age int, purchase_power int")


def build_user_lt(spark: SparkSession, lake: Lake, ds: str, hint_types: list[int]) -> DataFrame:
    """user_lt as of ds."""
    counts = count_columns(hint_types)
    prev_uri = lake.features("user_lt", shift(ds, -1))
    day_before = shift(ds, -1)
    if partition_exists(spark, prev_uri):
        prev = spark.read.parquet(prev_uri).select("user_id", *counts)
        day_pv_uri = lake.validated("search_pv", day_before)
        day = (
            _day_counts(spark, spark.read.parquet(day_pv_uri), hint_types)
            if partition_exists(spark, day_pv_uri)
            else _empty_counts(spark, hint_types)
        )
    else:
        prev = _empty_counts(spark, hint_types)
        days = _validated_days_before(spark, lake, "search_pv", ds)
        if days:
            pv = spark.read.parquet(*[lake.validated("search_pv", d) for d in days])
            day = _day_counts(spark, pv, hint_types)
        else:
            day = _empty_counts(spark, hint_types)
    prev.createOrReplaceTempView("prev_counts")
    day.createOrReplaceTempView("day_counts")
    _latest_profile(spark, lake, ds).createOrReplaceTempView("profile")
    sql = load_sql(
        "user_lt_merge.sql",
        count_sums=", ".join(f"COALESCE(p.{c}, 0) + COALESCE(d.{c}, 0) AS {c}" for c in counts),
        count_columns=", ".join(f"COALESCE(c.{c}, 0) AS {c}" for c in counts),
    )
    return spark.sql(sql)


def run(spark: SparkSession, lake: Lake, ds: str, hint_types: list[int]) -> int:
    return write_partition(build_user_lt(spark, lake, ds, hint_types), lake.features("user_lt", ds))


if __name__ == "__main__":
    from pipelines.entry import run_job

    run_job("long_term")
