"""Point-in-time reads of the feature tables (features/user_lt, query_lt, pv_rt) of a lake.

`read(table, ds)` is a table as of the start of `ds`. `as_of(events)` attaches to each event the
features as they were when it happened: the long-term features of the event's own day (built only
from the days before it, so nothing from the event's day or later leaks in) and, for page views, its
real-time row. An event whose day has no feature partition is an error, never a silent null.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from hintrl.dates import parse_ds
from hintrl.errors import DataContractError
from hintrl.lake import FEATURE_TABLES, Lake
from pipelines.spark import partition_exists

KEYS = {"user_lt": "user_id", "query_lt": "query_id", "pv_rt": "event_id"}


class FeatureStore:
    def __init__(self, spark: SparkSession, lake: Lake):
        self.spark = spark
        self.lake = lake

    def read(self, table: str, ds: str) -> DataFrame:
        """Feature table `table` as of day `ds`."""
        if table not in FEATURE_TABLES:
            raise DataContractError(f"unknown feature table {table!r}: choose from {', '.join(FEATURE_TABLES)}")
        parse_ds(ds)
        uri = self.lake.features(table, ds)
        if not partition_exists(self.spark, uri):
            raise DataContractError(f"no features {table}/ds={ds} (looked for {uri}/_SUCCESS): build features for {ds} first")
        return self.spark.read.parquet(uri)

    def as_of(self, events: DataFrame, tables: tuple[str, ...] = ("user_lt", "query_lt")) -> DataFrame:
        """`events` (with `ts` and the keys of `tables`) joined with each table as of the event's day.

        Long-term columns of different tables never collide (query_lt's carry a `query_` prefix);
        `pv_rt` joins on `event_id`, for page views that are in it."""
        missing = [KEYS[t] for t in tables if KEYS[t] not in events.columns] + ([] if "ts" in events.columns else ["ts"])
        if missing:
            raise DataContractError(f"events need column(s) {', '.join(missing)} for a point-in-time read")
        events = events.withColumn("_feature_ds", F.date_format("ts", "yyyy-MM-dd"))
        days = sorted(r[0] for r in events.select("_feature_ds").distinct().collect())
        out = events
        for table in tables:
            key = KEYS[table]
            parts = [self.read(table, d).withColumn("_feature_ds", F.lit(d)) for d in days]
            if not parts:
                continue
            features = parts[0]
            for part in parts[1:]:
                features = features.unionByName(part)
            if table == "pv_rt":  # the page view's own row: drop what the event already has
                features = features.select(key, "_feature_ds", *[c for c in features.columns if c not in out.columns])
            out = out.join(features, [key, "_feature_ds"], "left")
        return out.drop("_feature_ds")
