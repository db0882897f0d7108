"""Transitions of day `ds` (mdp/transitions) from validated logs and the day's features.

Rows follow the transitions contract of DESIGN.md. Episodes whose logged hint was already shown
earlier in the episode cannot be evaluated or learned from under the mask; they are written to
quarantine/transitions with a reason, never dropped silently.

    spark-submit pipelines/mdp.py --lake LAKE --ds YYYY-MM-DD
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from feature_store.registry import FeatureSpec, stratum_sql
from hintrl.config import RewardConfig
from hintrl.errors import DataContractError
from hintrl.lake import Lake
from hintrl.rewards import SparkBackend, reward
from pipelines.spark import load_sql, partition_exists, write_partition

TRANSITION_COLUMNS = (
    "episode_id", "step", "ts", "user_id", "bucket", "stratum", "state", "action", "propensity",
    "candidates", "reward", "reward_components", "next_state", "next_candidates", "terminal",
    "feature_spec_version", "event_id", "page", "reward_preset",
)


@dataclass
class MdpResult:
    page_views: int
    pages_without_hint: int
    transitions: int
    episodes: int
    quarantined_episodes: int
    reasons: dict[str, int] = field(default_factory=dict)


def _require(spark: SparkSession, uri: str, what: str) -> DataFrame:
    if not partition_exists(spark, uri):
        raise DataContractError(f"missing {what} (looked for {uri}/_SUCCESS): run the earlier stage first")
    return spark.read.parquet(uri)


def _baseline_corrected(steps: DataFrame, step_reward):  # type: ignore[no-untyped-def]
    """(steps with the baseline means joined, the corrected reward, the subtracted mean): the mean
    reward of the baseline bucket's steps in the step's hour, else of the whole day, else 0."""
    rewarded = steps.withColumn("_raw_reward", step_reward).withColumn("_hour", F.hour("ts"))
    baseline = rewarded.where(F.col("bucket") == "baseline")
    hourly = baseline.groupBy("_hour").agg(F.avg("_raw_reward").alias("_hour_mean"))
    daily = baseline.agg(F.avg("_raw_reward").alias("_day_mean"))
    joined = rewarded.join(hourly, "_hour", "left").crossJoin(daily)
    mean = F.coalesce(F.col("_hour_mean"), F.col("_day_mean"), F.lit(0.0))
    return joined, F.col("_raw_reward") - mean, mean


def build_transitions(spark: SparkSession, lake: Lake, ds: str, spec: FeatureSpec, reward_cfg: RewardConfig) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(transitions, quarantined steps, page views) of day ds."""
    pv = _require(spark, lake.validated("search_pv", ds), f"validated search_pv/ds={ds}")
    rt = _require(spark, lake.features("pv_rt", ds), f"features pv_rt/ds={ds}")
    lt = _require(spark, lake.features("user_lt", ds), f"features user_lt/ds={ds}")
    qlt = _require(spark, lake.features("query_lt", ds), f"features query_lt/ds={ds}")
    rt_cols = [c for c in rt.columns if c not in pv.columns or c == "event_id"]
    joined = (
        pv.where("hint_type IS NOT NULL")
        .join(rt.select(*rt_cols), "event_id", "inner")
        .join(lt, "user_id", "left")
        .join(qlt, "query_id", "left")
    )
    joined.createOrReplaceTempView("steps_joined")
    steps = spark.sql(load_sql("transitions.sql", state=spec.state_sql(), stratum=stratum_sql()))

    terminal = F.col("next_state_or_null").isNull()
    components = {
        "hint_click": F.col("hint_click"),
        "page": F.col("page").cast("double"),
        "item_clicks": F.col("item_clicks"),
        "turned_page": F.when(terminal, 0.0).otherwise(1.0),
        "purchased": F.col("purchased"),
        "purchase_amount": F.col("purchase_amount"),
        "left_without_purchase": F.when(terminal & (F.col("purchased") == 0), 1.0).otherwise(0.0),
    }
    step_reward = reward(components, reward_cfg, SparkBackend()).cast("double")
    if reward_cfg.baseline_correction:
        steps, step_reward, components["baseline_hour_mean"] = _baseline_corrected(steps, step_reward)
    component_map = F.create_map(*[x for name, col in components.items() for x in (F.lit(name), col.cast("double"))])
    transitions = steps.select(
        "*",
        step_reward.cast("double").alias("reward"),
        component_map.alias("reward_components"),
        F.coalesce("next_state_or_null", "state").alias("next_state"),
        F.coalesce("next_candidates_or_null", F.array().cast("array<int>")).alias("next_candidates"),
        terminal.alias("terminal"),
        F.lit(spec.version).alias("feature_spec_version"),
        F.lit(reward_cfg.preset).alias("reward_preset"),
    )
    bad_episodes = (
        transitions.where(~F.array_contains("candidates", F.col("action")))
        .select("episode_id").distinct()
    )
    flagged = transitions.join(bad_episodes.withColumn("bad", F.lit(True)), "episode_id", "left")
    clean = flagged.where(F.col("bad").isNull()).select(*TRANSITION_COLUMNS)
    quarantined = (
        flagged.where(F.col("bad").isNotNull())
        .select(*TRANSITION_COLUMNS)
        .withColumn("reject_reason", F.lit("hint_repeated_in_episode"))
    )
    return clean, quarantined, pv


def run(spark: SparkSession, lake: Lake, ds: str, spec: FeatureSpec, reward_cfg: RewardConfig) -> MdpResult:
    clean, quarantined, pv = build_transitions(spark, lake, ds, spec, reward_cfg)
    n_quarantined = write_partition(quarantined, lake.quarantine("transitions", ds))
    n_clean = write_partition(clean, lake.transitions(ds))
    written = spark.read.parquet(lake.transitions(ds))
    counts = pv.select(F.count("*").alias("n"), F.sum(F.col("hint_type").isNull().cast("int")).alias("none")).first()
    q_episodes = spark.read.parquet(lake.quarantine("transitions", ds)).select("episode_id").distinct().count()
    return MdpResult(
        page_views=int(counts["n"]),
        pages_without_hint=int(counts["none"] or 0),
        transitions=n_clean,
        episodes=written.select("episode_id").distinct().count(),
        quarantined_episodes=q_episodes,
        reasons={"hint_repeated_in_episode": n_quarantined} if n_quarantined else {},
    )


if __name__ == "__main__":
    from pipelines.entry import run_job

    run_job("mdp")
