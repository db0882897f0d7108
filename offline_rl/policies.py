"""Stochastic policies over the candidates: what is evaluated is what is served.

Every policy answers pi(a | state, candidates): `candidate_probabilities(policy, states,
candidates, n_actions)` gives it for any policy as `(n, max_candidates)`, aligned with the padded
candidate ids. Policies over `[state, candidate mask]` observations answer
`action_probabilities(observations) -> (n, n_actions)`, zero off the mask and summing to 1 over
it; a policy that scores candidate lists directly (the action-embedding network, for catalogs too
large for a dense mask) also has its own `candidate_probabilities(states, candidates)`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from offline_rl.dataset import ids_to_mask
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


def candidate_probabilities(policy, states: np.ndarray, candidates: np.ndarray, n_actions: int,  # type: ignore[no-untyped-def]
                            queries: np.ndarray | None = None) -> np.ndarray:
    """pi(a | state, candidates) of any policy, `(n, max_candidates)` aligned with `candidates`
    (ids padded with -1; padding gets probability 0). A policy with `needs_queries` (e.g. Thompson
    sampling per query) also reads each row's query id from `queries`; the others ignore it."""
    candidates = np.asarray(candidates, dtype=np.int64)
    if getattr(policy, "needs_queries", False):
        if queries is None:
            raise ValueError(f"policy {getattr(policy, 'name', policy)!r} is per query: it needs each row's query id "
                             "(transitions loaded with queries, or the simulator's)")
        return policy.candidate_probabilities(states, candidates, queries=queries)
    if hasattr(policy, "candidate_probabilities"):
        return policy.candidate_probabilities(states, candidates)
    valid = candidates >= 0
    mask = ids_to_mask(candidates, n_actions)
    dense = policy.action_probabilities(np.concatenate([np.asarray(states, dtype=np.float32), mask], axis=1))
    return np.where(valid, dense[np.arange(len(states))[:, None], np.maximum(candidates, 0)], 0.0)


class UniformPolicy:
    name = "uniform"

    def __init__(self, state_dim: int):
        self.state_dim = state_dim

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        mask = observations[:, self.state_dim:] > 0.5
        return mask / mask.sum(axis=1, keepdims=True)

    def candidate_probabilities(self, states: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        valid = np.asarray(candidates) >= 0
        return valid / valid.sum(axis=1, keepdims=True)


class QSoftmaxPolicy:
    """Softmax over the candidates' Q-values of a trained d3rlpy discrete Q-learning algorithm,
    with either network: the masked one (observations `[state, mask]`) or the action-embedding
    one (observations `[state, candidate ids]`, `layout` "ids").

    With an `anchor` (a model of the logging policy b answering `candidate_probabilities`, e.g.
    behaviour cloning) and `anchor_weight` w > 0 the softmax is tilted towards the logs:
    pi(a | s) ∝ b(a | s)^w exp(Q(s, a) / temperature)."""

    def __init__(self, algo, state_dim: int, temperature: float, name: str,  # type: ignore[no-untyped-def]
                 anchor=None, anchor_weight: float = 0.0):
        from offline_rl.embedding_q import CandidateEmbeddingQFunction

        self.algo = algo
        self.state_dim = state_dim
        self.temperature = temperature
        self.name = name
        self.anchor = anchor if anchor_weight > 0 else None
        self.anchor_weight = anchor_weight if anchor is not None else 0.0
        self.layout = "ids" if isinstance(algo.impl.q_function[0], CandidateEmbeddingQFunction) else "mask"
        self.n_actions = int(algo.impl.action_size)

    def q_values(self, observations: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=self.algo.impl.device)
        with torch.no_grad():
            q = torch.stack([q_func(x).q_value for q_func in self.algo.impl.q_function]).mean(dim=0)
        return q.cpu().numpy().astype(np.float64)

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        """Dense `(n, n_actions)` probabilities of observations in this network's layout."""
        if self.layout == "ids":
            observations = np.asarray(observations, dtype=np.float32)
            candidates = np.rint(observations[:, self.state_dim:]).astype(np.int64)
            probs = self.candidate_probabilities(observations[:, : self.state_dim], candidates)
            dense = np.zeros((len(observations), self.n_actions))
            rows, slots = np.nonzero(candidates >= 0)
            dense[rows, candidates[rows, slots]] = probs[rows, slots]
            return dense
        x = torch.as_tensor(np.asarray(observations, dtype=np.float32))
        _, mask = split_observation(x, self.state_dim)
        behavior = None if self.anchor is None else self.anchor.action_probabilities(observations)
        return self._served(self.q_values(observations), mask.numpy(), behavior)

    def _served(self, q: np.ndarray, valid: np.ndarray, behavior: np.ndarray | None) -> np.ndarray:
        """softmax(Q / T + w log b) over the valid entries (b: the anchor's probabilities, aligned with q)."""
        if behavior is not None:
            q = q + self.temperature * self.anchor_weight * np.log(np.maximum(behavior, np.finfo(np.float64).tiny))
        return masked_softmax(q, valid, self.temperature)

    def candidate_q(self, states: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """Q of each candidate `(n, max_candidates)` (the embedding network scores only these)."""
        if self.layout == "mask":
            dense = self.q_values(np.concatenate([states, ids_to_mask(candidates, self.n_actions)], axis=1))
            return dense[np.arange(len(states))[:, None], np.maximum(candidates, 0)]
        x = torch.as_tensor(np.concatenate([np.asarray(states, dtype=np.float32), candidates.astype(np.float32)], axis=1),
                            device=self.algo.impl.device)
        from offline_rl.embedding_q import ensemble_candidate_q

        with torch.no_grad():
            q, _ = ensemble_candidate_q(self.algo.impl.q_function, x)
        return q.cpu().numpy().astype(np.float64)

    def candidate_probabilities(self, states: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        candidates = np.asarray(candidates, dtype=np.int64)
        behavior = None if self.anchor is None else self.anchor.candidate_probabilities(states, candidates)
        return self._served(self.candidate_q(states, candidates), candidates >= 0, behavior)
