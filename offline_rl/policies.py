"""Stochastic policies over the candidates: what is evaluated is what is served.

Every policy answers `action_probabilities(observations) -> (n, n_actions)`, zero off the candidate
mask and summing to 1 over it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from offline_rl.masked_q import split_observation


class Policy(Protocol):
    name: str

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray: ...


def masked_softmax(q_values: np.ndarray, mask: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of q / temperature over the True entries of `mask` (each row needs one)."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0: a greedy policy has no off-policy evaluation")
    mask = mask.astype(bool)
    if not mask.any(axis=1).all():
        raise ValueError("every row needs at least one candidate")
    logits = np.where(mask, q_values / temperature, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.where(mask, np.exp(logits), 0.0)
    return weights / weights.sum(axis=1, keepdims=True)


class UniformPolicy:
    name = "uniform"

    def __init__(self, state_dim: int):
        self.state_dim = state_dim

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        mask = observations[:, self.state_dim:] > 0.5
        return mask / mask.sum(axis=1, keepdims=True)


class QSoftmaxPolicy:
    """Softmax over the masked Q-values of a trained d3rlpy discrete Q-learning algorithm."""

    def __init__(self, algo, state_dim: int, temperature: float, name: str):  # type: ignore[no-untyped-def]
        self.algo = algo
        self.state_dim = state_dim
        self.temperature = temperature
        self.name = name

    def q_values(self, observations: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=self.algo.impl.device)
        with torch.no_grad():
            q = torch.stack([q_func(x).q_value for q_func in self.algo.impl.q_function]).mean(dim=0)
        return q.cpu().numpy().astype(np.float64)

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(observations, dtype=np.float32))
        _, mask = split_observation(x, self.state_dim)
        return masked_softmax(self.q_values(observations), mask.numpy(), self.temperature)
