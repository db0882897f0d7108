"""Long-term features as of `ds`, from days strictly before it: per user (features/user_lt, with
demographics) and per query (features/query_lt).

table(ds) = table(ds-1) + counts of day ds-1. When table(ds-1) is absent it is a full recompute
over every validated day before ds; both give the same table (tested). User demographics come from
the latest profile snapshot at or before ds (a snapshot of day X is the state at the start of X).

    spark-submit pipelines/long_term.py --lake LAKE --ds YYYY-MM-DD
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from feature_store.registry import HintSlots, count_features
from hintrl.dates import shift
from hintrl.lake import Lake
from pipelines.spark import (
    list_partitions,
    load_sql,
    partition_exists,
    with_hint_slot,
    write_partition,
)


@dataclass(frozen=True)
class Entity:
    table: str
    key: str
    prefix: str

    def count_columns(self, slots: HintSlots) -> list[str]:
        subject = "the " + self.key.removesuffix("_id")
        return [f.name for f in count_features(slots, self.table, self.prefix, subject)]


USER = Entity("user_lt", "user_id", "")
QUERY = Entity("query_lt", "query_id", "query_")
ENTITIES = (USER, QUERY)


def _day_counts(spark: SparkSession, pv: DataFrame, slots: HintSlots, entity: Entity) -> DataFrame:
    p = entity.prefix
    per_slot = ",\n  ".join(
        f"CAST(SUM(CASE WHEN hint_slot = {s} THEN 1 ELSE 0 END) AS BIGINT) AS {p}shows_{x},\n  "
        f"CAST(SUM(CASE WHEN hint_slot = {s} AND hint_clicked THEN 1 ELSE 0 END) AS BIGINT) AS {p}clicks_{x}"
        for s, x in enumerate(slots.suffixes)
    )
    with_hint_slot(spark, pv, slots).createOrReplaceTempView("pv_days")
    return spark.sql(load_sql("lt_day_counts.sql", key=entity.key, prefix=p, per_slot=per_slot))


def _empty_counts(spark: SparkSession, slots: HintSlots, entity: Entity) -> DataFrame:
    schema = f"{entity.key} string, " + ", ".join(f"{c} bigint" for c in entity.count_columns(slots))
    return spark.createDataFrame([], schema)


def _validated_days_before(spark: SparkSession, lake: Lake, table: str, ds: str) -> list[str]:
    return [d for d in list_partitions(spark, lake.validated_table(table)) if d < ds]


def _latest_profile(spark: SparkSession, lake: Lake, ds: str) -> DataFrame:
    # A profile snapshot of day X is the state at the start of X, so ds's own snapshot is usable.
    days = [d for d in list_partitions(spark, lake.validated_table("user_profile")) if d <= ds]
    if days:
        return spark.read.parquet(lake.validated("user_profile", days[-1]))
    return spark.createDataFrame([], "user_id string, gender string, age int, purchase_power int")


def _counts(spark: SparkSession, lake: Lake, ds: str, slots: HintSlots, entity: Entity) -> DataFrame:
    counts = entity.count_columns(slots)
    prev_uri = lake.features(entity.table, shift(ds, -1))
    day_pv_uri = lake.validated("search_pv", shift(ds, -1))
    if partition_exists(spark, prev_uri):
        prev = spark.read.parquet(prev_uri).select(entity.key, *counts)
        day = (
            _day_counts(spark, spark.read.parquet(day_pv_uri), slots, entity)
            if partition_exists(spark, day_pv_uri)
            else _empty_counts(spark, slots, entity)
        )
    else:
        prev = _empty_counts(spark, slots, entity)
        days = _validated_days_before(spark, lake, "search_pv", ds)
        if days:
            pv = spark.read.parquet(*[lake.validated("search_pv", d) for d in days])
            day = _day_counts(spark, pv, slots, entity)
        else:
            day = _empty_counts(spark, slots, entity)
    prev.createOrReplaceTempView("prev_counts")
    day.createOrReplaceTempView("day_counts")
    sums = ", ".join(f"COALESCE(p.{c}, 0) + COALESCE(d.{c}, 0) AS {c}" for c in counts)
    return spark.sql(load_sql("lt_sum.sql", key=entity.key, count_sums=sums))


def build_user_lt(spark: SparkSession, lake: Lake, ds: str, slots: HintSlots) -> DataFrame:
    """user_lt as of ds."""
    _counts(spark, lake, ds, slots, USER).createOrReplaceTempView("counts")
    _latest_profile(spark, lake, ds).createOrReplaceTempView("profile")
    columns = ", ".join(f"COALESCE(c.{c}, 0) AS {c}" for c in USER.count_columns(slots))
    return spark.sql(load_sql("user_lt_merge.sql", count_columns=columns))


def build_query_lt(spark: SparkSession, lake: Lake, ds: str, slots: HintSlots) -> DataFrame:
    """query_lt as of ds."""
    return _counts(spark, lake, ds, slots, QUERY)


def run(spark: SparkSession, lake: Lake, ds: str, slots: HintSlots) -> dict[str, int]:
    """Write user_lt and query_lt of ds; returns rows written per table."""
    return {
        "user_lt_rows": write_partition(build_user_lt(spark, lake, ds, slots), lake.features("user_lt", ds)),
        "query_lt_rows": write_partition(build_query_lt(spark, lake, ds, slots), lake.features("query_lt", ds)),
    }


if __name__ == "__main__":
    from pipelines.entry import run_job

    run_job("long_term")
