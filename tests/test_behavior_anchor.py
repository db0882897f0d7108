"""The served softmax anchored to the logs: pi(a | s) ∝ b(a | s)^w exp(Q(s, a) / T), b a behaviour-
cloning model trained and staged with the Q-network, served identically by the loaded policy and
its TorchScript export, in both candidate layouts."""

import dataclasses

import numpy as np
import pytest
import torch

from offline_rl.dataset import Transitions, mask_to_ids

N_ACTIONS = 4


class FixedBehavior:
    """A stand-in anchor with given probabilities over the dense catalog."""

    def __init__(self, probs):
        self.probs = np.asarray(probs, dtype=np.float64)

    def action_probabilities(self, observations):
        masks = np.asarray(observations)[:, -N_ACTIONS:] > 0.5
        p = np.where(masks, self.probs, 0.0)
        return p / p.sum(axis=1, keepdims=True)

    def candidate_probabilities(self, states, candidates):
        valid = candidates >= 0
        p = np.where(valid, self.probs[np.maximum(candidates, 0)], 0.0)
        return p / p.sum(axis=1, keepdims=True)


def _untrained(state_dim, temperature, anchor=None, weight=0.0):
    import d3rlpy

    from offline_rl.masked_q import (
        MaskedMeanQFunctionFactory,
        MaskedStateEncoderFactory,
    )
    from offline_rl.policies import QSoftmaxPolicy

    d3rlpy.seed(0)
    algo = d3rlpy.algos.DoubleDQNConfig(
        encoder_factory=MaskedStateEncoderFactory(state_dim=state_dim, hidden_units=[8]),
        q_func_factory=MaskedMeanQFunctionFactory(state_dim=state_dim),
    ).create(device="cpu:0")
    algo.create_impl((state_dim + N_ACTIONS,), N_ACTIONS)
    return QSoftmaxPolicy(algo, state_dim, temperature, "dqn", anchor, weight)


def test_anchored_probabilities_are_the_closed_form_and_zero_off_the_candidates():
    from offline_rl.policies import candidate_probabilities

    rng = np.random.default_rng(0)
    masks = rng.random((16, N_ACTIONS)) < 0.6
    masks[:, 1] = True
    obs = np.concatenate([rng.normal(size=(16, 2)), masks], axis=1).astype(np.float32)
    b = FixedBehavior([0.1, 0.6, 0.2, 0.1])
    for weight, temperature in ((1.0, 0.5), (0.5, 0.2)):
        policy = _untrained(2, temperature, b, weight)
        q = policy.q_values(obs)
        behavior = b.action_probabilities(obs)
        expected = np.where(masks, behavior**weight * np.exp((q - q.max(axis=1, keepdims=True)) / temperature), 0.0)
        expected /= expected.sum(axis=1, keepdims=True)
        dense = policy.action_probabilities(obs)
        np.testing.assert_allclose(dense, expected, rtol=1e-9, atol=1e-12)
        assert (dense[~masks] == 0).all()
        ids = mask_to_ids(masks)
        lists = candidate_probabilities(policy, obs[:, :2], ids, N_ACTIONS)
        np.testing.assert_allclose(lists, np.where(ids >= 0, expected[np.arange(16)[:, None], np.maximum(ids, 0)], 0.0),
                                   rtol=1e-9, atol=1e-12)
    # A weight of 0 (or no anchor) is the plain softmax; a very high temperature gives back b.
    plain = _untrained(2, 0.5)
    np.testing.assert_allclose(_untrained(2, 0.5, b, 0.0).action_probabilities(obs), plain.action_probabilities(obs))
    np.testing.assert_allclose(_untrained(2, 1e6, b, 1.0).action_probabilities(obs), b.action_probabilities(obs), atol=1e-5)


def _skewed_logs(n_episodes=1500, seed=0):
    """One-step episodes, state [1, x]; candidates {0, 1, 2} or {1, 2, 3}. The logs show type 2 80%
    of the time (the rest uniform); type 1 pays 0.6, the others 0.1."""
    rng = np.random.default_rng(seed)
    states = np.stack([np.ones(n_episodes), rng.normal(size=n_episodes)], axis=1).astype(np.float32)
    masks = np.where((rng.random(n_episodes) < 0.5)[:, None], [1, 1, 1, 0], [0, 1, 1, 1]).astype(np.float32)
    explore = rng.random(n_episodes) < 0.2
    actions = np.where(explore, [rng.choice(np.flatnonzero(m)) for m in masks], 2)
    propensities = 0.8 * (actions == 2) + 0.2 / 3
    rewards = (rng.random(n_episodes) < np.where(actions == 1, 0.6, 0.1)).astype(np.float32)
    return Transitions(
        episode_ids=np.arange(n_episodes).astype(str), steps=np.zeros(n_episodes, dtype=np.int64), states=states,
        masks=masks, actions=actions.astype(np.int64), propensities=propensities, rewards=rewards,
        terminals=np.ones(n_episodes, dtype=np.float32), buckets=np.full(n_episodes, "baseline"),
        strata=np.full(n_episodes, "F|25-34|3"), feature_spec_version="test", days=("2026-11-01",),
        components={"hint_click": rewards.astype(np.float64)},
    )


@pytest.mark.parametrize("layout", ["mask", "ids"])
def test_a_trained_anchor_is_staged_loaded_and_exported_as_served(layout, tmp_path):
    from hintrl.config import TrainConfig
    from offline_rl.policies import candidate_probabilities
    from offline_rl.serving import TORCHSCRIPT_FILE
    from offline_rl.train import BEHAVIOR_MODEL_FILE, load_policy, train_policy

    data = _skewed_logs()
    if layout == "ids":
        data = dataclasses.replace(data, masks=None, candidate_ids=mask_to_ids(data.masks).astype(np.int32),
                                   action_count=N_ACTIONS)
    cfg = TrainConfig(n_steps=400, n_steps_per_epoch=400, batch_size=64, learning_rate=3e-3, hidden_units=(16,),
                      embedding_dim=8, temperature=0.05, behavior_anchor=1.0, behavior_anchor_steps=400,
                      torch_threads=2, q_function="masked" if layout == "mask" else "embedding")
    trained = train_policy("dqn", data, cfg, tmp_path, progress=lambda _: None)
    assert trained.behavior_anchor == 1.0 and (tmp_path / BEHAVIOR_MODEL_FILE).exists()
    policy, meta = load_policy(tmp_path)
    assert meta["behavior_anchor"] == 1.0 and policy.anchor is not None

    candidates = data.padded_candidates(slice(0, 200))
    served = candidate_probabilities(policy, data.states[:200], candidates, N_ACTIONS)
    behavior = policy.anchor.candidate_probabilities(data.states[:200], candidates)
    # The anchor learned the logs: type 2 gets ~0.8 + 0.2/3.
    np.testing.assert_allclose((behavior * (candidates == 2)).sum(axis=1).mean(), 0.8 + 0.2 / 3, atol=0.05)
    scripted = torch.jit.load(str(tmp_path / TORCHSCRIPT_FILE))
    out = scripted(torch.as_tensor(data.observation_rows(slice(0, 200)))).numpy()
    if layout == "mask":
        out = np.where(candidates >= 0, out[np.arange(200)[:, None], np.maximum(candidates, 0)], 0.0)
    np.testing.assert_allclose(out, served, atol=1e-5)
    assert (served[candidates < 0] == 0).all()

    # The temperature moves the anchored policy between the logs and the greedy choice.
    def share(temperature, of):
        policy.temperature = temperature
        probs = candidate_probabilities(policy, data.states[:200], candidates, N_ACTIONS)
        return (probs * (candidates == of)).sum(axis=1).mean()

    assert share(100.0, 2) == pytest.approx((behavior * (candidates == 2)).sum(axis=1).mean(), abs=0.01)
    assert share(0.01, 1) > 0.9
    unanchored = dataclasses.replace(cfg, behavior_anchor=0.0)
    train_policy("dqn", data, unanchored, tmp_path / "plain", progress=lambda _: None)
    plain, _ = load_policy(tmp_path / "plain")
    assert plain.anchor is None and not (tmp_path / "plain" / BEHAVIOR_MODEL_FILE).exists()
    plain.temperature = 100.0  # without the anchor, a high temperature tends to uniform instead
    np.testing.assert_allclose(candidate_probabilities(plain, data.states[:200], candidates, N_ACTIONS),
                               (candidates >= 0) / (candidates >= 0).sum(axis=1, keepdims=True), atol=0.01)


def test_train_config_refuses_a_negative_anchor():
    from hintrl.config import TrainConfig

    with pytest.raises(ValueError, match="behavior_anchor"):
        TrainConfig(behavior_anchor=-1.0)
