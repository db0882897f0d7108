"""Long-term features as of `ds`, from days strictly before it: per user (features/user_lt, with
demographics) and per query (features/query_lt).

table(ds) = table(ds-1) + counts of day ds-1, and for each recent window of W days (7 and 30 by
default), minus the counts of day ds-1-W that leaves it, so a night's cost does not grow with the
window. When table(ds-1) is absent (or lacks a column) it is a full recompute over every validated
day before ds; both give the same table (tested). query_lt also carries the query's category. User demographics come from
the latest profile snapshot at or before ds (a snapshot of day X is the state at the start of X).

    spark-submit pipelines/long_term.py --lake LAKE --ds YYYY-MM-DD
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

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

    def count_columns(self, slots: HintSlots, windows: tuple[int, ...]) -> list[str]:
        subject = "the " + self.key.removesuffix("_id")
        return [f.name for f in count_features(slots, self.table, self.prefix, subject, windows)]


USER = Entity("user_lt", "user_id", "")
QUERY = Entity("query_lt", "query_id", "query_")
ENTITIES = (USER, QUERY)


def _counted(slots: HintSlots, prefix: str) -> list[tuple[str, str]]:
    """(column, per-row value) of every all-time count column, in count_features' order."""
    shown = "CASE WHEN hint_type IS NOT NULL THEN 1 ELSE 0 END"
    clicked = "CASE WHEN hint_type IS NOT NULL AND hint_clicked THEN 1 ELSE 0 END"
    counted = [(f"{prefix}page_views", "1"), (f"{prefix}hint_shows", shown), (f"{prefix}hint_clicks", clicked)]
    for s, x in enumerate(slots.suffixes):
        counted.append((f"{prefix}shows_{x}", f"CASE WHEN hint_slot = {s} THEN 1 ELSE 0 END"))
        counted.append((f"{prefix}clicks_{x}", f"CASE WHEN hint_slot = {s} AND hint_clicked THEN 1 ELSE 0 END"))
    return counted


def _day_counts(spark: SparkSession, pv: DataFrame, slots: HintSlots, entity: Entity, ds: str,
                windows: tuple[int, ...]) -> DataFrame:
    """Counts of the page views in `pv` (with a `day` column): all of them, and those of each window before ds."""
    counted = _counted(slots, entity.prefix)
    counts = [f"CAST(COALESCE(SUM({value}), 0) AS BIGINT) AS {name}" for name, value in counted]
    for w in windows:
        first = shift(ds, -w)
        counts += [f"CAST(COALESCE(SUM(CASE WHEN day >= '{first}' THEN {value} ELSE 0 END), 0) AS BIGINT) AS {name}_{w}d"
                   for name, value in counted]
    with_hint_slot(spark, pv, slots).createOrReplaceTempView("pv_days")
    return spark.sql(load_sql("lt_day_counts.sql", key=entity.key, counts=",\n  ".join(counts)))


def _empty_counts(spark: SparkSession, slots: HintSlots, entity: Entity, windows: tuple[int, ...]) -> DataFrame:
    schema = f"{entity.key} string, " + ", ".join(f"{c} bigint" for c in entity.count_columns(slots, windows))
    return spark.createDataFrame([], schema)


def _validated_days_before(spark: SparkSession, lake: Lake, table: str, ds: str) -> list[str]:
    return [d for d in list_partitions(spark, lake.validated_table(table)) if d < ds]


def _read_days(spark: SparkSession, lake: Lake, days: list[str]) -> DataFrame:
    frames = [spark.read.parquet(lake.validated("search_pv", d)).withColumn("day", F.lit(d)) for d in days]
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _latest_profile(spark: SparkSession, lake: Lake, ds: str) -> DataFrame:
    # A profile snapshot of day X is the state at the start of X, so ds's own snapshot is usable.
    days = [d for d in list_partitions(spark, lake.validated_table("user_profile")) if d <= ds]
    if days:
        return spark.read.parquet(lake.validated("user_profile", days[-1]))
    return spark.createDataFrame([], "user_id string, gender string, age int, purchase_power int")


def _one_day(spark: SparkSession, lake: Lake, day: str, ds: str, slots: HintSlots, entity: Entity,
             windows: tuple[int, ...]) -> DataFrame:
    if partition_exists(spark, lake.validated("search_pv", day)):
        return _day_counts(spark, _read_days(spark, lake, [day]), slots, entity, ds, windows)
    return _empty_counts(spark, slots, entity, windows)


def _counts(spark: SparkSession, lake: Lake, ds: str, slots: HintSlots, entity: Entity,
            windows: tuple[int, ...]) -> DataFrame:
    counts = entity.count_columns(slots, windows)
    all_time = [name for name, _ in _counted(slots, entity.prefix)]
    prev_uri = lake.features(entity.table, shift(ds, -1))
    incremental = partition_exists(spark, prev_uri) and set(counts) <= set(spark.read.parquet(prev_uri).columns)
    if incremental:
        prev = spark.read.parquet(prev_uri).select(entity.key, *counts)
        day = _one_day(spark, lake, shift(ds, -1), ds, slots, entity, windows)
    else:  # a full recompute over every validated day before ds
        prev = _empty_counts(spark, slots, entity, windows)
        days = _validated_days_before(spark, lake, "search_pv", ds)
        day = (_day_counts(spark, _read_days(spark, lake, days), slots, entity, ds, windows) if days
               else _empty_counts(spark, slots, entity, windows))
    prev.createOrReplaceTempView("prev_counts")
    day.createOrReplaceTempView("day_counts")
    sums = [f"COALESCE(p.{c}, 0) + COALESCE(d.{c}, 0) AS {c}" for c in all_time]
    joins = []
    for w in windows:
        # The day that leaves the window; nothing leaves a full recompute, which counts the window directly.
        expired = (_one_day(spark, lake, shift(ds, -1 - w), ds, slots, entity, ())
                   if incremental else _empty_counts(spark, slots, entity, ()))
        expired.createOrReplaceTempView(f"expired_{w}")
        joins.append(f"LEFT JOIN expired_{w} e{w} ON COALESCE(p.{entity.key}, d.{entity.key}) = e{w}.{entity.key}")
        sums += [f"COALESCE(p.{c}_{w}d, 0) + COALESCE(d.{c}_{w}d, 0) - COALESCE(e{w}.{c}, 0) AS {c}_{w}d" for c in all_time]
    return spark.sql(load_sql("lt_sum.sql", key=entity.key, count_sums=", ".join(sums), expired_joins="\n".join(joins)))


def build_user_lt(spark: SparkSession, lake: Lake, ds: str, slots: HintSlots, windows: tuple[int, ...] = (7, 30)) -> DataFrame:
    """user_lt as of ds."""
    _counts(spark, lake, ds, slots, USER, windows).createOrReplaceTempView("counts")
    _latest_profile(spark, lake, ds).createOrReplaceTempView("profile")
    columns = ", ".join(f"COALESCE(c.{c}, 0) AS {c}" for c in USER.count_columns(slots, windows))
    return spark.sql(load_sql("user_lt_merge.sql", count_columns=columns))


def build_query_lt(spark: SparkSession, lake: Lake, ds: str, slots: HintSlots, windows: tuple[int, ...] = (7, 30)) -> DataFrame:
    """query_lt as of ds, with the query's category when the lake has the raw query table."""
    _counts(spark, lake, ds, slots, QUERY, windows).createOrReplaceTempView("counts")
    query_uri = lake.raw("query")
    queries = (spark.read.parquet(query_uri).select("query_id", "category_id") if partition_exists(spark, query_uri)
               else spark.createDataFrame([], "query_id string, category_id int"))
    queries.createOrReplaceTempView("queries")
    columns = ", ".join(f"COALESCE(c.{c}, 0) AS {c}" for c in QUERY.count_columns(slots, windows))
    return spark.sql(load_sql("query_lt_merge.sql", count_columns=columns))


def run(spark: SparkSession, lake: Lake, ds: str, slots: HintSlots, windows: tuple[int, ...] = (7, 30)) -> dict[str, int]:
    """Write user_lt and query_lt of ds; returns rows written per table."""
    return {
        "user_lt_rows": write_partition(build_user_lt(spark, lake, ds, slots, windows), lake.features("user_lt", ds)),
        "query_lt_rows": write_partition(build_query_lt(spark, lake, ds, slots, windows), lake.features("query_lt", ds)),
    }


if __name__ == "__main__":
    from pipelines.entry import run_job

    run_job("long_term")
