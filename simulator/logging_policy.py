"""Policies that act in the simulated world, each giving exact probabilities over the open candidates.

A policy sees a `StepContext`. Logged policies (baseline, explore) use only the candidates; a
served policy (`ServedPolicy`, any `offline_rl` policy or registered model) sees the state vector
computed online by `feature_store`; the oracle reads the world's true click probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from simulator.world import World


@dataclass
class StepContext:
    user: int
    query: int
    page: int
    hour: float
    clicks_in_episode: int
    open_candidates: np.ndarray
    recent_clicks: np.ndarray
    observation: Callable[[], np.ndarray]  # [state, candidate mask], built only when asked for


class SimPolicy(Protocol):
    name: str

    def probabilities(self, ctx: StepContext) -> np.ndarray: ...


class BaselinePolicy:
    """The site's heuristic: the globally most popular open hint, with epsilon-uniform exploration."""

    name = "baseline-heuristic-v1"

    def __init__(self, world: World, epsilon: float):
        self.rank = {int(t): r for r, t in enumerate(np.argsort(-world.type_base))}
        self.epsilon = epsilon

    def probabilities(self, ctx: StepContext) -> np.ndarray:
        n = len(ctx.open_candidates)
        probs = np.full(n, self.epsilon / n)
        best = int(np.argmin([self.rank[int(t)] for t in ctx.open_candidates]))
        probs[best] += 1.0 - self.epsilon
        return probs


class UniformPolicy:
    """The `explore` bucket: uniform over the open candidates."""

    name = "uniform-explore-v1"

    def probabilities(self, ctx: StepContext) -> np.ndarray:
        return np.full(len(ctx.open_candidates), 1.0 / len(ctx.open_candidates))


class OraclePolicy:
    """Knows the true click probabilities and shows the most likely click (myopic best choice)."""

    name = "oracle-myopic"

    def __init__(self, world: World):
        self.world = world

    def probabilities(self, ctx: StepContext) -> np.ndarray:
        p_click = self.world.click_probability(
            ctx.user, ctx.query, ctx.open_candidates, ctx.page, ctx.clicks_in_episode, ctx.recent_clicks, ctx.hour
        )
        probs = np.zeros(len(ctx.open_candidates))
        probs[int(np.argmax(p_click))] = 1.0
        return probs


class ServedPolicy:
    """Any policy answering `action_probabilities(observations)` (what hintrl trains and serves)."""

    def __init__(self, policy, name: str | None = None):  # type: ignore[no-untyped-def]
        self.policy = policy
        self.name = name or getattr(policy, "name", "policy")

    def probabilities(self, ctx: StepContext) -> np.ndarray:
        probs = self.policy.action_probabilities(ctx.observation()[None, :])[0][ctx.open_candidates]
        total = probs.sum()
        if not np.isfinite(total) or total <= 0:
            raise ValueError(f"policy {self.name} gave no probability to the open candidates")
        return probs / total
