"""The online computer's running counts and pushes equal recounts over the history."""

import numpy as np
import pytest

from feature_store.online import ACTION_CODES, Items, OnlineFeatures, Profiles
from feature_store.registry import HintSlots

ONE = np.zeros(1, dtype=np.int64)


def cols_of(online, user=0, query=0, episode=0, page=1):
    return OnlineFeatures.row(online.columns(ONE + user, ONE + query, ONE + episode, ONE + page), 0)


@pytest.mark.parametrize("window", [3, 100])
def test_running_window_counts_match_a_recount(window):
    rng = np.random.default_rng(window)
    online = OnlineFeatures(HintSlots.by_type(4), 1, 1, window_pvs=window,
                            profiles=Profiles(np.array(["F"]), np.array([30.0]), np.array([3.0])))
    history = []
    for i in range(250):
        cols = cols_of(online, episode=i // 5, page=1 + i % 5)
        last = history[-window:]
        for k in range(4):
            assert cols[f"clicks_last100_t{k}"] == sum(1 for h, c in last if h == k and c), (i, k)
            assert cols[f"shows_last100_t{k}"] == sum(1 for h, _ in last if h == k), (i, k)
        assert cols["shown_in_session"] == [h for h, _ in history[(i // 5) * 5:] if h >= 0]
        hint = -1 if rng.random() < 0.2 else int(rng.integers(0, 4))
        clicked = hint >= 0 and bool(rng.random() < 0.4)
        online.observe(ONE, ONE, ONE + i // 5, np.array([hint]), np.array([clicked]))
        history.append((hint, clicked))


def test_per_family_slots_count_every_type_of_the_family():
    slots = HintSlots.by_family(["brand", "style", "brand"])
    assert slots.suffixes == ("fbrand", "fstyle") and slots.slot_of_type == (0, 1, 0)
    online = OnlineFeatures(slots, 1, 1)
    online.start_day("2026-11-01")
    for hint, clicked in ((0, True), (2, True), (1, False)):
        online.observe(ONE, ONE, ONE, np.array([hint]), np.array([clicked]))
    cols = cols_of(online)
    assert (cols["clicks_last100_fbrand"], cols["shows_last100_fbrand"], cols["shows_last100_fstyle"]) == (2, 2, 1)
    online.start_day("2026-11-02")
    cols = cols_of(online, episode=1)
    assert (cols["clicks_fbrand"], cols["shows_fstyle"], cols["query_shows_fbrand"], cols["hint_shows"]) == (2, 1, 2, 3)


def test_long_term_counts_move_at_day_boundaries():
    online = OnlineFeatures(HintSlots.by_type(2), 1, 1)
    online.start_day("2026-11-01")
    online.observe(ONE, ONE, ONE, np.array([1]), np.array([True]))
    assert cols_of(online, page=2)["hint_clicks"] == 0  # same day: not long-term yet
    online.start_day("2026-11-02")
    cols = cols_of(online, episode=1)
    assert (cols["hint_shows"], cols["clicks_t1"], cols["query_page_views"], cols["query_clicks_t1"]) == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="time order"):
        online.start_day("2026-11-01")


def test_last_five_actions_and_clicked_items_most_recent_first_across_batches():
    items = Items(np.array([10.0, 20.0, 30.0]), np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.2, 0.3]))
    online = OnlineFeatures(HintSlots.by_type(2), 2, 1, items=items)
    b, c = ACTION_CODES["browse"], ACTION_CODES["click"]
    # user 1 acts in one batch, interleaved with user 0; user 0 also clicks an unknown item
    online.observe_actions(np.array([0, 1, 0, 1]), np.array([c, c, b, c]), np.array([0, 1, 0, 2]))
    online.observe_actions(np.array([0, 0]), np.array([c, c]), np.array([-2, 2]))
    u0, u1 = cols_of(online, user=0), cols_of(online, user=1)
    assert u0["last5_action_types"] == ["click", "click", "browse", "click"]
    assert u0["last5_click_item_price"] == [30.0, None, 10.0] and u0["last5_click_item_category"] == [3, None, 1]
    assert u1["last5_action_types"] == ["click", "click"] and u1["last5_click_item_price"] == [30.0, 20.0]
    online.observe_actions(np.array([1] * 6), np.array([b] * 6), np.array([0] * 6))
    assert cols_of(online, user=1)["last5_action_types"] == ["browse"] * 5
    assert cols_of(online, user=1)["last5_click_item_price"] == [30.0, 20.0]


def test_a_batch_of_page_views_holds_each_user_once():
    online = OnlineFeatures(HintSlots.by_type(2), 2, 1)
    with pytest.raises(ValueError, match="at most once"):
        online.observe(np.array([0, 0]), np.array([0, 0]), np.array([0, 0]), np.array([0, 1]), np.array([False, False]))
