import numpy as np
import pytest

from hintrl.config import RewardConfig
from hintrl.errors import HintrlError
from hintrl.rewards import reward


def components(**over):
    base = dict(hint_click=np.array([1.0, 0.0, 1.0, 0.0]), page=np.array([1.0, 2.0, 3.0, 4.0]),
                item_clicks=np.array([0.0, 2.0, 1.0, 0.0]), turned_page=np.array([1.0, 1.0, 1.0, 0.0]),
                purchased=np.array([0.0, 0.0, 1.0, 0.0]), purchase_amount=np.array([0.0, 0.0, 59.9, 0.0]),
                left_without_purchase=np.array([0.0, 0.0, 0.0, 1.0]))
    base.update(over)
    return base


def test_ctr_weights_clicks_by_page():
    r = reward(components(), RewardConfig(preset="ctr", page_decay=0.5))
    np.testing.assert_allclose(r, [1.0, 0.0, 0.25, 0.0])


def test_guided_is_the_weighted_mix():
    cfg = RewardConfig(preset="guided", guided_hint_click=1.0, guided_item_click=0.2, guided_page_turn=-0.1, guided_purchase=2.0)
    np.testing.assert_allclose(reward(components(), cfg), [0.9, 0.3, 1.0 + 0.2 - 0.1 + 2.0, 0.0])


def test_ma_rdpg_purchase_click_leave_neither():
    r = reward(components(item_clicks=np.array([0.0, 0.0, 1.0, 0.0]), left_without_purchase=np.array([0.0, 0.0, 0.0, 1.0])),
               RewardConfig(preset="ma_rdpg"))
    # page 1: hint click -> 1; page 2: nothing, not the last page -> -1; page 3: purchase -> amount; page 4: leave -> -5
    np.testing.assert_allclose(r, [1.0, -1.0, 59.9, -5.0])


def test_unknown_preset_and_missing_component_are_refused():
    with pytest.raises(ValueError, match="reward.preset must be one of ctr, guided, ma_rdpg"):
        RewardConfig(preset="gmv")
    broken = components()
    del broken["page"]
    with pytest.raises(HintrlError, match="missing: page"):
        reward(broken, RewardConfig())
