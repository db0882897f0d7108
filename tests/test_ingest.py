import pyarrow as pa
import pytest
from tinylake import profile_rows, pv_row, table, ts, write_catalog

from hintrl.config import FeatureConfig
from hintrl.errors import DataContractError
from hintrl.lake import Lake
from pipelines import ingest
from simulator.writer import write_partition

pytestmark = pytest.mark.spark
DAY = "2026-11-02"


def bad_search_pv():
    good = pv_row("g1", ts(DAY, "10:00:00"), "u1", "s1", "q1", 1, 1, True, candidates=(0, 1, 2), propensity=0.5)
    no_hint = pv_row("g2", ts(DAY, "10:01:00"), "u1", "s1", "q1", 2, None, False)
    rows = [
        good,
        no_hint,
        pv_row("b1", ts(DAY, "10:00:00"), "u1", "s2", "q1", 0, 1, False),  # page 0
        pv_row("b2", ts(DAY, "10:00:00"), "u1", "s3", "q1", 1, 1, False, propensity=0.0),
        pv_row("b3", ts(DAY, "10:00:00"), "u1", "s4", "q1", 1, 3, False, candidates=(0, 1, 2)),
        pv_row("b4", ts(DAY, "10:00:00"), "u1", "s5", "q1", 1, 9, False, candidates=(9,)),
        dict(good, ts=ts(DAY, "10:05:00")),  # duplicate of g1's event_id, later
        pv_row("b6", ts("2026-11-03", "00:00:01"), "u1", "s6", "q1", 1, 1, False),
        pv_row("b7", ts(DAY, "10:00:00"), None, "s7", "q1", 1, 1, False),
        pv_row("b8", ts(DAY, "10:00:00"), "u1", "s8", "q1", 1, 1, False, propensity=1.5),
    ]
    return table("search_pv", rows)


@pytest.fixture
def lake(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    write_catalog(lake)
    write_partition(bad_search_pv(), lake.raw("search_pv", DAY))
    write_partition(table("user_profile", profile_rows() + [dict(user_id="u3", gender="X", age=20, purchase_power=9)]),
                    lake.raw("user_profile", DAY))
    write_partition(table("user_action", [dict(event_id="a1", ts=ts(DAY, "10:00:01"), user_id="u1", session_id="s1",
                                               action_type="click", item_id="i1"),
                                          dict(event_id="a2", ts=ts(DAY, "10:00:02"), user_id="u1", session_id="s1",
                                               action_type="teleport", item_id="i1"),
                                          # u3's profile row is quarantined, so u3 is unknown
                                          dict(event_id="a3", ts=ts(DAY, "10:00:03"), user_id="u3", session_id="s1",
                                               action_type="click", item_id="i1")]),
                    lake.raw("user_action", DAY))
    return lake


def test_every_bad_row_is_quarantined_with_its_reason(spark, lake):
    results = {r.table: r for r in ingest.ingest_day(spark, lake, DAY, FeatureConfig(max_reject_fraction=1.0))}
    pv = results["search_pv"]
    assert (pv.rows_in, pv.clean, pv.quarantined) == (10, 2, 8)
    assert pv.reasons == {
        "page_below_1": 1, "bad_propensity": 2, "hint_not_in_candidates": 1, "hint_not_in_catalog": 1,
        "duplicate_event_id": 1, "ts_outside_partition": 1, "missing_required_field:user_id": 1,
    }
    quarantined = spark.read.parquet(lake.quarantine("search_pv", DAY))
    assert quarantined.count() == 8 and "reject_reason" in quarantined.columns
    clean = {r.event_id for r in spark.read.parquet(lake.validated("search_pv", DAY)).collect()}
    assert clean == {"g1", "g2"}
    assert results["user_profile"].reasons == {"unknown_gender": 1}
    assert results["user_action"].reasons == {"unknown_action_type": 1, "unknown_user": 1}


def test_reject_threshold_fails_with_counts(spark, lake):
    # profiles are validated first (user actions are checked against them)
    with pytest.raises(DataContractError, match=r"user_profile/ds=2026-11-02: 1 of 3 rows rejected \(33.3% > 5.0%\)"):
        ingest.ingest_day(spark, lake, DAY, FeatureConfig())
    with pytest.raises(DataContractError, match=r"search_pv/ds=2026-11-02: 8 of 10 rows rejected \(80.0% > 5.0%\)"):
        ingest.ingest_table(spark, lake, "search_pv", DAY, [0, 1, 2, 3], FeatureConfig())


def test_wrong_type_values_are_quarantined_not_dropped(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    write_catalog(lake)
    good = table("search_pv", [pv_row("g1", ts(DAY, "10:00:00"), "u1", "s1", "q1", 1, 1, False),
                               pv_row("g2", ts(DAY, "10:00:01"), "u1", "s1", "q1", 2, 2, False)])
    pages = pa.array(["1", "two"])
    raw = good.set_column(good.schema.get_field_index("page"), "page", pages)
    write_partition(raw, lake.raw("search_pv", DAY))
    result = ingest.ingest_table(spark, lake, "search_pv", DAY, [0, 1, 2, 3], FeatureConfig(max_reject_fraction=1.0))
    assert (result.clean, result.reasons) == (1, {"wrong_type:page": 1})
    q = spark.read.parquet(lake.quarantine("search_pv", DAY)).first()
    assert q.raw_page == "two" and q.reject_reason == "wrong_type:page"


def test_missing_partition_and_missing_column_are_clear(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    write_catalog(lake)
    with pytest.raises(DataContractError, match="missing raw partition search_pv/ds=2026-11-02"):
        ingest.ingest_day(spark, lake, DAY, FeatureConfig())
    write_partition(bad_search_pv().drop(["bucket"]), lake.raw("search_pv", DAY))
    with pytest.raises(DataContractError, match="lacks contract column.*bucket"):
        ingest.ingest_table(spark, lake, "search_pv", DAY, [0, 1, 2, 3], FeatureConfig())


def test_logs_without_propensities_pass_only_when_allowed(spark, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    write_catalog(lake)
    rows = [pv_row("p1", ts(DAY, "10:00:00"), "u1", "s1", "q1", 1, 1, True, candidates=(0, 1, 2), propensity=None),
            pv_row("p2", ts(DAY, "10:01:00"), "u1", "s1", "q1", 2, 2, False, candidates=(0, 2), propensity=0.0)]
    write_partition(table("search_pv", rows), lake.raw("search_pv", DAY))
    catalog = ingest.read_catalog(spark, lake)
    strict = ingest.ingest_table(spark, lake, "search_pv", DAY, catalog, FeatureConfig(max_reject_fraction=1.0))
    assert strict.reasons == {"bad_propensity": 2}
    lenient = ingest.ingest_table(spark, lake, "search_pv", DAY, catalog,
                                  FeatureConfig(max_reject_fraction=1.0, require_propensity=False))
    # a missing propensity is accepted; one outside (0, 1] is still rejected
    assert (lenient.clean, lenient.reasons) == (1, {"bad_propensity": 1})
    clean = spark.read.parquet(lake.validated("search_pv", DAY)).collect()
    assert [(r.event_id, r.propensity) for r in clean] == [("p1", None)]
