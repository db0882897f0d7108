"""A d3rlpy replay buffer over the `Transitions` arrays themselves.

d3rlpy's own `MDPDataset` keeps an episode object per episode and a tuple per transition, and builds
every mini-batch one transition at a time in Python. This buffer keeps no copy of the data: a batch
is gathered with numpy from the compact arrays (float32 states, the candidates), with exactly the
transition semantics of d3rlpy's `BasicTransitionPicker` (next observation and action of the same
episode, zeros after a terminal step, interval 1) — a test compares both. Which rows a batch holds
is the sampler's choice: uniform, like d3rlpy, or stratified (offline_rl/sampling.py).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from d3rlpy.constants import ActionSpace
from d3rlpy.dataset import (
    InfiniteBuffer,
    ReplayBuffer,
    Signature,
    Transition,
    TransitionMiniBatch,
)

from hintrl.errors import DataContractError
from offline_rl.dataset import Transitions


class Sampler(Protocol):
    def sample(self, batch_size: int) -> np.ndarray: ...


class UniformSampler:
    """Rows uniformly with replacement, from numpy's global generator (seeded by `d3rlpy.seed`)."""

    def __init__(self, n: int):
        self.n = n

    def sample(self, batch_size: int) -> np.ndarray:
        return np.random.randint(self.n, size=batch_size)


def check_episode_ends(data: Transitions) -> None:
    """Every episode's last step, and only it, is terminal (rows sorted by episode and step)."""
    ids = np.asarray(data.episode_ids)
    ends = np.r_[ids[1:] != ids[:-1], True]
    terminal = np.asarray(data.terminals) > 0.5
    if (terminal != ends).any():
        bad = int((terminal != ends).sum())
        raise DataContractError(f"{bad} transitions have a terminal flag that does not mark their episode's last step")


class ArrayReplayBuffer(ReplayBuffer):
    def __init__(self, data: Transitions, sampler: Sampler | None = None):
        check_episode_ends(data)
        super().__init__(
            InfiniteBuffer(),
            observation_signature=Signature(dtype=[np.dtype(np.float32)], shape=[(data.observation_dim,)]),
            action_signature=Signature(dtype=[np.dtype(np.int64)], shape=[(1,)]),
            reward_signature=Signature(dtype=[np.dtype(np.float32)], shape=[(1,)]),
            action_space=ActionSpace.DISCRETE,
            action_size=data.n_actions,
        )
        self.data = data
        self.sampler = sampler or UniformSampler(len(data))

    @property
    def transition_count(self) -> int:
        return len(self.data)

    def batch(self, rows: np.ndarray) -> TransitionMiniBatch:
        data = self.data
        rows = np.asarray(rows, dtype=np.int64)
        terminal = data.terminals[rows] > 0.5
        following = np.where(terminal, rows, rows + 1)
        next_observations = data.observation_rows(following)
        next_observations[terminal] = 0.0
        if data.layout == "ids":
            next_observations[terminal, data.state_dim:] = -1.0  # no candidate after the last step
        next_actions = np.where(terminal, 0, data.actions[following]).astype(np.float32).reshape(-1, 1)
        return TransitionMiniBatch(
            observations=data.observation_rows(rows),
            actions=data.actions[rows].astype(np.float32).reshape(-1, 1),
            rewards=data.rewards[rows].astype(np.float32).reshape(-1, 1),
            next_observations=next_observations,
            next_actions=next_actions,
            terminals=terminal.astype(np.float32).reshape(-1, 1),
            intervals=np.ones((len(rows), 1), dtype=np.float32),
            transitions=[],
        )

    def sample_transition_batch(self, batch_size: int) -> TransitionMiniBatch:
        return self.batch(self.sampler.sample(batch_size))

    def sample_transition(self) -> Transition:
        batch = self.batch(self.sampler.sample(1))
        return Transition(observation=batch.observations[0], action=batch.actions[0].astype(np.int64),
                          reward=batch.rewards[0], next_observation=batch.next_observations[0],
                          next_action=batch.next_actions[0], terminal=float(batch.terminals[0, 0]), interval=1,
                          rewards_to_go=batch.rewards[:1])
