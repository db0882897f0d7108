"""The data-quality checks between stages, on hand-made lake partitions (pyarrow, no Spark)."""

import pyarrow as pa
import pytest
from tinylake import DAY2, profile_rows, table, write_catalog

from feature_store.catalog import catalog_slots
from feature_store.registry import table_features
from hintrl.config import FeatureConfig, QualityConfig
from hintrl.lake import Lake
from hintrl.quality import (
    DataQualityError,
    check_features,
    check_ingest,
    check_transitions,
    run_check,
)
from simulator.writer import write_partition

D = "2026-11-02"


def quiet(_message):
    pass


@pytest.fixture
def lake(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    write_catalog(lake)
    for name, rows in (("search_pv", DAY2), ("user_profile", profile_rows()), ("user_action", [])):
        write_partition(table(name, rows), lake.raw(name, D))
    return lake


def ingested(lake, clean_pv=5, rejected=0, reason="bad_candidates"):
    write_partition(table("search_pv", DAY2[:clean_pv]), lake.validated("search_pv", D))
    rejects = table("search_pv", DAY2[clean_pv:clean_pv + rejected]).append_column(
        "reject_reason", pa.array([reason] * rejected, pa.string()))
    write_partition(rejects, lake.quarantine("search_pv", D))
    write_partition(table("user_profile", profile_rows()), lake.validated("user_profile", D))
    write_partition(table("user_action", []), lake.validated("user_action", D))


def test_ingest_check_counts_raw_clean_and_quarantined_rows(lake):
    ingested(lake, clean_pv=4, rejected=1)
    report = check_ingest(lake, [D], FeatureConfig(max_reject_fraction=0.5), quiet)
    assert report["days"][D]["search_pv"] == {"in": 5, "clean": 4, "quarantined": 1, "reasons": {"bad_candidates": 1}}
    assert report["days"][D]["user_profile"] == {"in": 2, "clean": 2, "quarantined": 0, "reasons": {}}


def test_ingest_check_fails_on_rows_lost_between_raw_and_validated(lake):
    ingested(lake, clean_pv=3, rejected=1)  # 5 raw rows, 3 + 1 accounted for
    with pytest.raises(DataQualityError, match="search_pv/ds=2026-11-02: 5 raw rows but 3 clean \\+ 1 quarantined"):
        check_ingest(lake, [D], FeatureConfig(max_reject_fraction=0.5), quiet)


def test_ingest_check_fails_on_too_many_rejects(lake):
    ingested(lake, clean_pv=3, rejected=2)
    with pytest.raises(DataQualityError, match="40.0% of rows quarantined"):
        check_ingest(lake, [D], FeatureConfig(max_reject_fraction=0.05), quiet)


def feature_table(defs, table_name, n, null_column=None):
    columns = {}
    for f in defs:
        if f.source != table_name:
            continue
        values = [[1]] * n if f.dtype.startswith("array") else [1] * n
        if f.name == null_column:
            values = [None] + values[1:]
        columns[f.name] = values
    return pa.table(columns)


def featured(lake, pv_rows=5, null_column=None):
    defs = table_features(catalog_slots(lake), FeatureConfig().lt_windows_days)
    write_partition(feature_table(defs, "user_lt", 2, null_column), lake.features("user_lt", D))
    write_partition(feature_table(defs, "query_lt", 3, null_column), lake.features("query_lt", D))
    write_partition(feature_table(defs, "pv_rt", pv_rows, null_column), lake.features("pv_rt", D))


def test_features_check_passes_one_row_per_page_view_and_allows_documented_nulls(lake):
    ingested(lake)
    featured(lake, null_column="query_category")  # null when the query's category is unknown
    report = check_features(lake, [D], FeatureConfig(), QualityConfig(), quiet)
    assert report["days"][D] == {"user_lt_rows": 2, "query_lt_rows": 3, "pv_rt_rows": 5, "max_null_rate": 0.0}


def test_features_check_fails_on_a_missing_page_view_row(lake):
    ingested(lake)
    featured(lake, pv_rows=4)
    with pytest.raises(DataQualityError, match="pv_rt/ds=2026-11-02: 4 rows for 5 clean page views"):
        check_features(lake, [D], FeatureConfig(), QualityConfig(), quiet)


def test_features_check_fails_on_nulls_above_the_threshold(lake):
    ingested(lake)
    featured(lake, null_column="clicks_last100_t0")
    with pytest.raises(DataQualityError, match="clicks_last100_t0 null on 20.00% of rows"):
        check_features(lake, [D], FeatureConfig(), QualityConfig(max_feature_null_rate=0.1), quiet)
    report = check_features(lake, [D], FeatureConfig(), QualityConfig(max_feature_null_rate=0.25), quiet)
    assert report["days"][D]["max_null_column"] == "pv_rt.clicks_last100_t0"


def transitions(lake, propensities, quarantined_episodes=0):
    n = len(propensities)
    write_partition(pa.table({"episode_id": [f"ep{i // 2}" for i in range(n)], "propensity": propensities}),
                    lake.transitions(D))
    write_partition(pa.table({"episode_id": pa.array([f"q{i}" for i in range(quarantined_episodes)], pa.string())}),
                    lake.quarantine("transitions", D))


def test_transitions_check_reports_counts_and_refuses_bad_propensities(lake):
    ingested(lake)
    transitions(lake, [0.5, 0.25, 1.0, 0.1])
    report = check_transitions(lake, [D], QualityConfig(), quiet)
    assert report["days"][D] == {"page_views": 5, "transitions": 4, "episodes": 2, "quarantined_episodes": 0}
    transitions(lake, [0.5, 0.0, 1.5, 0.1])
    with pytest.raises(DataQualityError, match="2 propensities outside"):
        check_transitions(lake, [D], QualityConfig(), quiet)


def test_transitions_check_bounds_quarantined_episodes(lake):
    ingested(lake)
    transitions(lake, [0.5] * 4, quarantined_episodes=1)  # 1 of 3 episodes
    with pytest.raises(DataQualityError, match="33.3% of episodes quarantined"):
        check_transitions(lake, [D], QualityConfig(max_quarantined_episode_share=0.05), quiet)


def test_run_check_needs_the_days_raw_logs(lake):
    with pytest.raises(DataQualityError, match="raw logs of ds=2026-11-03 are incomplete"):
        run_check("ingest", lake, "2026-11-03", None, FeatureConfig(), QualityConfig(), quiet)
    ingested(lake)
    # Days before D without raw logs are not the stages' to process: they are left out, not failed.
    report = run_check("ingest", lake, D, "2026-10-30", FeatureConfig(), QualityConfig(), quiet)
    assert list(report["days"]) == [D]
