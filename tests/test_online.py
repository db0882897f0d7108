"""The online computer's running last-N counts equal a recount over the last N page views."""

import numpy as np
import pytest

from feature_store.online import OnlineFeatureComputer, Profile


@pytest.mark.parametrize("window", [3, 100])
def test_running_window_counts_match_a_recount(window):
    rng = np.random.default_rng(window)
    online = OnlineFeatureComputer(4, window_pvs=window, profiles={"u": Profile("F", 30, 3)})
    history = []
    for i in range(250):
        cols = online.columns("u", f"s{i // 5}", "q", 1 + i % 5)
        last = history[-window:]
        for k in range(4):
            assert cols[f"clicks_last100_t{k}"] == sum(1 for h, c in last if h == k and c), (i, k)
            assert cols[f"shows_last100_t{k}"] == sum(1 for h, _ in last if h == k), (i, k)
        hint = None if rng.random() < 0.2 else int(rng.integers(0, 4))
        clicked = hint is not None and bool(rng.random() < 0.4)
        online.observe("u", f"s{i // 5}", "q", hint, clicked)
        history.append((hint, clicked))


def test_long_term_counts_move_at_day_boundaries():
    online = OnlineFeatureComputer(2)
    online.start_day("2026-11-01")
    online.observe("u", "s1", "q", 1, True)
    assert online.columns("u", "s1", "q", 2)["hint_clicks"] == 0  # same day: not long-term yet
    online.start_day("2026-11-02")
    cols = online.columns("u", "s2", "q", 1)
    assert (cols["hint_shows"], cols["clicks_t1"], cols["query_page_views"], cols["query_clicks_t1"]) == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="time order"):
        online.start_day("2026-11-01")
