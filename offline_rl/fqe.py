"""Fitted Q evaluation of the *stochastic* served policy.

d3rlpy's `DiscreteFQE` regresses Q(s, a) on r + gamma * Q'(s', argmax pi(s')): the value of the
greedy policy. The policy hintrl serves and evaluates is the masked softmax pi(a | s') over the
next step's candidates, so the target here is the expected value under it:

    r + gamma * sum_a pi(a | s') Q'(s', a)        (expected SARSA; pi = 0 off the candidates)

Everything else (networks, optimiser, target network, ensemble) is d3rlpy's FQE. The fitted Q gives
the direct-method estimate and the `q_hat`, `v_hat` of the doubly robust estimators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hintrl.config import OPEConfig
from offline_rl.dataset import Transitions, mask_to_ids
from offline_rl.policies import QSoftmaxPolicy, candidate_probabilities


@dataclass(frozen=True)
class FittedQ:
    q_hat: np.ndarray  # Q(s_t, a_t) at every logged step
    v_hat: np.ndarray  # sum_a pi(a | s_t) Q(s_t, a)
    loss: float


def _expected_sarsa_impl():  # type: ignore[no-untyped-def]
    import torch
    from d3rlpy.ope.torch.fqe_impl import DiscreteFQEImpl

    class ExpectedSarsaFQEImpl(DiscreteFQEImpl):
        """DiscreteFQEImpl whose target averages the next Q-values over the served policy."""

        served_policy: QSoftmaxPolicy
        data: Transitions

        def inner_update(self, batch, grad_step: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
            with torch.no_grad():
                q_next, candidates = _candidate_values(self._modules.targ_q_funcs, self.data, batch.next_observations)
                target = _expected_value(self.served_policy, self.data, batch.next_observations.cpu().numpy(), q_next, candidates)
            loss = self.compute_loss(batch, target.reshape(-1, 1))
            self._modules.optim.zero_grad()
            loss.backward()
            self._modules.optim.step()
            if grad_step % self._target_update_interval == 0:
                self.update_target()
            return {"loss": float(loss.cpu().detach().numpy())}

    return ExpectedSarsaFQEImpl


def _candidates_of(data: Transitions, observations: np.ndarray) -> np.ndarray:
    """The padded candidate ids of observations in `data`'s layout (none after a terminal step)."""
    part = observations[:, data.state_dim:]
    if data.layout == "ids":
        return np.rint(part).astype(np.int64)
    return mask_to_ids(part)


def _candidate_values(q_functions, data: Transitions, x):  # type: ignore[no-untyped-def]
    """The fitted ensemble's mean Q of each candidate slot `(n, max_candidates)` (0 on padding)
    and the padded candidate ids; the action-embedding network scores only the candidates."""
    import torch

    from offline_rl.embedding_q import ensemble_candidate_q

    candidates = _candidates_of(data, x.cpu().numpy())
    if data.layout == "ids":
        q, _ = ensemble_candidate_q(q_functions, x)
    else:
        dense = torch.stack([q_func(x).q_value for q_func in q_functions]).mean(dim=0)
        q = dense.gather(1, torch.as_tensor(np.maximum(candidates, 0), device=x.device))
    valid = torch.as_tensor(candidates >= 0, device=x.device)
    return torch.where(valid, q, torch.zeros_like(q)), candidates


def _expected_value(policy: QSoftmaxPolicy, data: Transitions, observations: np.ndarray, q, candidates: np.ndarray):  # type: ignore[no-untyped-def]
    """sum_a pi(a | s) Q(s, a) over each observation's candidates (0 where none is left), with `q`
    the candidates' Q-values (a torch tensor)."""
    import torch

    probs = np.zeros(candidates.shape)
    has = (candidates >= 0).any(axis=1)
    if has.any():
        probs[has] = candidate_probabilities(policy, observations[has, : data.state_dim], candidates[has], data.n_actions)
    return (torch.as_tensor(probs, dtype=q.dtype, device=q.device) * q).sum(dim=1)


FQE_CHUNK = 4096  # steps per forward when evaluating the fitted Q


def fit_fqe(policy: QSoftmaxPolicy, data: Transitions, cfg: OPEConfig) -> FittedQ:
    """Fit Q of `policy` on `data` (rewards unscaled, discount cfg.gamma) and evaluate it at every step."""
    import d3rlpy
    import torch

    from offline_rl.masked_q import MaskedStateEncoderFactory
    from offline_rl.replay import ArrayReplayBuffer
    from offline_rl.train import q_function_factory

    d3rlpy.seed(cfg.seed)
    dataset = ArrayReplayBuffer(data)
    fqe = d3rlpy.ope.DiscreteFQE(
        algo=policy.algo,
        config=d3rlpy.ope.FQEConfig(
            learning_rate=cfg.fqe_learning_rate, batch_size=cfg.fqe_batch_size, gamma=cfg.gamma,
            target_update_interval=cfg.fqe_target_update_interval,
            encoder_factory=MaskedStateEncoderFactory(state_dim=data.state_dim, hidden_units=list(cfg.fqe_hidden_units)),
            q_func_factory=q_function_factory(data.layout, data.state_dim, cfg.fqe_embedding_dim),
        ),
        device="cpu:0",
    )
    fqe.build_with_dataset(dataset)
    fqe.impl.__class__ = _expected_sarsa_impl()  # same state, expected-SARSA target
    fqe.impl.served_policy = policy
    fqe.impl.data = data
    history = fqe.fit(dataset, n_steps=cfg.fqe_steps, n_steps_per_epoch=cfg.fqe_steps, show_progress=False,
                      logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    q_hat = np.empty(len(data))
    v_hat = np.empty(len(data))
    for start in range(0, len(data), FQE_CHUNK):
        rows = slice(start, start + FQE_CHUNK)
        obs = data.observation_rows(rows)
        with torch.no_grad():
            q, candidates = _candidate_values(fqe.impl._modules.q_funcs, data, torch.as_tensor(obs))
            v_hat[rows] = _expected_value(policy, data, obs, q, candidates).cpu().numpy()
        q_hat[rows] = np.where(candidates == data.actions[rows, None], q.cpu().numpy(), 0.0).sum(axis=1)
    return FittedQ(
        q_hat=q_hat,
        v_hat=v_hat,
        loss=float(history[-1][1].get("loss", float("nan"))) if history else float("nan"),
    )
