import pytest

from hintrl.config import HintrlConfig
from hintrl.dates import NightlyWindow, day_range, parse_ds
from hintrl.errors import HintrlError


def test_replace_by_dotted_name_and_round_trip():
    cfg = HintrlConfig().replace(**{"train.n_steps": 123, "reward.preset": "guided", "train.algos": ["dqn"]})
    assert cfg.train.n_steps == 123 and cfg.reward.preset == "guided" and cfg.train.algos == ("dqn",)
    assert HintrlConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_setting_is_refused():
    with pytest.raises(KeyError, match="train.n_stepz"):
        HintrlConfig().replace(**{"train.n_stepz": 1})


@pytest.mark.parametrize("bad", ["2026-13-01", "20261101", "2026-11-1", "yesterday", ""])
def test_malformed_ds(bad):
    with pytest.raises(HintrlError, match="malformed ds"):
        parse_ds(bad)


def test_nightly_window_holds_out_the_newest_day():
    w = NightlyWindow("2026-11-08", 6)
    assert w.eval_day == "2026-11-07"
    assert w.train_days == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06"]
    assert w.first_day == "2026-11-01"
    assert day_range("2026-10-31", "2026-11-01") == ["2026-10-31", "2026-11-01"]
    assert w.eval_days == ["2026-11-07"] and w.eval_label == "2026-11-07"


def test_nightly_window_with_several_held_out_days_trains_on_the_days_before_them():
    w = HintrlConfig().replace(**{"ope.eval_days": 2, "train.train_days": 5}).nightly_window("2026-11-08")
    assert w.eval_day == "2026-11-07" and w.eval_days == ["2026-11-06", "2026-11-07"]
    assert w.eval_label == "2026-11-06..2026-11-07"
    assert w.train_days == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
    assert w.all_days == day_range("2026-11-01", "2026-11-07")
    with pytest.raises(HintrlError, match="eval_days"):
        NightlyWindow("2026-11-08", 6, 0)
    with pytest.raises(ValueError, match="eval_days"):
        HintrlConfig().replace(**{"ope.eval_days": 0})


def test_bad_settings_are_one_line_errors_naming_their_source(tmp_path):
    from hintrl.config import HintrlConfig
    from hintrl.errors import HintrlError
    from hintrl.orchestration import config_of

    with pytest.raises(HintrlError, match=r"^bad --set: .*unknown setting 'train\.nope'"):
        HintrlConfig(home=tmp_path).with_settings({"train.nope": 1}, "--set")
    with pytest.raises(HintrlError, match=r"^bad settings: ope.behavior_propensity must be"):
        config_of({"home": str(tmp_path), "settings": {"ope.behavior_propensity": "guessed"}})
    assert HintrlConfig(home=tmp_path).with_settings({}, "--set") == HintrlConfig(home=tmp_path)
