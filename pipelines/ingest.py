"""Ingest: enforce the raw contract on one day's raw tables.

Clean rows go to `validated/<table>/ds=`, rejected rows to `quarantine/<table>/ds=` with a
`reject_reason`; rows in = clean + quarantined. Fails when a table's rejected share passes
`FeatureConfig.max_reject_fraction`.

    spark-submit pipelines/ingest.py --lake LAKE --ds YYYY-MM-DD
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from feature_store.registry import HintSlots, slots_for
from hintrl.config import FeatureConfig
from hintrl.contracts import RAW_CONTRACT, required_columns
from hintrl.errors import DataContractError
from hintrl.lake import RAW_DAILY_TABLES, Lake
from pipelines.spark import list_partitions, load_sql, partition_exists, write_partition

INGEST_SQL = {
    "search_pv": "ingest_search_pv.sql",
    "user_action": "ingest_user_action.sql",
    "user_profile": "ingest_user_profile.sql",
}


@dataclass
class TableIngest:
    table: str
    rows_in: int
    clean: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def reject_fraction(self) -> float:
        return self.quarantined / self.rows_in if self.rows_in else 0.0


def check_raw(spark: SparkSession, lake: Lake, table: str, ds: str) -> None:
    """Fail with a clear message when a raw partition is missing (reads no data)."""
    uri = lake.raw(table, ds)
    if not partition_exists(spark, uri):
        raise DataContractError(f"missing raw partition {table}/ds={ds} (looked for {uri}/_SUCCESS)")


def require_raw(spark: SparkSession, lake: Lake, table: str, ds: str) -> DataFrame:
    check_raw(spark, lake, table, ds)
    return spark.read.parquet(lake.raw(table, ds))


def read_catalog(spark: SparkSession, lake: Lake) -> list[int]:
    return sorted(_catalog(spark, lake))


def _catalog(spark: SparkSession, lake: Lake) -> dict[int, str]:
    uri = lake.raw("hint_catalog")
    if not partition_exists(spark, uri):
        raise DataContractError(f"missing hint catalog (looked for {uri}/_SUCCESS)")
    return {int(r.hint_type): r.family for r in spark.read.parquet(uri).select("hint_type", "family").collect()}


def read_slots(spark: SparkSession, lake: Lake, per: str = "auto") -> HintSlots:
    """The feature slots (per type or per family) of the lake's hint catalog."""
    catalog = _catalog(spark, lake)
    types = sorted(catalog)
    try:
        return slots_for(types, [catalog[k] for k in types], per)
    except ValueError as err:
        raise DataContractError(f"hint catalog: {err}") from None


def _typed(raw: DataFrame, table: str) -> tuple[DataFrame, list[str]]:
    """Cast raw columns to the contract's types; returns the frame and the per-column type checks."""
    present = {f.name: f.dataType.simpleString() for f in raw.schema.fields}
    missing = [name for name, _, _ in RAW_CONTRACT[table] if name not in present]
    if missing:
        raise DataContractError(f"raw {table} lacks contract column(s): {', '.join(missing)}")
    columns, checks = [], []
    for name, kind, _ in RAW_CONTRACT[table]:
        if present[name] == kind:
            columns.append(F.col(name))
            continue
        # A column of another type is cast; a value that does not cast is quarantined, kept as text.
        raw_name = f"raw_{name}"
        columns.append(F.expr(f"try_cast(`{name}` AS {kind})").alias(name))
        columns.append(F.col(name).cast("string").alias(raw_name))
        checks.append(f"WHEN {raw_name} IS NOT NULL AND {name} IS NULL THEN 'wrong_type:{name}'")
    return raw.select(*columns), checks


def _membership_sql(column: str, values: list[int]) -> str:
    """SQL that is true when `column` is one of `values`: a range test for a catalog 0..n-1 (a
    20,000-element literal array would be scanned on every row)."""
    ordered = sorted(values)
    if ordered and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{column} BETWEEN {ordered[0]} AND {ordered[-1]}"
    return f"array_contains(array({', '.join(str(v) for v in ordered) or 'NULL'}), {column})"


def validate(spark: SparkSession, raw: DataFrame, table: str, ds: str, catalog: list[int],
             require_propensity: bool = True) -> DataFrame:
    """`raw` with a `reject_reason` column (NULL for clean rows)."""
    typed, type_checks = _typed(raw, table)
    typed.createOrReplaceTempView(f"{table}_raw")
    null_checks = [f"WHEN {c} IS NULL THEN 'missing_required_field:{c}'" for c in required_columns(table)]
    sql = load_sql(
        INGEST_SQL[table],
        ds=ds,
        in_catalog=_membership_sql("hint_type", catalog),
        missing_propensity="propensity IS NULL" if require_propensity else "FALSE",
        type_checks="\n    ".join(type_checks),
        required_null_checks="\n    ".join(null_checks),
    )
    return spark.sql(sql)


def ingest_table(spark: SparkSession, lake: Lake, table: str, ds: str, catalog: list[int], cfg: FeatureConfig) -> TableIngest:
    checked = validate(spark, require_raw(spark, lake, table, ds), table, ds, catalog, cfg.require_propensity).cache()
    try:
        # One pass fills the cache, counts every row and writes the rejects (the quarantine
        # partition is written, possibly empty, so a rerun clears old rejects); the reasons are
        # counted on the written rejects.
        seen = Observation(f"ingest_{table}_{uuid.uuid4().hex}")
        quarantine_uri = lake.quarantine(table, ds)
        quarantined = write_partition(checked.observe(seen, F.count(F.lit(1)).alias("rows"))
                                      .where("reject_reason IS NOT NULL"), quarantine_uri)
        rows_in = int(seen.get["rows"])
        reasons = {} if not quarantined else {
            r.reject_reason: int(r["count"])
            for r in spark.read.parquet(quarantine_uri).groupBy("reject_reason").count().collect()
        }
        result = TableIngest(table, rows_in, rows_in - quarantined, quarantined, reasons)
        if result.reject_fraction > cfg.max_reject_fraction:
            raise DataContractError(
                f"{table}/ds={ds}: {result.quarantined} of {result.rows_in} rows rejected "
                f"({result.reject_fraction:.1%} > {cfg.max_reject_fraction:.1%}); reasons {reasons}; "
                f"see {quarantine_uri}"
            )
        raw_columns = [c for c in checked.columns if c.startswith("raw_")]
        clean = write_partition(
            checked.where("reject_reason IS NULL").drop("reject_reason", *raw_columns), lake.validated(table, ds)
        )
        if clean != result.clean:  # rows in = clean + quarantined, or the job says so
            raise DataContractError(f"{table}/ds={ds}: {rows_in} rows in but {clean} clean + {quarantined} quarantined written")
        return result
    finally:
        checked.unpersist()


def _known_users(spark: SparkSession, lake: Lake, ds: str) -> DataFrame:
    """Users of the latest validated profile snapshot at or before ds."""
    days = [d for d in list_partitions(spark, lake.validated_table("user_profile")) if d <= ds]
    if not days:
        return spark.createDataFrame([], "user_id string")
    return spark.read.parquet(lake.validated("user_profile", days[-1])).select("user_id")


def ingest_day(spark: SparkSession, lake: Lake, ds: str, cfg: FeatureConfig) -> list[TableIngest]:
    catalog = read_catalog(spark, lake)
    for table in RAW_DAILY_TABLES:  # fail before writing anything when a partition is missing
        check_raw(spark, lake, table, ds)
    # Page views depend on nothing else, so they run beside profiles -> actions (actions are checked
    # against the day's validated profiles): one job's driver-side planning overlaps the other's tasks.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-search_pv") as pool:
        page_views = pool.submit(ingest_table, spark, lake, "search_pv", ds, catalog, cfg)
        try:
            results = {"user_profile": ingest_table(spark, lake, "user_profile", ds, catalog, cfg)}
            _known_users(spark, lake, ds).createOrReplaceTempView("known_users")
            results["user_action"] = ingest_table(spark, lake, "user_action", ds, catalog, cfg)
        finally:
            wait([page_views])  # never leave a write running behind an error
        results["search_pv"] = page_views.result()
    return [results[table] for table in RAW_DAILY_TABLES]


if __name__ == "__main__":
    from pipelines.entry import run_job

    run_job("ingest")
