import dataclasses

import numpy as np
import pandas as pd
import pytest

from feature_store.registry import build_spec
from hintrl.config import RewardConfig, SimulatorConfig
from offline_rl.policies import UniformPolicy as ServedUniform
from simulator.ground_truth import logged_value, measure, rollout
from simulator.logging_policy import ServedPolicy
from simulator.logs import Simulator

WORLD = SimulatorConfig(n_users=1500, n_queries=80, n_items=300, seed=5)
DAYS = ["2026-11-01", "2026-11-02"]


@pytest.fixture(scope="module")
def logs():
    sim = Simulator(WORLD)
    return pd.concat([sim.simulate_day(d, i).search_pv.to_pandas() for i, d in enumerate(DAYS)], ignore_index=True)


@pytest.fixture(scope="module")
def baseline_truth():
    return rollout("baseline", WORLD, DAYS[0], len(DAYS))


def test_rollout_of_the_baseline_reproduces_the_logged_baseline_bucket(logs, baseline_truth):
    logged = logged_value(logs, "baseline")
    for preset in ("ctr", "guided"):
        assert logged.returns[preset].contains(baseline_truth.returns[preset].value), preset
    assert logged.hint_ctr.contains(baseline_truth.hint_ctr.value)


def test_oracle_beats_the_baseline_and_uniform_is_worse(baseline_truth):
    oracle = rollout("oracle", WORLD, DAYS[0], len(DAYS))
    uniform = rollout("uniform", WORLD, DAYS[0], len(DAYS))
    assert oracle.hint_ctr.low > baseline_truth.hint_ctr.high
    assert oracle.returns["ctr"].low > baseline_truth.returns["ctr"].high
    assert uniform.hint_ctr.value < baseline_truth.hint_ctr.value


def test_expected_hint_ctr_is_the_drawn_ctrs_expectation_without_the_clicks_noise(baseline_truth):
    oracle = rollout("oracle", WORLD, DAYS[0], len(DAYS))
    for truth in (baseline_truth, oracle):
        drawn, expected = truth.hint_ctr, truth.expected_hint_ctr
        assert expected is not None and 0.0 < expected.value < 1.0
        assert drawn.contains(expected.value)
        # Bernoulli noise is most of a click's variance at CTRs near 0.1: the interval shrinks by more than half.
        assert expected.high - expected.low < 0.5 * (drawn.high - drawn.low)
    assert oracle.expected_hint_ctr.low > baseline_truth.expected_hint_ctr.high


def test_rollout_is_deterministic_for_a_seed(baseline_truth):
    assert rollout("baseline", WORLD, DAYS[0], len(DAYS)) == baseline_truth


def test_policy_bucket_logs_the_served_policys_probabilities():
    served = ServedPolicy(ServedUniform(state_dim=build_spec(list(range(WORLD.n_types))).state_dim), name="served-uniform")
    sim = Simulator(dataclasses.replace(WORLD, policy_share=0.5, explore_share=0.0), policy=served)
    pv = sim.simulate_day(DAYS[0], 0).search_pv.to_pandas()
    policy_rows = pv[pv.bucket == "policy"]
    assert 0.4 < len(policy_rows) / len(pv) < 0.6
    assert (policy_rows.policy_version == "served-uniform").all()
    shown_before = policy_rows.groupby(["session_id", "query_id"]).cumcount().to_numpy()
    open_counts = policy_rows.candidates.map(len).to_numpy() - shown_before
    np.testing.assert_allclose(policy_rows.propensity.to_numpy(), 1.0 / open_counts)


def test_measure_counts_episode_returns_by_hand():
    ts = pd.Timestamp("2026-11-01T10:00:00Z")
    pv = pd.DataFrame({
        "event_id": ["a", "b", "c"], "ts": [ts] * 3, "session_id": ["s1", "s1", "s2"], "query_id": ["q"] * 3,
        "page": [1, 2, 1], "hint_type": [0, 1, 2], "hint_clicked": [True, True, False], "item_clicks": [0, 0, 0],
        "purchased": [False, False, False], "purchase_amount": [0.0, 0.0, 0.0],
    })
    value = measure(pv, "hand")
    # ctr preset, page decay 0.9: episode s1 = 1 + 0.9, episode s2 = 0
    assert value.returns["ctr"].value == pytest.approx(1.9 / 2)
    assert value.hint_ctr.value == pytest.approx(2 / 3)
    # ma_rdpg: s1 = 1 + 1 (clicks), s2 = -5 (left without purchase)
    assert value.returns["ma_rdpg"].value == pytest.approx((2 - 5) / 2)
    assert value.expected_hint_ctr is None  # page views without their click probabilities
    with_probability = measure(pv.assign(hint_click_probability=[0.5, 0.2, 0.2]), "hand")
    assert with_probability.expected_hint_ctr.value == pytest.approx(0.9 / 3)
    assert with_probability.hint_ctr == value.hint_ctr
    # Against a baseline that clicked 1 of 3 (expected 0.3 / 3): 2/3 over 1/3 drawn, 0.9 over 0.3 expected.
    baseline = measure(pv.assign(hint_clicked=[True, False, False], hint_click_probability=[0.1, 0.1, 0.1]), "base")
    assert with_probability.ratio_to(baseline) == pytest.approx((2.0, 3.0))
    assert value.ratio_to(baseline) == (pytest.approx(2.0), None)  # no expected CTR on one side


def test_thompson_sampling_rolls_out_in_the_simulator():
    """A Thompson policy served in the world: flat posteriors behave as uniform random over the
    candidates (the same true CTR), a posterior sure of the best type beats the baseline."""
    from offline_rl.baselines import ThompsonPolicy
    from simulator.world import build_world

    state_dim = build_spec(list(range(WORLD.n_types))).state_dim
    flat = np.ones((1, WORLD.n_types))
    one_segment = lambda states: np.zeros(len(states), dtype=np.int64)  # noqa: E731
    thompson = ServedPolicy(ThompsonPolicy(state_dim, flat, flat, one_segment), name="thompson")
    uniform = rollout("uniform", WORLD, DAYS[0], 1)
    flat_truth = rollout(thompson, WORLD, DAYS[0], 1)
    assert abs(flat_truth.hint_ctr.value - uniform.hint_ctr.value) < 0.02
    # Posteriors sharp around each type's mean click appeal in the world: mostly the best candidate.
    world = build_world(WORLD)
    users = np.arange(len(world.gender))[:, None]
    types = np.arange(WORLD.n_types)[None, :]
    appeal = 1.0 / (1.0 + np.exp(-(world.type_base + world.pref(users, types).mean(axis=0))))
    sharp = ServedPolicy(ThompsonPolicy(state_dim, 1000 * appeal[None, :] + 1, 1000 * (1 - appeal[None, :]) + 1,
                                        one_segment), name="thompson-sharp")
    assert rollout(sharp, WORLD, DAYS[0], 1).hint_ctr.value > uniform.hint_ctr.value + 0.01


def test_rollout_can_measure_only_its_last_days(baseline_truth):
    """Two days measured on the second only: the first day still runs (users' history builds up)."""
    first = rollout("baseline", WORLD, DAYS[0], 1)
    last = rollout("baseline", WORLD, DAYS[0], 2, measure_last=1)
    assert first.n_page_views + last.n_page_views == baseline_truth.n_page_views


def test_a_deployment_replays_the_logs_history_exactly():
    from simulator.ground_truth import Deployment

    sim = Simulator(WORLD)
    first_day = sim.simulate_day(DAYS[0], 0).frame()
    logged_day = measure(sim.simulate_day(DAYS[1], 1).frame(), "behavior")
    deployment = Deployment(WORLD, DAYS[0], len(DAYS))
    assert len(deployment.history) == 1
    pd.testing.assert_frame_equal(deployment.history[0].frame(), first_day)  # the replayed day is the logged one
    # Drawn with the logged day's own index, the logging buckets give back the logged day itself:
    # the history the deployed day starts from is the logs'.
    assert deployment.value("behavior", first_draw=1) == logged_day
    redraw = deployment.value("behavior")
    assert redraw != logged_day and redraw.returns["ctr"].contains(logged_day.returns["ctr"].value)
    assert deployment.value("behavior") == redraw  # value() leaves the replayed history untouched


def test_a_deployment_serves_everyone_and_pools_its_redraws():
    from simulator.ground_truth import Deployment

    deployment = Deployment(WORLD, DAYS[0], len(DAYS))
    one, three = deployment.value("uniform"), deployment.value("uniform", replicas=3)
    assert 2.5 * one.n_episodes < three.n_episodes < 3.5 * one.n_episodes
    assert three.returns["ctr"].high - three.returns["ctr"].low < one.returns["ctr"].high - one.returns["ctr"].low
    assert deployment.value("oracle").hint_ctr.low > three.hint_ctr.high
    with pytest.raises(ValueError, match="unknown built-in policy"):
        deployment.value("greedy")


def test_a_logged_redraw_asks_every_target_about_the_logged_hint_without_changing_the_day():
    from simulator.ground_truth import Deployment
    from simulator.logging_policy import UniformPolicy

    deployment = Deployment(WORLD, DAYS[0], len(DAYS))
    baseline = deployment._sim.baseline
    frame = deployment.logged_redraw({"uniform": UniformPolicy(), "baseline": baseline})
    # Asking the targets draws nothing: the day is the plain redraw with the same index.
    assert measure(frame, "behavior") == deployment.value("behavior")
    for bucket, target in (("explore", "target_uniform"), ("baseline", "target_baseline")):
        rows = frame[frame["bucket"] == bucket]
        assert len(rows) > 50
        np.testing.assert_allclose(rows[target], rows["propensity"])
    # Where the baseline showed its top hint, uniform gives it 1 / (open candidates): less than the
    # baseline's propensity unless a single candidate was left open.
    top = frame[(frame["bucket"] == "baseline") & (frame["propensity"] > 0.5)]
    assert (top["target_uniform"] > 0).all() and (top["target_uniform"] <= top["propensity"]).all()
    assert (top["target_uniform"] < top["propensity"]).mean() > 0.9


def test_a_retuned_deployment_changes_only_the_deployed_days_dynamics():
    from simulator.ground_truth import Deployment
    from simulator.world import World

    deployment = Deployment(WORLD, DAYS[0], len(DAYS))
    before = deployment.value("behavior")
    deployment.retune(recency_boost=4.0)
    assert deployment._sim.world.recency_boost == 4.0
    # A strong boost: every user who clicked a hint type lately is now all but sure to click it again.
    assert deployment.value("behavior").hint_ctr.low > before.hint_ctr.high
    deployment.retune(recency_boost=World.recency_boost)  # the default it had
    assert deployment.value("behavior") == before  # the replayed history itself was never touched
    with pytest.raises(ValueError, match=r"cannot retune \['seed'\]"):
        deployment.retune(seed=3)


class _StateTilted:
    """A policy that reads the state: candidates tilted by the state's first features, so that a
    mismatched state would change its probabilities."""

    name = "state tilted"

    def candidate_probabilities(self, states: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        logits = np.where(candidates >= 0, states[:, :1] * (1 + candidates) + states[:, 1:2], -np.inf)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return p / p.sum(axis=1, keepdims=True)


def test_a_redraw_with_states_becomes_the_transitions_the_nightly_evaluates():
    from offline_rl.evaluate import logged_action_probabilities
    from simulator.ground_truth import Deployment, redraw_transitions, step_components

    deployment = Deployment(WORLD, DAYS[0], len(DAYS))
    target = ServedPolicy(_StateTilted())
    frame = deployment.logged_redraw({"tilted": target}, with_states=True)
    # The states ride along without changing the day.
    assert measure(frame, "behavior") == deployment.value("behavior")
    data = redraw_transitions(frame, deployment.ds, RewardConfig(preset="ctr"), WORLD.n_types, "spec-test",
                              components=("purchased",))
    steps, components = step_components(frame)
    assert len(data) == len(steps) and data.n_episodes == steps["episode"].nunique()
    assert data.logged_in_candidates().all()  # the logged hint was open on its page
    assert data.masks.sum(axis=1).min() >= 1 and set(data.components) == {"purchased"}
    np.testing.assert_array_equal(data.terminals == 1, np.r_[data.episode_ids[1:] != data.episode_ids[:-1], True])
    # The ctr preset: a click on page p is worth 0.9 ** (p - 1).
    np.testing.assert_allclose(data.rewards, components["hint_click"] * 0.9 ** (data.steps - 1), rtol=1e-6)
    # The policy asked through the transitions' states and open candidates gives back what it said
    # in the simulator about each logged hint: the states are the ones it saw.
    probs, _ = logged_action_probabilities(_StateTilted(), data)
    np.testing.assert_allclose(probs, steps["target_tilted"].to_numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="no states"):
        redraw_transitions(deployment.logged_redraw({}), deployment.ds, RewardConfig(), WORLD.n_types, "v")
    with pytest.raises(ValueError, match="unknown reward components"):
        redraw_transitions(frame, deployment.ds, RewardConfig(), WORLD.n_types, "v", components=("clicks",))
