"""The action-embedding Q-network (large catalogs): candidate-id observations, and the same three
mask guarantees as the masked network — an invalid action never has probability > 0 at serving,
never wins a Q-learning target's max, and never enters DiscreteCQL's logsumexp."""

import numpy as np
import pytest
import torch

from offline_rl.dataset import Transitions, ids_to_mask, mask_to_ids
from offline_rl.masked_q import INVALID_Q

STATE_DIM, N_ACTIONS, MAX_CANDIDATES = 3, 5000, 6


def _candidate_rows(rng, n, pool):
    """Ids from `pool` padded with -1: 2..6 distinct candidates per row."""
    ids = np.full((n, MAX_CANDIDATES), -1, dtype=np.int64)
    for row in range(n):
        k = rng.integers(2, MAX_CANDIDATES + 1)
        ids[row, :k] = rng.choice(pool, size=k, replace=False)
    return ids


def _ids_transitions(rng, n_episodes=100, steps=4, reward_of=None, pool=np.arange(1, N_ACTIONS)):
    n = n_episodes * steps
    states = rng.normal(size=(n, STATE_DIM)).astype(np.float32)
    ids = _candidate_rows(rng, n, pool)
    counts = (ids >= 0).sum(axis=1)
    actions = ids[np.arange(n), (rng.random(n) * counts).astype(np.int64)]
    # Id 0 is never a candidate, and every reward would make it look best if it ever leaked.
    rewards = (rng.random(n) if reward_of is None else reward_of(states, actions)).astype(np.float32)
    return Transitions(
        episode_ids=np.repeat(np.arange(n_episodes), steps).astype(np.int32), steps=np.tile(np.arange(steps), n_episodes),
        states=states, masks=None, candidate_ids=ids.astype(np.int16), action_count=N_ACTIONS, actions=actions,
        propensities=1.0 / counts, rewards=rewards, terminals=(np.arange(n) % steps == steps - 1).astype(np.float32),
        buckets=np.full(n, "explore"), strata=np.full(n, "U|unknown|0"), feature_spec_version="test",
        days=("2026-11-01",),
    )


def _embedding_algo(kind, state_dim=STATE_DIM, n_actions=N_ACTIONS, width=MAX_CANDIDATES, **kwargs):
    import d3rlpy

    from offline_rl.embedding_q import CandidateEmbeddingQFunctionFactory
    from offline_rl.masked_q import MaskedStateEncoderFactory

    common = dict(encoder_factory=MaskedStateEncoderFactory(state_dim=state_dim, hidden_units=[16]),
                  q_func_factory=CandidateEmbeddingQFunctionFactory(state_dim=state_dim, embedding_dim=8), batch_size=32)
    config = d3rlpy.algos.DiscreteCQLConfig(alpha=1.0, **common, **kwargs) if kind == "cql" else d3rlpy.algos.DoubleDQNConfig(**common, **kwargs)
    from offline_rl.embedding_q import use_candidate_updates

    algo = config.create(device="cpu:0")
    algo.create_impl((state_dim + width,), n_actions)
    use_candidate_updates(algo)
    return algo


@pytest.fixture(scope="module")
def trained():
    import d3rlpy

    from offline_rl.replay import ArrayReplayBuffer

    torch.set_num_threads(1)
    d3rlpy.seed(0)
    data = _ids_transitions(np.random.default_rng(0))
    algos = {}
    for kind in ("cql", "dqn"):
        algo = _embedding_algo(kind)
        algo.fit(ArrayReplayBuffer(data), n_steps=100, n_steps_per_epoch=100, show_progress=False,
                 logger_adapter=d3rlpy.logging.NoopAdapterFactory())
        algos[kind] = algo
    return algos, data


def test_the_ids_layout_keeps_no_array_as_wide_as_the_catalog():
    data = _ids_transitions(np.random.default_rng(1))
    assert data.layout == "ids" and data.n_actions == N_ACTIONS
    assert data.observation_dim == STATE_DIM + MAX_CANDIDATES
    obs = data.observation_rows(np.array([0, 5]))
    np.testing.assert_array_equal(obs[:, STATE_DIM:], data.candidate_ids[[0, 5]])
    assert data.nbytes() < 200 * len(data)  # a uint8 mask alone would take N_ACTIONS = 5000 B a row
    assert data.logged_in_candidates().all()
    with pytest.raises(ValueError, match="exactly one"):
        Transitions(**{**data.__dict__, "masks": np.zeros((len(data), 3))})


def test_mask_to_ids_pads_with_minus_one():
    np.testing.assert_array_equal(mask_to_ids(np.array([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])),
                                  [[1, 2], [0, -1], [-1, -1]])


def test_ids_to_mask_undoes_mask_to_ids():
    masks = np.array([[0, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(ids_to_mask(mask_to_ids(masks), 4, np.uint8), masks)
    assert ids_to_mask(np.array([[3, -1]]), 4).dtype == np.float32


@pytest.mark.parametrize("name", ["cql", "dqn"])
def test_non_candidates_get_invalid_q_and_never_win(trained, name):
    algos, data = trained
    algo = algos[name]
    obs = data.observations
    q = algo.impl.q_function[0](torch.as_tensor(obs)).q_value.detach().numpy()
    assert q.shape == (len(data), N_ACTIONS)
    ids = data.candidate_ids.astype(np.int64)
    valid = ids >= 0
    is_candidate = np.zeros(q.shape, dtype=bool)
    is_candidate[np.nonzero(valid)[0], ids[valid]] = True
    assert (q[~is_candidate] == INVALID_Q).all() and (q[is_candidate] > INVALID_Q / 2).all()
    chosen = algo.predict(obs)
    assert is_candidate[np.arange(len(obs)), chosen].all() and (chosen != 0).all()


@pytest.mark.parametrize("name", ["cql", "dqn"])
def test_targets_only_use_candidates(trained, name):
    from d3rlpy.torch_utility import TorchMiniBatch

    algos, data = trained
    obs = data.observations
    n = len(obs)
    batch = TorchMiniBatch(
        observations=torch.as_tensor(obs), actions=torch.zeros((n, 1)), rewards=torch.zeros((n, 1)),
        next_observations=torch.as_tensor(np.roll(obs, -1, axis=0)), next_actions=torch.zeros((n, 1)),
        returns_to_go=torch.zeros((n, 1)), terminals=torch.zeros((n, 1)), intervals=torch.ones((n, 1)), device="cpu:0",
    )
    target = algos[name].impl.compute_target(batch).numpy().ravel()
    assert (target > INVALID_Q / 2).all()


def test_cql_logsumexp_ignores_non_candidates(trained):
    algos, data = trained
    impl = algos["cql"].impl
    x = torch.as_tensor(data.observations)
    actions = torch.as_tensor(data.actions).long()
    loss = impl._compute_conservative_loss(x, actions).item()
    q_candidates, _ = impl.q_function[0].candidate_q(x)
    valid = torch.as_tensor(data.candidate_ids >= 0)
    lse = torch.logsumexp(torch.where(valid, q_candidates, torch.full_like(q_candidates, -torch.inf)), dim=1)
    data_q = impl.q_function[0](x).q_value.gather(1, actions.view(-1, 1)).squeeze(1)
    assert loss == pytest.approx((lse - data_q).mean().item(), rel=1e-5)


@pytest.mark.parametrize("name", ["cql", "dqn"])
def test_candidate_updates_equal_d3rlpys_dense_computations(trained, name):
    from d3rlpy.models.torch import DiscreteMeanQFunctionForwarder
    from d3rlpy.models.torch.q_functions.utility import pick_value_by_action

    algos, data = trained
    impl = algos[name].impl
    q_func = impl.q_function[0]
    dense_forwarder = DiscreteMeanQFunctionForwarder(q_func, N_ACTIONS)
    x = torch.as_tensor(data.observations)
    actions = torch.as_tensor(data.actions).view(-1, 1)
    rewards, terminals = torch.as_tensor(data.rewards).view(-1, 1), torch.as_tensor(data.terminals).view(-1, 1)
    target = torch.rand(len(data), 1)
    with torch.no_grad():
        dense_q = q_func(x).q_value
        assert torch.equal(impl.inner_predict_best_action(x), dense_q.argmax(dim=1))
        forwarder = impl._q_func_forwarder._forwarders[0]
        assert forwarder.compute_error(x, actions, rewards, target, terminals, 0.9).item() == pytest.approx(
            dense_forwarder.compute_error(x, actions, rewards, target, terminals, 0.9).item(), rel=1e-6)
        torch.testing.assert_close(forwarder.compute_target(x, actions.view(-1)),
                                   pick_value_by_action(dense_q, actions.view(-1), keepdim=True))
        # An action outside the candidates reads INVALID_Q, as the dense output does.
        assert (forwarder.compute_target(x, torch.zeros(len(data), dtype=torch.long)) == INVALID_Q).all()


def test_padding_slots_get_no_gradient_and_do_not_overwrite_candidates():
    algo = _embedding_algo("dqn")
    q_func = algo.impl.q_function[0]
    x = torch.tensor([[0.1, 0.2, 0.3, 7, 9, -1, -1, -1, -1]], dtype=torch.float32)
    q = q_func(x).q_value
    q[0, 7].backward()
    grad = q_func._embedding.weight.grad
    assert grad[N_ACTIONS].abs().sum() == 0 and grad[7].abs().sum() > 0 and grad[9].abs().sum() == 0
    scores, _ = q_func.candidate_q(x)
    assert q[0, 7] == scores[0, 0] and q[0, 9] == scores[0, 1]


def test_served_probabilities_live_on_the_candidates_only(trained):
    from offline_rl.policies import QSoftmaxPolicy, candidate_probabilities

    algos, data = trained
    policy = QSoftmaxPolicy(algos["cql"], STATE_DIM, 0.5, "cql")
    assert policy.layout == "ids"
    ids = data.candidate_ids[:50].astype(np.int64)
    probs = candidate_probabilities(policy, data.states[:50], ids, N_ACTIONS)
    assert probs.shape == ids.shape and (probs[ids < 0] == 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    dense = policy.action_probabilities(data.observation_rows(slice(0, 50)))
    assert dense.shape == (50, N_ACTIONS) and dense[:, 0].max() == 0
    np.testing.assert_allclose(dense[np.arange(50)[:, None], np.maximum(ids, 0)] * (ids >= 0), probs, atol=1e-12)
    # The same candidates in another order, with more padding: the same probabilities per id.
    shuffled = np.concatenate([ids[:, ::-1], np.full((50, 3), -1)], axis=1)
    again = candidate_probabilities(policy, data.states[:50], shuffled, N_ACTIONS)
    np.testing.assert_allclose(again[:, :MAX_CANDIDATES][:, ::-1], probs, atol=1e-12)


def test_torchscript_export_gives_the_served_candidate_probabilities(trained, tmp_path):
    from offline_rl.policies import QSoftmaxPolicy
    from offline_rl.serving import export_torchscript

    algos, data = trained
    policy = QSoftmaxPolicy(algos["dqn"], STATE_DIM, 0.3, "dqn")
    path = export_torchscript(policy, data.observation_rows(4), tmp_path / "policy.pt")
    scripted = torch.jit.load(str(path))
    probs = scripted(torch.as_tensor(data.observation_rows(64))).numpy()
    np.testing.assert_allclose(probs, policy.candidate_probabilities(data.states[:64], data.candidate_ids[:64]), atol=1e-6)


def test_embedding_network_learns_which_candidates_pay():
    import dataclasses

    from hintrl.config import TrainConfig
    from offline_rl.policies import candidate_probabilities
    from offline_rl.train import load_policy, train_policy

    # One-step episodes over 200 of the 5,000 ids; a hint pays when the parity of id // 25 matches
    # the sign of the first state feature.
    pool = np.arange(1, N_ACTIONS, 25)

    def pays(states, ids):
        return (ids >= 0) & ((ids // 25 % 2 == 0) == (states[:, :1] > 0))

    def reward_of(states, actions):
        return pays(states, actions[:, None])[:, 0].astype(np.float32)

    rng = np.random.default_rng(3)
    data = _ids_transitions(rng, n_episodes=3000, steps=1, reward_of=reward_of, pool=pool)
    cfg = dataclasses.replace(TrainConfig(), n_steps=600, n_steps_per_epoch=300, batch_size=64, learning_rate=3e-3,
                              embedding_dim=8, hidden_units=(16,), temperature=0.1, torch_threads=1)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        trained = train_policy("dqn", data, cfg, Path(folder), progress=lambda _: None)
        assert trained.layout == "ids" and trained.n_actions == N_ACTIONS
        policy, meta = load_policy(Path(folder))
    test = _ids_transitions(np.random.default_rng(4), n_episodes=500, steps=1, reward_of=reward_of, pool=pool)
    probs = candidate_probabilities(policy, test.states, test.candidate_ids, N_ACTIONS)
    paying = pays(test.states, test.candidate_ids.astype(np.int64))
    uniform = (paying.sum(axis=1) / (test.candidate_ids >= 0).sum(axis=1)).mean()
    learned = (probs * paying).sum(axis=1).mean()
    assert learned > uniform + 0.15, (learned, uniform)


def test_fqe_in_the_ids_layout_targets_the_stochastic_policys_expected_value():
    from hintrl.config import OPEConfig
    from offline_rl.fqe import fit_fqe
    from offline_rl.policies import QSoftmaxPolicy, candidate_probabilities

    # Two-step episodes; step 1 pays 1 for hint 11 and 0 for hint 22 (hint 0 is never a candidate).
    n_episodes, state_dim = 200, 2
    rng = np.random.default_rng(0)
    n = 2 * n_episodes
    actions = np.where(rng.random(n) < 0.5, 11, 22)
    states = np.tile(np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32), (n_episodes, 1))
    rewards = np.where(np.arange(n) % 2 == 1, (actions == 11).astype(np.float32), 0.0).astype(np.float32)
    data = Transitions(
        episode_ids=np.repeat(np.arange(n_episodes), 2).astype(np.int32), steps=np.tile([0, 1], n_episodes),
        states=states, masks=None, candidate_ids=np.tile(np.array([[22, 11, -1]], dtype=np.int16), (n, 1)),
        action_count=50, actions=actions, propensities=np.full(n, 0.5), rewards=rewards,
        terminals=np.tile([0.0, 1.0], n_episodes).astype(np.float32), buckets=np.full(n, "explore"),
        strata=np.full(n, "U|unknown|0"), feature_spec_version="test", days=("2026-11-01",),
    )
    policy = QSoftmaxPolicy(_embedding_algo("dqn", state_dim=state_dim, n_actions=50, width=3), state_dim, 5.0, "near-uniform")
    pi = candidate_probabilities(policy, states[1:2], data.candidate_ids[1:2], 50)[0]
    assert 0.3 < pi[1] < 0.7 and pi[2] == 0.0
    fitted = fit_fqe(policy, data, OPEConfig(gamma=1.0, fqe_steps=1500, fqe_learning_rate=3e-3, fqe_batch_size=64,
                                             fqe_target_update_interval=50, fqe_hidden_units=(16,), fqe_embedding_dim=8))
    np.testing.assert_allclose(fitted.q_hat[1::2], rewards[1::2], atol=0.1)
    np.testing.assert_allclose(fitted.q_hat[0::2], pi[1], atol=0.1)
    np.testing.assert_allclose(fitted.v_hat[1::2], pi[1], atol=0.1)
