"""Masks: an invalid action never has probability > 0 at serving, never wins a Q-learning target's
max, and never enters DiscreteCQL's logsumexp."""

import numpy as np
import pytest
import torch

from offline_rl.masked_q import INVALID_Q
from offline_rl.policies import UniformPolicy, masked_softmax

STATE_DIM, N_ACTIONS = 3, 4


def test_masked_softmax_is_zero_off_the_mask_and_sums_to_one():
    q = np.array([[5.0, 1.0, 0.0, 9.0], [0.0, 0.0, 0.0, 0.0]])
    mask = np.array([[1, 1, 1, 0], [0, 1, 0, 1]])
    p = masked_softmax(q, mask, temperature=0.5)
    assert p[0, 3] == 0.0 and p[1, 0] == 0.0 and p[1, 2] == 0.0
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[0, :3], np.exp([10, 2, 0]) / np.exp([10, 2, 0]).sum())
    np.testing.assert_allclose(p[1], [0, 0.5, 0, 0.5])


def test_masked_softmax_refuses_greedy_and_empty_masks():
    with pytest.raises(ValueError, match="greedy"):
        masked_softmax(np.zeros((1, 2)), np.ones((1, 2)), 0.0)
    with pytest.raises(ValueError, match="candidate"):
        masked_softmax(np.zeros((1, 2)), np.zeros((1, 2)), 1.0)


def test_uniform_policy():
    obs = np.array([[0.1, 0.2, 0.3, 1, 0, 1, 1]], dtype=np.float32)
    np.testing.assert_allclose(UniformPolicy(STATE_DIM).action_probabilities(obs), [[1 / 3, 0, 1 / 3, 1 / 3]])
    lists = UniformPolicy(STATE_DIM).candidate_probabilities(obs[:, :STATE_DIM], np.array([[17_000, 4, -1, -1]]))
    np.testing.assert_allclose(lists, [[0.5, 0.5, 0, 0]])


def _tiny_dataset(rng):
    import d3rlpy

    n = 200
    states = rng.normal(size=(n, STATE_DIM)).astype(np.float32)
    masks = (rng.random((n, N_ACTIONS)) < 0.5).astype(np.float32)
    masks[:, 0] = 0.0  # action 0 is never a candidate...
    masks[np.arange(n), 1 + rng.integers(0, N_ACTIONS - 1, n)] = 1.0
    actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
    # ...but the reward would make it look best if a mask ever leaked.
    rewards = rng.random(n).astype(np.float32)
    terminals = (np.arange(n) % 4 == 3).astype(np.float32)
    obs = np.concatenate([states, masks], axis=1)
    return d3rlpy.dataset.MDPDataset(obs, actions.reshape(-1, 1), rewards.reshape(-1, 1), terminals,
                                     action_space=d3rlpy.ActionSpace.DISCRETE, action_size=N_ACTIONS), obs


@pytest.fixture(scope="module")
def trained():
    import d3rlpy

    from offline_rl.masked_q import (
        MaskedMeanQFunctionFactory,
        MaskedStateEncoderFactory,
    )

    d3rlpy.seed(0)
    dataset, obs = _tiny_dataset(np.random.default_rng(0))
    common = dict(encoder_factory=MaskedStateEncoderFactory(state_dim=STATE_DIM, hidden_units=[16]),
                  q_func_factory=MaskedMeanQFunctionFactory(state_dim=STATE_DIM), batch_size=32)
    algos = {"cql": d3rlpy.algos.DiscreteCQLConfig(alpha=1.0, **common).create(),
             "dqn": d3rlpy.algos.DoubleDQNConfig(**common).create()}
    for algo in algos.values():
        algo.fit(dataset, n_steps=100, n_steps_per_epoch=100, show_progress=False,
                 logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    return algos, obs


@pytest.mark.parametrize("name", ["cql", "dqn"])
def test_invalid_actions_get_invalid_q_and_never_win(trained, name):
    algos, obs = trained
    algo = algos[name]
    x = torch.as_tensor(obs)
    q = algo.impl.q_function[0](x).q_value.detach().numpy()
    masks = obs[:, STATE_DIM:] > 0.5
    assert (q[~masks] == INVALID_Q).all() and (q[masks] > INVALID_Q / 2).all()
    assert masks[np.arange(len(obs)), algo.predict(obs)].all()


@pytest.mark.parametrize("name", ["cql", "dqn"])
def test_targets_only_use_candidates(trained, name):
    from d3rlpy.torch_utility import TorchMiniBatch

    algos, obs = trained
    impl = algos[name].impl
    n = len(obs)
    next_obs = torch.as_tensor(np.roll(obs, -1, axis=0))
    batch = TorchMiniBatch(
        observations=torch.as_tensor(obs), actions=torch.zeros((n, 1)), rewards=torch.zeros((n, 1)),
        next_observations=next_obs, next_actions=torch.zeros((n, 1)), returns_to_go=torch.zeros((n, 1)),
        terminals=torch.zeros((n, 1)), intervals=torch.ones((n, 1)), device="cpu:0",
    )
    target = impl.compute_target(batch).numpy().ravel()
    # A target read at a masked action would be INVALID_Q: every max landed on a candidate.
    assert (target > INVALID_Q / 2).all()


def test_cql_logsumexp_ignores_invalid_actions(trained):
    algos, obs = trained
    impl = algos["cql"].impl
    x = torch.as_tensor(obs)
    actions = torch.as_tensor(algos["cql"].predict(obs)).long()
    loss = impl._compute_conservative_loss(x, actions).item()
    q = impl.q_function[0](x).q_value.detach()
    mask = x[:, STATE_DIM:] > 0.5
    valid_lse = torch.logsumexp(torch.where(mask, q, torch.full_like(q, -torch.inf)), dim=1)
    data_q = q.gather(1, actions.view(-1, 1)).squeeze(1)
    assert loss == pytest.approx((valid_lse - data_q).mean().item(), rel=1e-5)


def test_torchscript_export_gives_the_served_probabilities(tmp_path):
    import torch

    from offline_rl.serving import export_torchscript

    state_dim, n_actions = 5, 4
    policy = _untrained_masked_dqn(state_dim, n_actions, 0.5, "dqn")
    rng = np.random.default_rng(0)
    masks = rng.random((32, n_actions)) < 0.5
    masks[:, 0] = True
    obs = np.concatenate([rng.normal(size=(32, state_dim)), masks], axis=1).astype(np.float32)
    path = export_torchscript(policy, obs[:4], tmp_path / "policy.pt")
    scripted = torch.jit.load(str(path))
    probs = scripted(torch.as_tensor(obs)).numpy()
    np.testing.assert_allclose(probs, policy.action_probabilities(obs), atol=1e-6)
    assert (probs[~masks] == 0).all()


def _two_step_episodes(n_episodes, seed=0):
    """Episodes of two steps: step 0 (state [1, 0]) pays 0, step 1 (state [0, 1]) pays 1 for action
    0 and 0 for action 1, both logged uniformly. Action 2 is never a candidate."""
    from offline_rl.dataset import Transitions

    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 2, size=2 * n_episodes)
    states = np.tile(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), (n_episodes, 1))
    masks = np.tile(np.array([1.0, 1.0, 0.0], dtype=np.float32), (2 * n_episodes, 1))
    rewards = np.where(np.arange(2 * n_episodes) % 2 == 1, (actions == 0).astype(np.float32), 0.0).astype(np.float32)
    data = Transitions(
        episode_ids=np.repeat(np.arange(n_episodes), 2).astype(str), steps=np.tile([0, 1], n_episodes),
        states=states, masks=masks, actions=actions, propensities=np.full(2 * n_episodes, 0.5), rewards=rewards,
        terminals=np.tile([0.0, 1.0], n_episodes).astype(np.float32), buckets=np.full(2 * n_episodes, "explore"),
        strata=np.full(2 * n_episodes, "U|unknown|0"), feature_spec_version="test", days=("2026-11-01",),
    )
    return data, rewards


def test_fqe_targets_the_stochastic_policys_expected_value_not_the_greedy_one():
    from hintrl.config import OPEConfig
    from offline_rl.fqe import fit_fqe

    state_dim, n_actions = 2, 3
    data, rewards = _two_step_episodes(200)
    policy = _untrained_masked_dqn(state_dim, n_actions, 5.0, "near-uniform")
    pi = policy.action_probabilities(data.observations[1:2])[0]
    assert 0.3 < pi[0] < 0.7 and pi[2] == 0.0
    fitted = fit_fqe(policy, data, OPEConfig(gamma=1.0, fqe_steps=1500, fqe_learning_rate=3e-3, fqe_batch_size=64,
                                             fqe_target_update_interval=50, fqe_hidden_units=(16,)))
    # step 1: Q = the reward of the action; step 0: Q = E_pi[reward at step 1] = pi(0), not max = 1
    np.testing.assert_allclose(fitted.q_hat[1::2], rewards[1::2], atol=0.1)
    np.testing.assert_allclose(fitted.q_hat[0::2], pi[0], atol=0.1)
    np.testing.assert_allclose(fitted.v_hat[1::2], pi[0], atol=0.1)


def test_take_episodes_copies_whole_episodes_in_the_asked_order():
    data, _ = _two_step_episodes(5)
    data.rewards[:] = np.arange(10)
    sample = data.take_episodes(np.array([3, 0, 3]))
    np.testing.assert_array_equal(sample.rewards, [6, 7, 0, 1, 6, 7])
    np.testing.assert_array_equal(sample.episode_ids, [0, 0, 1, 1, 2, 2])  # the repeat is an episode of its own
    np.testing.assert_array_equal(sample.steps, [0, 1] * 3)
    np.testing.assert_array_equal(sample.masks, data.masks[[6, 7, 0, 1, 6, 7]])
    assert sample.n_episodes == 3 and sample.terminals.sum() == 3


def test_concat_transitions_keeps_each_parts_episodes_apart():
    import dataclasses

    from hintrl.errors import DataContractError
    from offline_rl.dataset import concat_transitions

    logs, _ = _two_step_episodes(3)
    redrawn, _ = _two_step_episodes(2, seed=1)
    # The same episode ids in both parts (as a redrawn day has) must still be different episodes.
    redrawn = dataclasses.replace(redrawn, days=("2026-11-02",), components={})
    logs = dataclasses.replace(logs, components={})
    joined = concat_transitions([logs, redrawn])
    assert len(joined) == 10 and joined.n_episodes == 5
    np.testing.assert_array_equal(joined.episode_ids, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    np.testing.assert_array_equal(joined.actions, np.r_[logs.actions, redrawn.actions])
    np.testing.assert_array_equal(joined.masks, np.r_[logs.masks, redrawn.masks])
    assert joined.days == ("2026-11-01", "2026-11-02") and joined.terminals.sum() == 5
    assert list(joined.buckets) == ["explore"] * 10 and joined.states.dtype == np.float32
    with pytest.raises(DataContractError, match="feature specs"):
        concat_transitions([logs, dataclasses.replace(redrawn, feature_spec_version="other")])
    with pytest.raises(DataContractError, match="reward components"):
        concat_transitions([logs, dataclasses.replace(redrawn, components={"hint_click": np.zeros(4)})])


def test_refit_intervals_carry_the_fits_own_error():
    import dataclasses

    from hintrl.config import OPEConfig
    from offline_rl.evaluate import evaluate_policy

    data, _ = _two_step_episodes(300, seed=1)
    policy = _untrained_masked_dqn(2, 3, 5.0, "near-uniform")
    cfg = OPEConfig(gamma=1.0, n_bootstrap=200, fqe_steps=300, fqe_learning_rate=3e-3, fqe_batch_size=64,
                    fqe_target_update_interval=50, fqe_hidden_units=(16,), fqe_refits=0)
    fixed = evaluate_policy("p", policy, data, cfg).estimates
    refitted = evaluate_policy("p", policy, data, dataclasses.replace(cfg, fqe_refits=4))
    assert refitted.policy == "p"  # the evaluation keeps the policy's name, not an estimator's
    refit = refitted.estimates
    for name in ("dm", "dr", "wdr"):
        assert refit[name].value == pytest.approx(fixed[name].value)  # the point estimate is the full-data fit's
        assert refit[name].low < refit[name].value < refit[name].high
        # It holds the interval with the fit held fixed (the same bootstrap replicates).
        assert refit[name].low <= fixed[name].low and fixed[name].high <= refit[name].high
    # Every episode starts in the same state: with the fit held fixed DM has no spread at all, so
    # its interval is the refits' alone, symmetric about the estimate.
    assert fixed["dm"].high - fixed["dm"].low < 1e-6 < refit["dm"].high - refit["dm"].low
    assert refit["dm"].value - refit["dm"].low == pytest.approx(refit["dm"].high - refit["dm"].value)
    assert refit["wpdis"] == fixed["wpdis"]  # the importance-sampling estimators are untouched
    with pytest.raises(ValueError, match="fqe_refits"):
        OPEConfig(fqe_refits=1)


def test_refit_interval_is_student_t_on_the_refits_spread():
    from offline_rl.evaluate import refit_interval

    # Refits 1, 2, 3, 4: sample standard deviation sqrt(5/3); t(0.975, 3 df) = 3.182446.
    low, high = refit_interval(10.0, [1.0, 2.0, 3.0, 4.0], 0.95)
    half = 3.182446 * (5.0 / 3.0) ** 0.5
    assert low == pytest.approx(10.0 - half, abs=1e-5) and high == pytest.approx(10.0 + half, abs=1e-5)
    # Five refits at 90%: t(0.95, 4 df) = 2.131847, wider than the normal 1.645 a few fits cannot support.
    low, high = refit_interval(0.0, [0.0, 0.0, 0.0, 0.0, 1.0], 0.90)
    assert high == pytest.approx(2.131847 * 0.2 ** 0.5, abs=1e-5) and low == pytest.approx(-high)
    # Widened to hold the interval with the fit held fixed, on each side only where that one reaches further.
    assert refit_interval(10.0, [1.0, 2.0, 3.0, 4.0], 0.95, (2.0, 11.0)) == pytest.approx((2.0, 10.0 + half), abs=1e-5)
    assert refit_interval(10.0, [1.0, 2.0, 3.0, 4.0], 0.95, (9.0, 20.0)) == pytest.approx((10.0 - half, 20.0), abs=1e-5)
    with pytest.raises(ValueError, match="two"):
        refit_interval(0.0, [1.0], 0.95)


def _untrained_masked_dqn(state_dim, n_actions, temperature, name):
    """A freshly initialised masked double DQN served as a softmax policy."""
    import d3rlpy

    from offline_rl.masked_q import (
        MaskedMeanQFunctionFactory,
        MaskedStateEncoderFactory,
    )
    from offline_rl.policies import QSoftmaxPolicy

    algo = d3rlpy.algos.DoubleDQNConfig(
        encoder_factory=MaskedStateEncoderFactory(state_dim=state_dim, hidden_units=[8]),
        q_func_factory=MaskedMeanQFunctionFactory(state_dim=state_dim),
    ).create(device="cpu:0")
    algo.create_impl((state_dim + n_actions,), n_actions)
    return QSoftmaxPolicy(algo, state_dim, temperature, name)
