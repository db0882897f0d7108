from hintrl.config import GateConfig
from offline_rl.gate import decide
from offline_rl.ope import Estimate


def est(value, low, high, ess=500.0, name="wpdis"):
    return Estimate(name, value, low, high, ess, 3.0, 0.0, 1000)


BEHAVIOR = est(0.20, 0.19, 0.21, name="behavior")
CFG = GateConfig(min_margin_over_behavior=0.0, min_margin_over_champion=0.0, min_effective_sample_size=100, guardrails={})


def test_promotes_when_lower_bound_beats_behaviour_and_no_champion():
    d = decide(est(0.25, 0.22, 0.28), BEHAVIOR, None, CFG)
    assert d.promote
    assert any("no current champion" in r for r in d.reasons)


def test_rejects_when_lower_bound_does_not_beat_behaviour():
    d = decide(est(0.25, 0.195, 0.3), BEHAVIOR, None, CFG)
    assert not d.promote
    assert d.reasons == ["failed: wpdis lower bound 0.1950 vs behaviour 0.2000 + margin 0"]


def test_rejects_when_lower_bound_does_not_beat_champion():
    d = decide(est(0.25, 0.22, 0.28), BEHAVIOR, est(0.23, 0.2, 0.26), CFG)
    assert not d.promote
    assert "champion 0.2300" in d.reasons[0]


def test_margin_is_applied():
    d = decide(est(0.25, 0.22, 0.28), BEHAVIOR, None, GateConfig(min_margin_over_behavior=0.05))
    assert not d.promote


def test_low_effective_sample_size_rejects():
    d = decide(est(0.25, 0.22, 0.28, ess=20), BEHAVIOR, None, CFG)
    assert not d.promote and "effective sample size 20" in d.reasons[0]


def test_fails_closed_on_missing_or_broken_inputs():
    assert not decide(None, BEHAVIOR, None, CFG).promote
    assert not decide(est(float("nan"), 0.2, 0.3), BEHAVIOR, None, CFG).promote
    d = decide(est(0.25, 0.22, 0.28), BEHAVIOR, None, CFG, champion_error="spec mismatch")
    assert not d.promote and "spec mismatch" in d.reasons[0]


def test_largest_weight_above_the_limit_fails():
    heavy = Estimate("wpdis", 0.25, 0.22, 0.28, 500.0, 2500.0, 0.0, 1000)
    d = decide(heavy, BEHAVIOR, None, CFG)
    assert not d.promote and d.reasons == ["failed: largest weight 2500.00 vs maximum 1000"]
    assert decide(heavy, BEHAVIOR, None, GateConfig(max_weight=0, guardrails={})).promote  # 0: no limit


def test_guardrails_hold_back_a_policy_that_loses_purchases_and_fail_closed_when_missing():
    cfg = GateConfig(guardrails={"purchased": 0.01})
    good = est(0.25, 0.22, 0.28)
    logged = est(0.050, 0.045, 0.055, name="behavior")
    assert decide(good, BEHAVIOR, None, cfg, guardrails={"purchased": (est(0.041, 0.03, 0.05), logged)}).promote
    d = decide(good, BEHAVIOR, None, cfg, guardrails={"purchased": (est(0.039, 0.03, 0.05), logged)})
    assert not d.promote
    assert d.reasons == ["failed: guardrail purchased: 0.0390 vs behaviour 0.0500 - allowed drop 0.01"]
    d = decide(good, BEHAVIOR, None, cfg)
    assert not d.promote and d.reasons == ["failed: guardrail purchased: no finite estimate: fail closed"]


def test_gate_config_is_validated():
    import pytest

    with pytest.raises(ValueError, match="gate.estimator"):
        GateConfig(estimator="dr")
    with pytest.raises(ValueError, match="unknown reward component"):
        GateConfig(guardrails={"revenue": 1.0})


def test_bernstein_bound_decides_when_configured():
    cfg = GateConfig(estimator="pdis", bound="bernstein", guardrails={})
    loose = Estimate("pdis", 0.25, 0.22, 0.28, 500.0, 3.0, 0.0, 1000, bernstein_low=0.15)
    d = decide(loose, BEHAVIOR, None, cfg)
    assert not d.promote and d.reasons[0] == "failed: pdis Bernstein lower bound 0.1500 vs behaviour 0.2000 + margin 0"
    tight = Estimate("pdis", 0.25, 0.22, 0.28, 500.0, 3.0, 0.0, 1000, bernstein_low=0.21)
    assert decide(tight, BEHAVIOR, None, cfg).promote
    import pytest

    with pytest.raises(ValueError, match="bernstein needs"):
        GateConfig(estimator="wpdis", bound="bernstein")
