"""The online feature computer reproduces, event by event, the states Spark wrote to transitions."""

import numpy as np
import pandas as pd
import pytest

from feature_store.online import (
    ACTION_CODES,
    UNKNOWN_ITEM,
    Items,
    OnlineFeatures,
    Profiles,
)
from hintrl.config import HintrlConfig, SimulatorConfig
from hintrl.lake import Lake
from pipelines.stages import features_stage, ingest_stage, mdp_stage
from simulator.writer import simulate_to_lake

pytestmark = pytest.mark.spark


def test_online_states_equal_spark_states(spark, tmp_path):
    world = SimulatorConfig(n_users=400, n_queries=50, n_items=200, seed=9, daily_active_share=0.6)
    # Windows of 1 and 2 days so that days leave them within the 3 simulated days.
    cfg = HintrlConfig(home=tmp_path, simulator=world).replace(**{"features.lt_windows_days": (1, 2)})
    lake = Lake(cfg.lake_uri)
    simulate_to_lake(world, lake, "2026-11-01", 3, progress=lambda _: None)
    for stage in (ingest_stage, features_stage, mdp_stage):
        stage(spark, cfg, "2026-11-03", "2026-11-01", progress=lambda _: None)

    spark_states = {r.event_id: (np.array(r.state, dtype=np.float32), r.feature_spec_version)
                    for r in spark.read.parquet(lake.transitions("2026-11-03")).collect()}
    rt = {r.event_id: r.asDict() for r in spark.read.parquet(lake.features("pv_rt", "2026-11-03")).collect()}
    user_lt = {r.user_id: r.asDict() for r in spark.read.parquet(lake.features("user_lt", "2026-11-03")).collect()}
    query_lt = {r.query_id: r.asDict() for r in spark.read.parquet(lake.features("query_lt", "2026-11-03")).collect()}
    days = ("2026-11-01", "2026-11-02", "2026-11-03")
    pvs = spark.read.parquet(*[lake.validated("search_pv", d) for d in days]).toPandas().assign(is_action=0)
    actions = spark.read.parquet(*[lake.validated("user_action", d) for d in days]).toPandas().assign(is_action=1)
    # One time-ordered stream; a page view sorts before actions of the same ts, as in the Spark job.
    events = pd.concat([pvs, actions], ignore_index=True).sort_values(["ts", "is_action", "event_id"])
    profiles = spark.read.parquet(lake.validated("user_profile", "2026-11-01")).toPandas()
    items = spark.read.parquet(lake.raw("item")).toPandas()
    query_table = spark.read.parquet(lake.raw("query")).toPandas()

    from feature_store.registry import build_spec

    spec = build_spec(list(range(world.n_types)))
    users = {u: i for i, u in enumerate(sorted(set(events.user_id) | set(profiles.user_id)))}
    queries = {q: i for i, q in enumerate(sorted(set(pvs.query_id) | set(query_table.query_id)))}
    category = np.full(len(queries), np.nan)
    category[query_table.query_id.map(queries).to_numpy()] = query_table.category_id.to_numpy(float)
    item_index = {it: i for i, it in enumerate(items.item_id)}
    episodes: dict[tuple[str, str], int] = {}
    profile = profiles.assign(u=profiles.user_id.map(users)).sort_values("u")
    assert list(profile.u) == list(range(len(users)))  # every user has a profile in the simulated world
    online = OnlineFeatures(
        spec.slots, len(users), len(queries),
        profiles=Profiles(profile.gender.to_numpy(), profile.age.to_numpy(float), profile.purchase_power.to_numpy(float)),
        items=Items(items.price.to_numpy(), items.category_id.to_numpy(float), items.conversion_rate.to_numpy()),
        query_category=category, windows=cfg.features.lt_windows_days,
    )
    one = np.zeros(1, dtype=np.int64)
    compared = 0
    for e in events.itertuples():
        u = one + users[e.user_id]
        if e.is_action:
            online.observe_actions(u, np.array([ACTION_CODES[e.action_type]]), np.array([item_index.get(e.item_id, UNKNOWN_ITEM)]))
            continue
        online.start_day(e.ts.strftime("%Y-%m-%d"))
        q = one + queries[e.query_id]
        ep = one + episodes.setdefault((e.session_id, e.query_id), len(episodes))
        batch = online.columns(u, q, ep, one + e.page)
        cols = OnlineFeatures.row(batch, 0)
        if e.event_id in rt:
            spark_rt = rt[e.event_id]
            for k in range(world.n_types):
                assert cols[f"clicks_last100_t{k}"] == spark_rt[f"clicks_last100_t{k}"], e.event_id
                assert cols[f"shows_last100_t{k}"] == spark_rt[f"shows_last100_t{k}"], e.event_id
            for column in ("shown_in_session", "last5_action_types", "last5_click_item_category"):
                assert cols[column] == list(spark_rt[column]), (e.event_id, column)
            for column in ("last5_click_item_price", "last5_click_item_conversion_rate"):
                np.testing.assert_allclose(cols[column], list(spark_rt[column]), rtol=0, atol=1e-12)
            # long-term columns of day 3 as Spark stored them
            stored = {**user_lt.get(e.user_id, {}), **query_lt.get(e.query_id, {})}
            assert "hint_clicks_2d" in stored and "query_category" in stored
            for column, value in stored.items():
                if column not in ("user_id", "query_id"):
                    assert cols[column] == value, (e.event_id, column)
        if e.event_id in spark_states:
            expected, version = spark_states[e.event_id]
            assert version == spec.version
            np.testing.assert_allclose(spec.state_matrix(batch)[0], expected, atol=1e-6, err_msg=e.event_id)
            compared += 1
        hint = -1 if np.isnan(e.hint_type) else int(e.hint_type)
        online.observe(u, q, ep, np.array([hint]), np.array([bool(e.hint_clicked)]))
    assert compared == len(spark_states) > 500
