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
from offline_rl.dataset import Transitions
from offline_rl.policies import QSoftmaxPolicy


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

        def inner_update(self, batch, grad_step: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
            with torch.no_grad():
                next_obs = batch.next_observations
                probs = torch.as_tensor(_policy_probs(self.served_policy, next_obs), dtype=torch.float32, device=next_obs.device)
                q_next = self._targ_q_func_forwarder.compute_expected_q(next_obs, reduction="mean")
                candidate = next_obs[:, self.served_policy.state_dim:] > 0.5  # off the candidates Q is INVALID_Q
                target = (probs * torch.where(candidate, q_next, torch.zeros_like(q_next))).sum(dim=1, keepdim=True)
            loss = self.compute_loss(batch, target)
            self._modules.optim.zero_grad()
            loss.backward()
            self._modules.optim.step()
            if grad_step % self._target_update_interval == 0:
                self.update_target()
            return {"loss": float(loss.cpu().detach().numpy())}

    return ExpectedSarsaFQEImpl


def _policy_probs(policy: QSoftmaxPolicy, observations) -> np.ndarray:  # type: ignore[no-untyped-def]
    """pi(. | s) of the served policy; all zeros where no candidate is left (after a terminal step)."""
    obs = np.asarray(observations.cpu().numpy() if hasattr(observations, "cpu") else observations, dtype=np.float32)
    probs = np.zeros((len(obs), obs.shape[1] - policy.state_dim))
    has = obs[:, policy.state_dim:].max(axis=1) > 0.5
    if has.any():
        probs[has] = policy.action_probabilities(obs[has])
    return probs


def fit_fqe(policy: QSoftmaxPolicy, data: Transitions, cfg: OPEConfig) -> FittedQ:
    """Fit Q of `policy` on `data` (rewards unscaled, discount cfg.gamma) and evaluate it at every step."""
    import d3rlpy
    import torch

    from offline_rl.masked_q import (
        MaskedMeanQFunctionFactory,
        MaskedStateEncoderFactory,
    )
    from offline_rl.replay import ArrayReplayBuffer

    d3rlpy.seed(cfg.seed)
    dataset = ArrayReplayBuffer(data)
    fqe = d3rlpy.ope.DiscreteFQE(
        algo=policy.algo,
        config=d3rlpy.ope.FQEConfig(
            learning_rate=cfg.fqe_learning_rate, batch_size=cfg.fqe_batch_size, gamma=cfg.gamma,
            target_update_interval=cfg.fqe_target_update_interval,
            encoder_factory=MaskedStateEncoderFactory(state_dim=data.state_dim, hidden_units=list(cfg.fqe_hidden_units)),
            q_func_factory=MaskedMeanQFunctionFactory(state_dim=data.state_dim),
        ),
        device="cpu:0",
    )
    fqe.build_with_dataset(dataset)
    fqe.impl.__class__ = _expected_sarsa_impl()  # same state, expected-SARSA target
    fqe.impl.served_policy = policy
    history = fqe.fit(dataset, n_steps=cfg.fqe_steps, n_steps_per_epoch=cfg.fqe_steps, show_progress=False,
                      logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    obs = torch.as_tensor(data.observations, dtype=torch.float32)
    with torch.no_grad():
        q_all = fqe.impl._q_func_forwarder.compute_expected_q(obs, reduction="mean").cpu().numpy().astype(np.float64)
    probs = _policy_probs(policy, data.observations)
    q_all = np.where(data.masks > 0.5, q_all, 0.0)
    return FittedQ(
        q_hat=q_all[np.arange(len(data)), data.actions] if len(data) else np.zeros(0),
        v_hat=(probs * q_all).sum(axis=1),
        loss=float(history[-1][1].get("loss", float("nan"))) if history else float("nan"),
    )
