"""OPE estimators against hand-computed values (see the derivations in each test)."""

import numpy as np
import pytest

from offline_rl.ope import (
    BehaviorValue,
    DoublyRobust,
    Episodes,
    OPEInputError,
    PerDecisionIS,
    TrajectoryIS,
    WeightedDoublyRobust,
    WeightedIS,
    WeightedPerDecisionIS,
)

# Three episodes of lengths 2, 1, 3 (ratios pi/mu in brackets):
#   E1 r=[1, 0]     mu=[.5, .5]      pi=[1, .5]      ratios [2, 1]     cumulative [2, 2]     W=2  G=1
#   E2 r=[0]        mu=[.25]         pi=[.5]         ratios [2]        cumulative [2]        W=2  G=0
#   E3 r=[0, 1, 1]  mu=[.5, .5, .5]  pi=[.25, .5, 1] ratios [.5, 1, 2] cumulative [.5, .5, 1] W=1 G=2
IDS = np.array(["e1", "e1", "e2", "e3", "e3", "e3"])
STEPS = np.array([0, 1, 0, 0, 1, 2])
R = np.array([1, 0, 0, 0, 1, 1], dtype=float)
MU = np.array([0.5, 0.5, 0.25, 0.5, 0.5, 0.5])
PI = np.array([1.0, 0.5, 0.5, 0.25, 0.5, 1.0])


@pytest.fixture
def episodes():
    return Episodes.from_steps(IDS, STEPS, R, MU, PI)


def test_padding_keeps_the_last_cumulative_weight(episodes):
    np.testing.assert_allclose(episodes.cumulative_weights, [[2, 2, 2], [2, 2, 2], [0.5, 0.5, 1.0]])
    np.testing.assert_array_equal(episodes.lengths, [2, 1, 3])


@pytest.mark.parametrize(
    "estimator, expected",
    [
        (BehaviorValue, (1 + 0 + 2) / 3),
        (TrajectoryIS, (2 * 1 + 2 * 0 + 1 * 2) / 3),  # mean of W*G
        (WeightedIS, (2 * 1 + 2 * 0 + 1 * 2) / (2 + 2 + 1)),  # sum W*G / sum W
        (PerDecisionIS, 2 / 3 + 0.5 / 3 + 1 / 3),  # per step: mean of cumulative weight * r
        (WeightedPerDecisionIS, 2 / 4.5 + 0.5 / 4.5 + 1 / 5),  # per step: sum w*r / sum w
    ],
)
def test_closed_form_values(episodes, estimator, expected):
    assert estimator(gamma=1.0).estimate_policy_value(episodes) == pytest.approx(expected)


def test_discounting_applies_per_step(episodes):
    # PDIS with gamma 0.5: 2/3 + 0.5 * (0.5/3) + 0.25 * (1/3)
    assert PerDecisionIS(gamma=0.5).estimate_policy_value(episodes) == pytest.approx(2 / 3 + 0.5 * 0.5 / 3 + 0.25 / 3)


def test_diagnostics(episodes):
    est = WeightedPerDecisionIS().estimate(episodes, n_bootstrap=200)
    assert est.effective_sample_size == pytest.approx(25 / 9)  # (2+2+1)^2 / (4+4+1)
    assert est.max_weight == pytest.approx(2.0)
    assert est.zero_weight_share == 0.0
    assert est.n_episodes == 3


def test_one_step_data_reduces_to_ips_and_snips():
    rng = np.random.default_rng(3)
    n = 500
    mu = rng.uniform(0.1, 0.9, n)
    pi = rng.uniform(0.0, 1.0, n)
    r = rng.binomial(1, 0.3, n).astype(float)
    ep = Episodes.from_steps(np.arange(n), np.zeros(n, dtype=int), r, mu, pi)
    w = pi / mu
    ips, snips = np.mean(w * r), np.sum(w * r) / np.sum(w)
    assert TrajectoryIS().estimate_policy_value(ep) == pytest.approx(ips)
    assert PerDecisionIS().estimate_policy_value(ep) == pytest.approx(ips)
    assert WeightedIS().estimate_policy_value(ep) == pytest.approx(snips)
    assert WeightedPerDecisionIS().estimate_policy_value(ep) == pytest.approx(snips)


def test_on_policy_target_makes_every_estimator_the_behaviour_value(episodes):
    ep = Episodes.from_steps(IDS, STEPS, R, MU, MU)
    behavior = BehaviorValue().estimate_policy_value(ep)
    for estimator in (TrajectoryIS, WeightedIS, PerDecisionIS, WeightedPerDecisionIS):
        assert estimator().estimate_policy_value(ep) == pytest.approx(behavior)


def test_bootstrap_interval_brackets_the_value_and_is_reproducible():
    rng = np.random.default_rng(0)
    n_ep, horizon = 400, 3
    ids = np.repeat(np.arange(n_ep), horizon)
    steps = np.tile(np.arange(horizon), n_ep)
    mu = rng.uniform(0.2, 0.8, n_ep * horizon)
    pi = np.clip(mu + rng.normal(0, 0.1, mu.shape), 0.01, 1.0)
    r = rng.binomial(1, 0.2, mu.shape).astype(float)
    ep = Episodes.from_steps(ids, steps, r, mu, pi)
    est = WeightedPerDecisionIS()
    low, high = est.estimate_interval(ep, n_bootstrap=500, seed=1)
    assert low < est.estimate_policy_value(ep) < high
    assert (low, high) == est.estimate_interval(ep, n_bootstrap=500, seed=1)
    narrow = est.estimate_interval(ep, n_bootstrap=500, confidence=0.5, seed=1)
    assert low < narrow[0] < narrow[1] < high


@pytest.mark.parametrize(
    "mu, pi, match",
    [
        (np.array([0.5, 0.0, 0.5, 0.5, 0.5, 0.5]), PI, "behavior probability outside"),
        (np.array([0.5, 1.5, 0.5, 0.5, 0.5, 0.5]), PI, "behavior probability outside"),
        (np.array([0.5, np.nan, 0.5, 0.5, 0.5, 0.5]), PI, "missing behavior probability"),
        (MU, np.array([1.0, 0.5, 1.2, 0.25, 0.5, 1.0]), "target probability outside"),
    ],
)
def test_refuses_bad_probabilities(mu, pi, match):
    with pytest.raises(OPEInputError, match=match):
        Episodes.from_steps(IDS, STEPS, R, mu, pi)


def test_refuses_gaps_in_steps():
    with pytest.raises(OPEInputError, match="consecutive"):
        Episodes.from_steps(IDS, np.array([0, 2, 0, 0, 1, 2]), R, MU, PI)


# Doubly robust with q_hat = 0.5 and v_hat = 0.4 on every logged step (0 after an episode ends).
# DR per episode: sum_t w_t (r_t - q_t) + w_{t-1} v_t, with w_{-1} = 1:
#   E1: 2(1 - .5) + 1(.4) + 2(0 - .5) + 2(.4) = 1.2;  E2: 2(-.5) + .4 = -0.6
#   E3: .5(-.5) + .4 + .5(.5) + .5(.4) + 1(.5) + .5(.4) = 1.3
# WDR per step: sum w(r - q) / sum w  +  sum w_prev v / sum w_prev
#   t0: -.25/4.5 + 1.2/3;  t1: -.75/4.5 + 1.0/4.5;  t2: .5/5 + .2/4.5
Q_HAT, V_HAT = np.full(6, 0.5), np.full(6, 0.4)


def test_doubly_robust_closed_forms():
    ep = Episodes.from_steps(IDS, STEPS, R, MU, PI, Q_HAT, V_HAT)
    assert DoublyRobust().estimate_policy_value(ep) == pytest.approx((1.2 - 0.6 + 1.3) / 3)
    expected_wdr = (-0.25 / 4.5 + 1.2 / 3) + (-0.75 / 4.5 + 1.0 / 4.5) + (0.5 / 5 + 0.2 / 4.5)
    assert WeightedDoublyRobust().estimate_policy_value(ep) == pytest.approx(expected_wdr)


def test_zero_model_makes_dr_pdis_and_wdr_wpdis():
    ep = Episodes.from_steps(IDS, STEPS, R, MU, PI, np.zeros(6), np.zeros(6))
    assert DoublyRobust().estimate_policy_value(ep) == pytest.approx(PerDecisionIS().estimate_policy_value(ep))
    assert WeightedDoublyRobust().estimate_policy_value(ep) == pytest.approx(
        WeightedPerDecisionIS().estimate_policy_value(ep))


def test_one_step_dr_is_the_bandit_dr():
    rng = np.random.default_rng(5)
    n = 300
    mu, pi = rng.uniform(0.1, 0.9, n), rng.uniform(0, 1, n)
    r, q, v = rng.binomial(1, 0.4, n).astype(float), rng.uniform(0, 1, n), rng.uniform(0, 1, n)
    ep = Episodes.from_steps(np.arange(n), np.zeros(n, dtype=int), r, mu, pi, q, v)
    w = pi / mu
    assert DoublyRobust().estimate_policy_value(ep) == pytest.approx(np.mean(w * (r - q) + v))
    assert WeightedDoublyRobust().estimate_policy_value(ep) == pytest.approx(np.sum(w * (r - q)) / np.sum(w) + np.mean(v))


def test_dr_needs_both_models():
    with pytest.raises(OPEInputError, match="both q_hat and v_hat"):
        Episodes.from_steps(IDS, STEPS, R, MU, PI, Q_HAT, None)
    with pytest.raises(OPEInputError, match="dr needs q_hat"):
        DoublyRobust().estimate_policy_value(Episodes.from_steps(IDS, STEPS, R, MU, PI))


def test_empirical_bernstein_bound_by_hand_and_only_for_plain_means():
    from offline_rl.ope import ESTIMATORS, Episodes, empirical_bernstein_lower_bound

    x = np.array([0.0, 1.0, 1.0, 0.0])
    # mean 0.5, sample variance 1/3, d = 0.05: 0.5 - sqrt(2 * (1/3) * ln 40 / 4) - 7 * 1 * ln 40 / (3 * 3)
    expected = 0.5 - np.sqrt(2 * (1 / 3) * np.log(40) / 4) - 7 * np.log(40) / 9
    assert empirical_bernstein_lower_bound(x, 0.95) == pytest.approx(expected)
    assert empirical_bernstein_lower_bound(x, 0.95, value_range=2.0) == pytest.approx(expected - 7 * np.log(40) / 9)
    # PDIS is a mean of per-episode terms: its bound uses them; WPDIS (self-normalised) has none.
    ep = Episodes.from_steps(np.array([0, 0, 1, 2]), np.array([0, 1, 0, 0]), np.array([1.0, 1.0, 0.0, 1.0]),
                             np.array([0.5, 0.5, 0.5, 0.5]), np.array([1.0, 0.5, 0.5, 0.25]))
    pdis = ESTIMATORS["pdis"](1.0)
    terms = pdis.per_episode(ep)  # episode 0: 2*1 + 2*1*1, episode 1: 0, episode 2: 0.5
    np.testing.assert_allclose(terms, [4.0, 0.0, 0.5])
    est = pdis.estimate(ep, n_bootstrap=50)
    assert est.value == pytest.approx(terms.mean())
    assert est.bernstein_low == pytest.approx(empirical_bernstein_lower_bound(terms, 0.95))
    assert ESTIMATORS["wpdis"](1.0).estimate(ep, n_bootstrap=50).bernstein_low is None


def test_shared_bootstrap_replicates_give_each_estimator_its_own_interval():
    from offline_rl.ope import ESTIMATORS, Episodes, estimate_all

    rng = np.random.default_rng(1)
    ids = np.repeat(np.arange(300), 2)
    ep = Episodes.from_steps(ids, np.tile([0, 1], 300), rng.random(600), rng.uniform(0.2, 1, 600), rng.uniform(0, 1, 600))
    together = estimate_all(ep, ("is", "wpdis"), n_bootstrap=200, seed=3)
    for name in ("is", "wpdis"):
        alone = ESTIMATORS[name](1.0).estimate(ep, n_bootstrap=200, seed=3)
        assert (together[name].low, together[name].high, together[name].value) == pytest.approx((alone.low, alone.high, alone.value))
        assert together[name].low < together[name].value < together[name].high


# Weights whose mean falls short of 1 (a sample lacking the logs' rare, heavily weighted steps):
#   E1 r=[1, 0]  mu=[.5, .5]  pi=[.25, .5]  cumulative [.5, .5]  W=.5  G=1
#   E2 r=[0]     mu=[.5]      pi=[.5]       cumulative [1] (padded [1, 1])  W=1  G=0
#   E3 r=[0, 1]  mu=[.5, .5]  pi=[.25, .5]  cumulative [.5, .5]  W=.5  G=1
# Mean weight 2/3 at each step: mass 1/3 unseen; the largest reward seen is 1 at each step, the
# largest return 1.
SHORT = dict(episode_ids=np.array([1, 1, 2, 3, 3]), steps=np.array([0, 1, 0, 0, 1]),
             rewards=np.array([1.0, 0, 0, 0, 1]), behavior_probs=np.full(5, 0.5),
             target_probs=np.array([0.25, 0.5, 0.5, 0.25, 0.5]))


@pytest.mark.parametrize(
    "estimator, gamma, expected",
    [
        (TrajectoryIS, 1.0, 1 / 3 * 1),  # missing mass x (largest return - 0)
        (WeightedIS, 1.0, 1 / 3 * (1 - 0.5)),  # WIS = (.5 + .5) / 2 = .5 credits it the mean
        (PerDecisionIS, 1.0, 1 / 3 + 1 / 3),  # per step: 1/3 x (1 - 0)
        (PerDecisionIS, 0.5, 1 / 3 + 0.5 / 3),
        (WeightedPerDecisionIS, 1.0, 2 * 1 / 3 * (1 - 0.25)),  # step values .5/2 = .25
        (BehaviorValue, 1.0, 0.0),
    ],
)
def test_unseen_weight_mass_allowance_by_hand(estimator, gamma, expected):
    ep = Episodes.from_steps(**SHORT)
    # No reward below 0: crediting the missing mass none is already the lowest it could earn.
    assert estimator(gamma).unseen_mass_allowance(ep) == pytest.approx((0.0, expected))


# SHORT with every logged reward lowered by 1 (E1 [0, -1], E2 [-1], E3 [-1, 0]; E2's padded
# second step keeps reward 0): returns -1, -1, -1; smallest reward -1 at both steps, largest 0.
NEGATIVE = dict(SHORT, rewards=SHORT["rewards"] - 1.0)


@pytest.mark.parametrize(
    "estimator, gamma, expected",
    [
        (TrajectoryIS, 1.0, (1 / 3 * (0 - -1), 0.0)),  # the largest return, -1, is below the 0 credited
        (PerDecisionIS, 1.0, (1 / 3 + 1 / 3, 0.0)),  # per step: 1/3 x (0 - -1) down, 1/3 x (0 - 0) up
        (PerDecisionIS, 0.5, (1 / 3 + 0.5 / 3, 0.0)),
        # WIS = (-.5 - 1 - .5) / 2 = -1, every return: nothing either way.
        (WeightedIS, 1.0, (0.0, 0.0)),
        # Step values (0 - 1 - .5) / 2 = -.75 and (-.5 + 0 + 0) / 2 = -.25; the largest reward 0 at
        # both; the lower end is the bootstrap's alone.
        (WeightedPerDecisionIS, 1.0, (0.0, 1 / 3 * 0.75 + 1 / 3 * 0.25)),
    ],
)
def test_negative_rewards_lower_the_unnormalised_estimators_lower_end_by_hand(estimator, gamma, expected):
    ep = Episodes.from_steps(**NEGATIVE)
    assert estimator(gamma).unseen_mass_allowance(ep) == pytest.approx(expected)


def test_negative_rewards_widen_the_interval_downwards():
    ep = Episodes.from_steps(**NEGATIVE)
    low, high = PerDecisionIS().estimate_interval(ep, n_bootstrap=300, seed=2)
    plain_low, plain_high = PlainPDIS().estimate_interval(ep, n_bootstrap=300, seed=2)
    assert low == pytest.approx(plain_low - 2 / 3)
    assert high == plain_high


def test_no_allowance_when_the_weights_mean_reaches_one(episodes):
    # The fixture's mean weights are 1.5, 1.5 and 5/3; on-policy they are exactly 1.
    on_policy = Episodes.from_steps(IDS, STEPS, R, MU, MU)
    for estimator in (TrajectoryIS, WeightedIS, PerDecisionIS, WeightedPerDecisionIS):
        for ep in (episodes, on_policy, Episodes.from_steps(IDS, STEPS, R - 1.0, MU, MU)):
            assert estimator().unseen_mass_allowance(ep) == (0.0, 0.0)


class PlainWPDIS(WeightedPerDecisionIS):
    """WPDIS with the plain percentile interval."""

    def unseen_mass_allowance(self, ep):
        return 0.0, 0.0


class PlainPDIS(PerDecisionIS):
    """PDIS with the plain percentile interval."""

    def unseen_mass_allowance(self, ep):
        return 0.0, 0.0


def test_the_allowance_leaves_the_gates_lower_end_alone():
    ep = Episodes.from_steps(**SHORT)
    low, high = WeightedPerDecisionIS().estimate_interval(ep, n_bootstrap=300, seed=2)
    plain_low, plain_high = PlainWPDIS().estimate_interval(ep, n_bootstrap=300, seed=2)
    assert low == plain_low
    assert high == pytest.approx(plain_high + 0.5)


def _coverage_when_a_rare_action_may_be_missing(estimator, plain, rare_reward, draw_common, truth, seed):
    """Coverage with and without the allowance over 200 one-step samples of 40 episodes: a rare
    action (b = .05) paying `rare_reward`, a common one (b = .95) paying `draw_common(rng, n)`, the
    target playing each half the time."""
    rng = np.random.default_rng(seed)
    covered, plain_covered = 0, 0
    trials, n = 200, 40
    for trial in range(trials):
        rare = rng.random(n) < 0.05
        rewards = np.where(rare, rare_reward, draw_common(rng, n))
        ep = Episodes.from_steps(np.arange(n), np.zeros(n, dtype=int), rewards, np.where(rare, 0.05, 0.95),
                                 np.full(n, 0.5))
        low, high = estimator().estimate_interval(ep, n_bootstrap=200, seed=trial)
        plain_low, plain_high = plain().estimate_interval(ep, n_bootstrap=200, seed=trial)
        covered += low <= truth <= high
        plain_covered += plain_low <= truth <= plain_high
    return covered / trials, plain_covered / trials


def test_the_allowance_restores_coverage_where_the_rare_rewarded_action_is_missing():
    # The rare action pays 1, the common one Bernoulli(.3): truth .5 * .3 + .5 * 1 = .65. In 40
    # episodes the rare action is absent about one time in eight, and then the percentile
    # interval sits near .3, well under the truth.
    covered, plain_covered = _coverage_when_a_rare_action_may_be_missing(
        WeightedPerDecisionIS, PlainWPDIS, 1.0, lambda rng, n: (rng.random(n) < 0.3).astype(float), 0.65, seed=5)
    assert plain_covered < 0.9  # 83.5%
    assert covered >= 0.95  # 98%


def test_the_allowance_restores_coverage_where_the_rare_penalised_action_is_missing():
    # The mirror with a penalty (rewards as in the ma_rdpg preset can be negative): the rare action
    # costs -1, the common one pays -1, 0 or 1 with probabilities .2, .5, .3: truth
    # .5 * .1 + .5 * -1 = -.45. Without the rare action the estimate sits near .05, and crediting
    # the missing mass nothing puts the whole percentile interval above the truth.
    covered, plain_covered = _coverage_when_a_rare_action_may_be_missing(
        PerDecisionIS, PlainPDIS, -1.0, lambda rng, n: rng.choice([-1.0, 0.0, 1.0], size=n, p=[0.2, 0.5, 0.3]),
        -0.45, seed=6)
    assert plain_covered < 0.9  # 83.5%
    assert covered >= 0.95  # 97.5%
