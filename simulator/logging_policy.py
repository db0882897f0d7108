"""Policies that act in the simulated world, each giving exact probabilities over the open candidates.

A policy sees a `StepBatch`: many page views at once, each with its query's candidate row (padded
with -1) and which of those are still open. Logged policies (baseline, explore) use only the
candidates; a served policy (`ServedPolicy`, any `offline_rl` policy or registered model) sees the
state vectors computed online by `feature_store`; the oracle reads the world's true click
probabilities. Every policy returns probabilities of shape (rows, candidate positions), zero off the
open positions and summing to 1 over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from simulator.world import World


@dataclass
class StepBatch:
    users: np.ndarray
    queries: np.ndarray
    pages: np.ndarray
    hours: np.ndarray
    clicks_in_episode: np.ndarray
    candidates: np.ndarray  # (rows, positions) hint types, -1 padded
    open: np.ndarray  # (rows, positions) bool: a candidate not yet shown in the episode
    recent_clicks: np.ndarray  # (rows, positions): the user's recent clicks in each candidate's slot
    # State vectors of page views (by row of the full step) from the online features, computed only
    # when a policy asks for them.
    state_of: Callable[[np.ndarray], np.ndarray]
    n_types: int  # the action space: hint types 0..n_types-1
    rows: np.ndarray | None = None  # rows of the full step this batch holds (None: all)

    def __len__(self) -> int:
        return len(self.users)

    def states(self) -> np.ndarray:
        """(rows, state_dim): the state vectors of this batch's page views."""
        return self.state_of(np.arange(len(self)) if self.rows is None else self.rows)

    def subset(self, rows: np.ndarray) -> "StepBatch":
        return StepBatch(
            self.users[rows], self.queries[rows], self.pages[rows], self.hours[rows], self.clicks_in_episode[rows],
            self.candidates[rows], self.open[rows], self.recent_clicks[rows], self.state_of, self.n_types,
            rows if self.rows is None else self.rows[rows],
        )


def query_ids(queries: np.ndarray) -> np.ndarray:
    """The logged `query_id` of simulator query numbers."""
    from simulator.logs import query_id_array

    return np.asarray(query_id_array(queries).to_pylist(), dtype=object)


class SimPolicy(Protocol):
    name: str

    def probabilities(self, batch: StepBatch) -> np.ndarray: ...


def _uniform(open_: np.ndarray) -> np.ndarray:
    return open_ / open_.sum(axis=1, keepdims=True)


class BaselinePolicy:
    """The site's heuristic: the globally most attractive open hint, with epsilon-uniform exploration."""

    name = "baseline-heuristic-v1"

    def __init__(self, world: World, epsilon: float):
        self.rank = np.empty(world.n_types, dtype=np.int64)
        self.rank[np.argsort(-world.type_base, kind="stable")] = np.arange(world.n_types)
        self.epsilon = epsilon

    def probabilities(self, batch: StepBatch) -> np.ndarray:
        rank = np.where(batch.open, self.rank[np.maximum(batch.candidates, 0)], np.iinfo(np.int64).max)
        probs = self.epsilon * _uniform(batch.open)
        probs[np.arange(len(batch)), rank.argmin(axis=1)] += 1.0 - self.epsilon
        return probs


class UniformPolicy:
    """The `explore` bucket: uniform over the open candidates."""

    name = "uniform-explore-v1"

    def probabilities(self, batch: StepBatch) -> np.ndarray:
        return _uniform(batch.open)


class OraclePolicy:
    """Knows the true click probabilities and shows the most likely click (myopic best choice)."""

    name = "oracle-myopic"

    def __init__(self, world: World):
        self.world = world

    def probabilities(self, batch: StepBatch) -> np.ndarray:
        positions = np.arange(batch.candidates.shape[1])[None, :]
        p_click = self.world.click_probability(
            batch.users[:, None], batch.queries[:, None], positions, batch.pages[:, None],
            batch.clicks_in_episode[:, None], batch.recent_clicks, batch.hours[:, None],
        )
        probs = np.zeros(batch.candidates.shape)
        probs[np.arange(len(batch)), np.where(batch.open, p_click, -1.0).argmax(axis=1)] = 1.0
        return probs


class ServedPolicy:
    """Any hintrl policy (`offline_rl.policies`: pi(a | state, candidates)), or a registered model,
    seeing the page's open candidates (what hintrl trains and serves)."""

    def __init__(self, policy, name: str | None = None):  # type: ignore[no-untyped-def]
        self.policy = policy
        self.name = name or getattr(policy, "name", "policy")

    def probabilities(self, batch: StepBatch) -> np.ndarray:
        from offline_rl.policies import candidate_probabilities

        open_candidates = np.where(batch.open, batch.candidates, -1)
        queries = query_ids(batch.queries) if getattr(self.policy, "needs_queries", False) else None
        probs = candidate_probabilities(self.policy, batch.states(), open_candidates, batch.n_types, queries)
        total = probs.sum(axis=1, keepdims=True)
        if not (np.isfinite(total) & (total > 0)).all():
            raise ValueError(f"policy {self.name} gave no probability to the open candidates")
        return probs / total
