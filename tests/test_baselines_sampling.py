"""Baseline policies (Thompson sampling, behaviour cloning), stratified mini-batches, and training
reproducible for a seed."""

import dataclasses

import numpy as np
import pytest

from hintrl.errors import HintrlError
from offline_rl.dataset import Transitions


def make_transitions(n_episodes=600, seed=0, strata=None):
    """Episodes of one step; state [is_female, 1]; 4 hint types, candidates {0, 1, 2} or {1, 2, 3}.
    The logged policy picks uniformly among the candidates; type 1 is clicked 60% of the time,
    others 10%."""
    rng = np.random.default_rng(seed)
    female = rng.random(n_episodes) < 0.5 if strata is None else np.char.startswith(np.asarray(strata, dtype=str), "F")
    states = np.stack([female, np.ones(n_episodes)], axis=1).astype(np.float32)
    first = rng.random(n_episodes) < 0.5
    masks = np.where(first[:, None], [1, 1, 1, 0], [0, 1, 1, 1]).astype(np.float32)
    actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
    clicks = (rng.random(n_episodes) < np.where(actions == 1, 0.6, 0.1)).astype(np.float64)
    if strata is None:
        strata = np.where(female, "F|25-34|3", "M|25-34|3")
    return Transitions(
        episode_ids=np.arange(n_episodes).astype(str), steps=np.zeros(n_episodes, dtype=np.int64), states=states,
        masks=masks, actions=actions.astype(np.int64), propensities=np.full(n_episodes, 1 / 3),
        rewards=clicks.astype(np.float32), terminals=np.ones(n_episodes, dtype=np.float32),
        buckets=np.full(n_episodes, "explore"), strata=np.asarray(strata), feature_spec_version="test",
        days=("2026-11-01",), components={"hint_click": clicks},
    )


def test_thompson_posteriors_count_shows_and_clicks():
    from offline_rl.baselines import fit_thompson

    data = make_transitions()
    policy = fit_thompson(data, prior=(1.0, 1.0))
    shows = np.bincount(data.actions, minlength=4)
    clicks = np.bincount(data.actions, weights=data.components["hint_click"], minlength=4)
    np.testing.assert_array_equal(policy.alpha[0], clicks + 1)
    np.testing.assert_array_equal(policy.beta[0], shows - clicks + 1)


def test_thompson_probabilities_are_the_chance_of_the_largest_draw():
    from offline_rl.baselines import ThompsonPolicy

    # Two arms: Beta(2, 1) vs Beta(1, 1): P(X > Y) = 2/3 in closed form. A third arm is masked out.
    policy = ThompsonPolicy(state_dim=1, alpha=np.array([[2.0, 1.0, 50.0]]), beta=np.array([[1.0, 1.0, 1.0]]),
                            segment_of=lambda s: np.zeros(len(s), dtype=np.int64), n_draws=40_000)
    pi = policy.action_probabilities(np.array([[0.0, 1, 1, 0], [0.0, 1, 1, 0], [0.0, 0, 1, 0]]))
    np.testing.assert_allclose(pi[0], [2 / 3, 1 / 3, 0], atol=0.01)
    np.testing.assert_array_equal(pi[0], pi[1])  # the same state and candidates: the same answer
    np.testing.assert_array_equal(pi[2], [0, 1, 0])


def test_thompson_per_segment_learns_each_segment_apart():
    from offline_rl.baselines import fit_thompson, state_segments

    data = make_transitions(2000)
    # Women click type 2 instead of type 1.
    female = data.states[:, 0] > 0.5
    clicks = np.where(female, data.actions == 2, data.actions == 1).astype(np.float64)
    data.components["hint_click"] = clicks
    segment_of, n = state_segments(["is_female", "bias"], ("is_female",))
    policy = fit_thompson(data, per="segment", segment_of=segment_of, n_segments=n)
    pi = policy.action_probabilities(np.array([[1.0, 1, 0, 1, 1, 0], [0.0, 1, 0, 1, 1, 0]]))
    assert pi[0].argmax() == 2 and pi[1].argmax() == 1 and pi[0, 3] == pi[1, 3] == 0


def test_behaviour_cloning_recovers_the_logged_probabilities_over_candidates():
    from offline_rl.baselines import fit_bc

    data = make_transitions(1500)
    policy = fit_bc(data, n_steps=600, learning_rate=3e-3, hidden_units=(16,))
    pi = policy.action_probabilities(data.observations[:200])
    assert np.all(pi[data.masks[:200] == 0] == 0)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, rtol=1e-6)
    # The logs pick uniformly among 3 candidates.
    np.testing.assert_allclose(pi[data.masks[:200] == 1], 1 / 3, atol=0.08)


def test_stratum_weights_follow_the_target_and_keep_logged_proportions_elsewhere():
    from offline_rl.sampling import stratum_weights

    strata = np.array(["F|18-24|1"] * 10 + ["F|25-34|2"] * 30 + ["M|18-24|1"] * 40 + ["U|unknown|0"] * 20)
    weights = stratum_weights(strata, {"F|*|*": 0.5})
    assert weights["F|18-24|1"] == pytest.approx(0.125) and weights["F|25-34|2"] == pytest.approx(0.375)
    assert weights["M|18-24|1"] == pytest.approx(0.5 * 40 / 60) and weights["U|unknown|0"] == pytest.approx(0.5 * 20 / 60)
    with pytest.raises(HintrlError, match="no transitions in stratum pattern"):
        stratum_weights(strata, {"X|*|*": 0.1})
    with pytest.raises(HintrlError, match="matches several patterns"):
        stratum_weights(strata, {"F|*|*": 0.2, "*|18-24|*": 0.2})
    with pytest.raises(HintrlError, match="sum to at most 1"):
        stratum_weights(strata, {"F|*|*": 0.7, "M|*|*": 0.7})


def test_stratified_batches_match_the_target_mix_within_two_points():
    import d3rlpy

    from offline_rl.replay import ArrayReplayBuffer
    from offline_rl.sampling import StratumSampler

    rng = np.random.default_rng(1)
    # The logs: 70% M, 20% F, 10% U; the target: 40% F, 40% M, 20% U.
    strata = rng.choice(["M|25-34|3", "F|25-34|3", "U|unknown|0"], size=3000, p=[0.7, 0.2, 0.1])
    data = make_transitions(3000, strata=strata)
    target = {"F|*|*": 0.4, "M|*|*": 0.4, "U|*|*": 0.2}
    d3rlpy.seed(3)
    buffer = ArrayReplayBuffer(data, StratumSampler(data.strata, target))
    batches = [buffer.sample_transition_batch(256) for _ in range(40)]
    female = np.concatenate([b.observations[:, 0] for b in batches]) > 0.5
    # Each observation's stratum: F rows carry is_female = 1, so the F share is measurable directly.
    assert abs(female.mean() - 0.4) < 0.02
    counts = {k: 0 for k in target}
    for _ in range(40):
        for index in buffer.sampler.sample(256):
            counts[strata[index][0] + "|*|*"] += 1
    for key, share in target.items():
        assert abs(counts[key] / (40 * 256) - share) < 0.02, (key, counts)


def multi_step_transitions(n_episodes=50, seed=2):
    """Episodes of 1..4 steps, ids not in sorted order of appearance."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 5, size=n_episodes)
    n = int(lengths.sum())
    steps = np.concatenate([np.arange(k) for k in lengths])
    ends = np.cumsum(lengths) - 1
    terminals = np.zeros(n, dtype=np.float32)
    terminals[ends] = 1.0
    masks = (rng.random((n, 5)) < 0.6).astype(np.uint8)
    masks[:, 0] = 1
    return Transitions(
        episode_ids=np.repeat(np.arange(n_episodes), lengths).astype(np.int32), steps=steps,
        states=rng.random((n, 3), dtype=np.float32), masks=masks, actions=rng.integers(0, 5, size=n),
        propensities=np.full(n, 0.5), rewards=rng.random(n).astype(np.float32), terminals=terminals,
        buckets=np.full(n, "explore"), strata=np.full(n, "U|unknown|0"), feature_spec_version="t", days=("d",),
    )


def test_array_replay_buffer_gives_d3rlpys_transitions():
    import d3rlpy

    from offline_rl.replay import ArrayReplayBuffer

    data = multi_step_transitions()
    reference = d3rlpy.dataset.MDPDataset(observations=data.observations, actions=data.actions.reshape(-1, 1),
                                          rewards=data.rewards.reshape(-1, 1), terminals=data.terminals,
                                          action_space=d3rlpy.ActionSpace.DISCRETE, action_size=5)
    assert reference.transition_count == len(data)
    rows = np.arange(len(data))
    ours = ArrayReplayBuffer(data).batch(rows)
    theirs = d3rlpy.dataset.TransitionMiniBatch.from_transitions(
        [reference.transition_picker(*reference.buffer[int(i)]) for i in rows])
    for name in ("observations", "actions", "rewards", "next_observations", "next_actions", "terminals", "intervals"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name), err_msg=name)


def test_array_replay_buffer_refuses_episodes_without_a_terminal_end():
    from offline_rl.replay import ArrayReplayBuffer

    data = multi_step_transitions()
    data.terminals[-1] = 0.0
    with pytest.raises(HintrlError, match="terminal flag"):
        ArrayReplayBuffer(data)


def state_dependent_logs(n_episodes=3000, seed=3):
    """One-step episodes logged by a policy that depends on the state: females get type 1 with
    probability 0.7 (else 2 or 3 alike), males uniformly over {1, 2, 3}."""
    data = make_transitions(n_episodes, seed)
    rng = np.random.default_rng(seed + 1)  # not make_transitions' stream, whose draws set the states
    female = data.states[:, 0] > 0.5
    masks = np.tile(np.array([0, 1, 1, 1], dtype=np.float32), (n_episodes, 1))
    probs = np.where(female[:, None], [0.0, 0.7, 0.15, 0.15], [0.0, 1 / 3, 1 / 3, 1 / 3])
    actions = np.array([rng.choice(4, p=p) for p in probs])
    clicks = (rng.random(n_episodes) < np.where(actions == 1, 0.6, 0.1)).astype(np.float32)
    return dataclasses.replace(data, masks=masks, actions=actions.astype(np.int64),
                               propensities=probs[np.arange(n_episodes), actions], rewards=clicks)


def test_estimated_propensities_recover_a_state_dependent_logging_policy():
    from offline_rl.baselines import estimated_propensities

    data = state_dependent_logs()
    estimated = estimated_propensities(data, n_steps=800, floor=0.01, seed=0)
    assert np.abs(estimated - data.propensities).mean() < 0.04


def test_evaluation_uses_estimated_propensities_or_refuses_missing_ones():
    from hintrl.config import OPEConfig
    from offline_rl.evaluate import with_behavior_propensities
    from offline_rl.ope import ESTIMATORS, Episodes, OPEInputError

    data = state_dependent_logs()
    unlogged = dataclasses.replace(data, propensities=np.full(len(data), np.nan))
    with pytest.raises(OPEInputError, match=r"3000 of 3000 held-out steps have no logged propensity.*ope.behavior_propensity=estimated"):
        with_behavior_propensities(unlogged, OPEConfig())
    estimated = with_behavior_propensities(unlogged, OPEConfig(behavior_propensity="estimated", propensity_bc_steps=800))
    # The value of "always type 1" by WIS: with estimated propensities as with the logged ones.
    target = (data.actions == 1).astype(float)
    def wis(d):
        ep = Episodes.from_steps(d.episode_ids, d.steps, d.rewards, d.propensities, target)
        return ESTIMATORS["wis"](1.0).estimate(ep, 10).value
    assert wis(data) == pytest.approx(0.6, abs=0.04)
    assert wis(estimated) == pytest.approx(wis(data), abs=0.02)


def test_behavior_propensity_setting_is_checked():
    from hintrl.config import OPEConfig

    with pytest.raises(ValueError, match="ope.behavior_propensity must be 'logged' or 'estimated'"):
        OPEConfig(behavior_propensity="guessed")


def as_candidate_ids(data, catalog=None):
    """The same logs in the ids layout (candidate ids padded with -1), in a catalog of `catalog`
    hint types (default: the mask's width)."""
    from offline_rl.dataset import mask_to_ids

    return dataclasses.replace(data, masks=None, candidate_ids=mask_to_ids(data.masks).astype(np.int32),
                               action_count=catalog or data.masks.shape[1])


def test_thompson_and_behaviour_cloning_answer_for_candidate_lists_of_any_catalog():
    from offline_rl.baselines import fit_bc, fit_thompson
    from offline_rl.policies import candidate_probabilities

    data = make_transitions(1500)
    large = as_candidate_ids(data, catalog=20_000)
    rows = slice(0, 200)
    candidates = large.padded_candidates(rows)
    valid = candidates >= 0
    # Thompson: the same posteriors and draws, so the same answer whatever the catalog's size.
    np.testing.assert_array_equal(
        candidate_probabilities(fit_thompson(large, prior=(1.0, 1.0)), large.states[rows], candidates, 20_000),
        candidate_probabilities(fit_thompson(data, prior=(1.0, 1.0)), data.states[rows], candidates, 4))
    # Behaviour cloning over 20,000 outputs recovers the logs' uniform choice among 3 candidates.
    bc = candidate_probabilities(fit_bc(large, n_steps=600, learning_rate=3e-3, hidden_units=(16,)),
                                 large.states[rows], candidates, 20_000)
    assert (bc[~valid] == 0).all()
    np.testing.assert_allclose(bc.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(bc[valid], 1 / 3, atol=0.08)


def test_estimated_propensities_work_on_candidate_lists():
    from offline_rl.baselines import estimated_propensities

    data = state_dependent_logs()
    on_lists = estimated_propensities(as_candidate_ids(data, catalog=5_000), n_steps=800, floor=0.01, seed=0)
    assert np.abs(on_lists - data.propensities).mean() < 0.04


def test_thompson_per_query_shrinks_each_query_towards_its_types_pooled_rate():
    from offline_rl.baselines import fit_thompson
    from offline_rl.policies import candidate_probabilities

    data = make_transitions(2000)
    queries = np.where(np.arange(len(data)) % 2 == 0, "q0001", "q0002")
    # Query q0002's users click type 2, q0001's type 1 (as everywhere in make_transitions).
    clicks = np.where(queries == "q0002", data.actions == 2, data.actions == 1).astype(np.float64)
    data = dataclasses.replace(data, queries=queries, components={"hint_click": clicks})
    policy = fit_thompson(data, per="query", prior_strength=10.0)
    shows = np.bincount(data.actions[queries == "q0001"], minlength=4)
    hits = np.bincount(data.actions[queries == "q0001"], weights=clicks[queries == "q0001"], minlength=4)
    pooled = (np.bincount(data.actions, weights=clicks, minlength=4) + 1) / (np.bincount(data.actions, minlength=4) + 2)
    row = policy.query_rows["q0001"]
    np.testing.assert_allclose(policy.alpha[row], hits + 10 * pooled)
    np.testing.assert_allclose(policy.beta[row], shows - hits + 10 * (1 - pooled))
    np.testing.assert_allclose(policy.alpha[-1], 10 * pooled)  # a query never logged: the prior itself
    states, candidates = data.states[:3], np.array([[0, 1, 2], [1, 2, 3], [1, 2, -1]])
    pi = candidate_probabilities(policy, states, candidates, 4, queries=np.array(["q0001", "q0002", "q9999"]))
    assert pi[0].argmax() == 1 and pi[1].argmax() == 1  # type 2 in q0002: slot 1 of [1, 2, 3]
    np.testing.assert_allclose(pi.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="is per query"):
        candidate_probabilities(policy, states, candidates, 4)
    with pytest.raises(ValueError, match="with_queries"):
        fit_thompson(dataclasses.replace(data, queries=None), per="query")


def test_behaviour_cloning_fits_the_same_model_in_either_layout():
    from offline_rl.baselines import fit_bc
    from offline_rl.policies import candidate_probabilities

    data = make_transitions(1500)
    lists = as_candidate_ids(data)
    candidates = lists.padded_candidates(slice(0, 100))
    # The same catalog, seed and batches: the dense mask and the candidate ids must give one
    # objective (the candidates' softmax and the penalty on their raw logits), so one model up to
    # float summation order (measured 0.003); penalising normalised logits instead moved it by 0.077.
    from_mask = candidate_probabilities(fit_bc(data, n_steps=300, hidden_units=(16,)), data.states[:100], candidates, 4)
    from_ids = candidate_probabilities(fit_bc(lists, n_steps=300, hidden_units=(16,)), lists.states[:100], candidates, 4)
    np.testing.assert_allclose(from_mask, from_ids, atol=0.02)


@pytest.mark.parametrize("algo", ["cql", "dqn"])
def test_training_is_reproducible_for_a_seed_and_changes_with_it(algo, tmp_path):
    """The staged policy (Q-network, anchor, stratified batches) is a function of the data, the
    settings and `train.seed`: the same seed gives the same served probabilities to the bit."""
    from hintrl.config import TrainConfig
    from offline_rl.train import load_policy, train_policy

    data = make_transitions(300)
    cfg = TrainConfig(n_steps=60, n_steps_per_epoch=30, batch_size=32, hidden_units=(16,),
                      behavior_anchor_steps=30, stratum_mix={"F|*|*": 0.7}, seed=5)
    obs = data.observation_rows(50)

    def served(run, seed):
        train_policy(algo, data, dataclasses.replace(cfg, seed=seed), tmp_path / run, progress=lambda _: None)
        policy, _ = load_policy(tmp_path / run)
        return policy.action_probabilities(obs)

    first, again, other = served("a", 5), served("b", 5), served("c", 6)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-4
    assert (first[data.masks[:50] == 0] == 0).all()
