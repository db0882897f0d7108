"""Logging policies of the simulated site, each giving exact probabilities over the open candidates."""

from __future__ import annotations

import numpy as np

from simulator.world import World


class BaselinePolicy:
    """The site's heuristic: the globally most popular open hint, with epsilon-uniform exploration."""

    name = "baseline-heuristic-v1"

    def __init__(self, world: World, epsilon: float):
        self.popularity_rank = np.argsort(-world.type_base)
        self.epsilon = epsilon

    def probabilities(self, open_candidates: np.ndarray) -> np.ndarray:
        n = len(open_candidates)
        probs = np.full(n, self.epsilon / n)
        order = {t: r for r, t in enumerate(self.popularity_rank)}
        best = int(np.argmin([order[int(t)] for t in open_candidates]))
        probs[best] += 1.0 - self.epsilon
        return probs


class UniformPolicy:
    """The `explore` bucket: uniform over the open candidates."""

    name = "uniform-explore-v1"

    def probabilities(self, open_candidates: np.ndarray) -> np.ndarray:
        return np.full(len(open_candidates), 1.0 / len(open_candidates))
