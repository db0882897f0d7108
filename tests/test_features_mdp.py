"""Features and transitions on the tiny two-day lake of tinylake.py, expected values written out."""

import numpy as np
import pytest
from tinylake import write_catalog, write_validated_days

from feature_store.registry import HintSlots, build_spec
from hintrl.config import FeatureConfig, RewardConfig
from hintrl.lake import Lake
from pipelines import long_term, mdp, realtime

pytestmark = pytest.mark.spark
TYPES = [0, 1, 2, 3]
SLOTS = HintSlots.by_type(4)
D1, D2, D3 = "2026-11-01", "2026-11-02", "2026-11-03"


@pytest.fixture
def lake(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    write_catalog(lake)
    write_validated_days(lake)
    return lake


def rows_by(df, key):
    return {r[key]: r.asDict() for r in df.collect()}


def test_realtime_windows_cross_midnight_order_ties_and_start_empty(spark, lake):
    rt = rows_by(realtime.build_pv_rt(spark, lake, D2, SLOTS, FeatureConfig()), "event_id")
    assert set(rt) == {"e3", "e4", "e5", "e6", "e7"}  # only day D2's page views
    clicks = {e: [rt[e][f"clicks_last100_t{k}"] for k in TYPES] for e in rt}
    assert clicks["e3"] == [1, 0, 0, 0]  # e1 on the day before
    assert clicks["e4"] == [2, 0, 0, 0]  # e1 and e3 (same ts as e4, earlier event_id)
    assert clicks["e5"] == [0, 0, 0, 0]  # u2 has no history
    assert [rt["e4"][f"shows_last100_t{k}"] for k in TYPES] == [2, 1, 0, 0]  # e1, e2 (day before), e3
    assert rt["e3"]["shown_in_session"] == [] and rt["e4"]["shown_in_session"] == [0]
    assert rt["e7"]["shown_in_session"] == [3]
    assert rt["e4"]["page"] == 2


def test_last5_actions_and_clicked_items(spark, lake):
    rt = rows_by(realtime.build_pv_rt(spark, lake, D2, SLOTS, FeatureConfig()), "event_id")
    # e3 and e4 (00:00:10): a1 and a2 of the day before; a3 has the same ts, so it is not before them.
    for e in ("e3", "e4"):
        assert rt[e]["last5_action_types"] == ["browse", "click"]
        assert rt[e]["last5_click_item_price"] == [10.0]
        assert rt[e]["last5_click_item_category"] == [3]
        assert rt[e]["last5_click_item_conversion_rate"] == [0.1]
    assert rt["e5"]["last5_action_types"] == [] and rt["e5"]["last5_click_item_price"] == []
    # e6 (01:00): u2's six clicks b1..b6, the five most recent first
    assert rt["e6"]["last5_action_types"] == ["click"] * 5
    assert rt["e6"]["last5_click_item_price"] == [20.0, 10.0, 20.0, 10.0, 20.0]


def test_window_length_is_the_configured_number_of_page_views(spark, lake):
    rt = rows_by(realtime.build_pv_rt(spark, lake, D2, SLOTS, FeatureConfig(realtime_window_pvs=1)), "event_id")
    assert rt["e4"]["clicks_last100_t0"] == 1  # only e3


def test_long_term_as_of_ds_uses_only_earlier_days(spark, lake):
    lt = rows_by(long_term.build_user_lt(spark, lake, D2, SLOTS), "user_id")
    u1 = lt["u1"]
    assert (u1["gender"], u1["age"], u1["purchase_power"]) == ("F", 30, 4)
    assert (u1["page_views"], u1["hint_shows"], u1["hint_clicks"]) == (2, 2, 1)
    assert (u1["shows_t0"], u1["clicks_t0"], u1["shows_t1"], u1["clicks_t1"], u1["shows_t2"]) == (1, 1, 1, 0, 0)
    assert (lt["u2"]["hint_shows"], lt["u2"]["gender"]) == (0, "M")  # known from the profile only


def test_query_long_term_counts(spark, lake):
    q = rows_by(long_term.build_query_lt(spark, lake, D3, SLOTS), "query_id")
    # q1: e1 (type 0, click), e2 (type 1) on D1, e5 (type 1) on D2; q2: e3, e4; q3: e6, e7
    assert (q["q1"]["query_page_views"], q["q1"]["query_hint_shows"], q["q1"]["query_hint_clicks"]) == (3, 3, 1)
    assert (q["q1"]["query_shows_t1"], q["q1"]["query_clicks_t0"]) == (2, 1)
    assert (q["q2"]["query_hint_clicks"], q["q3"]["query_shows_t3"]) == (2, 2)
    assert (q["q1"]["query_category"], q["q2"]["query_category"], q["q3"]["query_category"]) == (5, 6, None)


def test_incremental_long_term_equals_full_recompute(spark, lake):
    import shutil

    windows = (1, 7)  # D1's counts leave the 1-day window on D3
    long_term.run(spark, lake, D2, SLOTS, windows)  # snapshots for D2 exist -> D3 is built incrementally
    builders = {"user_lt": long_term.build_user_lt, "query_lt": long_term.build_query_lt}
    incremental = {}
    for table, build in builders.items():
        df = build(spark, lake, D3, SLOTS, windows)
        incremental[table] = (sorted(df.columns), sorted(map(tuple, df.select(sorted(df.columns)).collect()), key=str))
    u1 = rows_by(long_term.build_user_lt(spark, lake, D3, SLOTS), "user_id")["u1"]
    assert len(incremental["user_lt"][1]) == 2 and len(incremental["query_lt"][1]) == 3
    for table, build in builders.items():
        shutil.rmtree(lake.features(table, D2))  # no snapshot: D3 becomes a full recompute
        key, rows = incremental[table]
        assert rows == sorted(map(tuple, build(spark, lake, D3, SLOTS, windows).select(key).collect()), key=str), table
    assert (u1["hint_shows"], u1["hint_clicks"], u1["shows_t0"], u1["clicks_t0"], u1["clicks_t2"]) == (4, 3, 2, 2, 1)
    u1_windowed = dict(zip(incremental["user_lt"][0], next(r for r in incremental["user_lt"][1] if "u1" in r)))
    # D2 only (e3 type 0 click, e4 type 2 click) in the 1-day window; D1 and D2 in the 7-day one
    assert (u1_windowed["hint_shows_1d"], u1_windowed["hint_clicks_1d"], u1_windowed["clicks_t0_1d"]) == (2, 2, 1)
    assert (u1_windowed["shows_t1_1d"], u1_windowed["shows_t1_7d"], u1_windowed["hint_clicks_7d"]) == (0, 1, 3)


def test_transitions_follow_the_contract(spark, lake):
    long_term.run(spark, lake, D2, SLOTS)
    realtime.run(spark, lake, D2, SLOTS, FeatureConfig())
    spec = build_spec(TYPES)
    result = mdp.run(spark, lake, D2, spec, RewardConfig(preset="ctr", page_decay=0.9))
    assert (result.page_views, result.transitions, result.episodes, result.quarantined_episodes) == (5, 3, 2, 1)
    t = rows_by(spark.read.parquet(lake.transitions(D2)), "event_id")
    e3, e4, e5 = t["e3"], t["e4"], t["e5"]
    assert e3["episode_id"] == "s2|q2" and (e3["step"], e4["step"], e5["step"]) == (0, 1, 0)
    assert e3["candidates"] == [0, 1, 2, 3] and e4["candidates"] == [1, 2, 3]  # 0 was shown on page 1
    assert (e3["action"], e4["action"], e3["propensity"]) == (0, 2, 0.25)
    assert e3["reward"] == pytest.approx(1.0) and e4["reward"] == pytest.approx(0.9) and e5["reward"] == 0.0
    assert (e3["terminal"], e4["terminal"], e5["terminal"]) == (False, True, True)
    assert e3["next_state"] == e4["state"] and e3["next_candidates"] == e4["candidates"]
    assert e4["next_candidates"] == []
    assert e4["reward_components"]["purchased"] == 1.0 and e4["reward_components"]["turned_page"] == 0.0
    assert e3["stratum"] == "F|25-34|4" and e5["stratum"] == "M|<18|2"
    assert e3["feature_spec_version"] == spec.version and len(e3["state"]) == spec.state_dim
    names = [f.name for f in spec.state]
    state = dict(zip(names, e4["state"]))
    assert state["gender_f"] == 1.0 and state["age_scaled"] == pytest.approx(0.3)
    assert state["recent_clicks_t0"] == pytest.approx(2 / 5) and state["shown_t0"] == 1.0 and state["shown_t2"] == 0.0
    assert state["user_ctr_t0"] == pytest.approx((1 + 1) / (1 + 10))  # one show, one click before D2
    assert state["page_scaled"] == pytest.approx(0.1)
    assert state["query_ctr_t0"] == pytest.approx(1 / 10)  # q2 had no page views before D2
    assert state["query_volume_log"] == 0.0
    assert state["last5_share_click"] == pytest.approx(0.2) and state["last5_share_browse"] == pytest.approx(0.2)
    assert state["last5_click_price_log"] == pytest.approx(np.log(11.0) / 10)
    assert state["last5_click_conversion"] == pytest.approx(0.1)
    quarantined = spark.read.parquet(lake.quarantine("transitions", D2)).collect()
    assert {r.event_id for r in quarantined} == {"e6", "e7"}
    assert {r.reject_reason for r in quarantined} == {"hint_repeated_in_episode"}


def test_large_action_space_counts_per_family_of_the_catalog(spark, lake):
    from pipelines.ingest import read_slots

    slots = read_slots(spark, lake, "family")  # tinylake: types 0, 1 in family f0; 2, 3 in f1
    assert slots.suffixes == ("ff0", "ff1") and slots.slot_of_type == (0, 0, 1, 1)
    rt = rows_by(realtime.build_pv_rt(spark, lake, D2, slots, FeatureConfig()), "event_id")
    assert (rt["e4"]["clicks_last100_ff0"], rt["e4"]["shows_last100_ff0"], rt["e4"]["shows_last100_ff1"]) == (2, 3, 0)
    assert "clicks_last100_t0" not in rt["e4"]
    u1 = rows_by(long_term.build_user_lt(spark, lake, D2, slots), "user_id")["u1"]
    assert (u1["shows_ff0"], u1["clicks_ff0"], u1["shows_ff1"], u1["hint_shows"]) == (2, 1, 0, 2)
    assert read_slots(spark, lake, "auto").per == "type"  # 4 types: per type


def test_point_in_time_reads_give_each_event_the_features_of_its_own_day(spark, lake):
    import datetime as dt

    from feature_store.store import FeatureStore
    from hintrl.errors import DataContractError

    for day in (D2, D3):
        long_term.run(spark, lake, day, SLOTS)
    realtime.run(spark, lake, D2, SLOTS, FeatureConfig())
    store = FeatureStore(spark, lake)
    assert store.read("user_lt", D3).where("user_id = 'u1'").first().hint_shows == 4
    utc = dt.timezone.utc
    events = spark.createDataFrame(
        [("e3", dt.datetime(2026, 11, 2, 0, 0, 10, tzinfo=utc), "u1", "q2"),
         ("x1", dt.datetime(2026, 11, 3, 9, 0, tzinfo=utc), "u1", "q1"),
         ("x2", dt.datetime(2026, 11, 3, 9, 0, tzinfo=utc), "u9", "q1")],  # a user with no history
        "event_id string, ts timestamp, user_id string, query_id string",
    )
    rows = rows_by(store.as_of(events), "event_id")
    assert (rows["e3"]["hint_shows"], rows["e3"]["query_page_views"]) == (2, 0)  # D2: only D1 counted, q2 new
    assert (rows["x1"]["hint_shows"], rows["x1"]["query_page_views"], rows["x1"]["query_category"]) == (4, 3, 5)
    assert rows["x2"]["hint_shows"] is None and rows["x2"]["query_hint_shows"] == 3
    rt = rows_by(store.as_of(events.where("event_id = 'e3'"), ("user_lt", "pv_rt")), "event_id")
    assert rt["e3"]["clicks_last100_t0"] == 1 and rt["e3"]["hint_shows"] == 2
    with pytest.raises(DataContractError, match="user_lt/ds=2026-11-05"):
        store.as_of(events.withColumn("ts", events.ts + dt.timedelta(days=2)).where("event_id = 'x1'"))
    with pytest.raises(DataContractError, match="unknown feature table"):
        store.read("items", D2)


def test_last5_from_the_carried_action_tail_equals_the_lookback_read(spark, lake):
    columns = ["event_id", "last5_action_types", "last5_click_item_price", "last5_click_item_category"]
    from_lookback = rows_by(realtime.build_pv_rt(spark, lake, D2, SLOTS, FeatureConfig()).select(*columns), "event_id")
    realtime.run(spark, lake, D1, SLOTS, FeatureConfig())  # writes the tail that D2 starts from
    tail = spark.read.parquet(lake.features(realtime.ACTION_TAIL, D2)).collect()
    assert sorted(r.event_id for r in tail) == ["a1", "a2"]  # u1's actions of D1
    realtime.run(spark, lake, D2, SLOTS, FeatureConfig())
    from_tail = rows_by(spark.read.parquet(lake.features("pv_rt", D2)).select(*columns), "event_id")
    assert from_tail == from_lookback
    # u2 clicked six times on D2: the tail for D3 keeps the 5 latest actions and 5 latest clicks
    tail3 = spark.read.parquet(lake.features(realtime.ACTION_TAIL, D3)).where("user_id = 'u2'").collect()
    assert sorted(r.event_id for r in tail3) == ["b2", "b3", "b4", "b5", "b6"]


def test_baseline_bucket_correction_subtracts_the_baseline_hours_mean(spark, lake):
    """e3 (page 1, clicked) and e4 (page 2, clicked) are baseline steps at 00:00; e5 at 00:05 is in
    the explore bucket: the baseline mean of hour 0 is (1 + 0.9) / 2 = 0.95 for all three."""
    from tinylake import DAY2, table

    from simulator.writer import write_partition

    rows = [dict(r, bucket="explore") if r["event_id"] == "e5" else r for r in DAY2]
    write_partition(table("search_pv", rows), lake.validated("search_pv", D2))
    long_term.run(spark, lake, D2, SLOTS)
    realtime.run(spark, lake, D2, SLOTS, FeatureConfig())
    mdp.run(spark, lake, D2, build_spec(TYPES), RewardConfig(preset="ctr", page_decay=0.9, baseline_correction=True))
    t = rows_by(spark.read.parquet(lake.transitions(D2)), "event_id")
    assert t["e3"]["reward"] == pytest.approx(1.0 - 0.95) and t["e4"]["reward"] == pytest.approx(0.9 - 0.95)
    assert t["e5"]["reward"] == pytest.approx(-0.95)
    assert t["e5"]["reward_components"]["baseline_hour_mean"] == pytest.approx(0.95)
    assert t["e4"]["reward_components"]["hint_click"] == 1.0  # the parts stay uncorrected
