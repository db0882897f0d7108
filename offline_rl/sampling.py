"""Stratified mini-batches: transitions drawn so that the batch mix over strata (gender | age band |
purchase power, the transitions' `stratum`) matches a configured target instead of the logs' mix.

A target maps stratum patterns (`fnmatch` patterns over the key, e.g. `F|*|*` or `*|18-24|*`) to
shares of each batch. Strata no pattern matches share what is left, in their logged proportions;
inside a pattern's group, strata keep their logged proportions too. Sampling is with replacement,
like d3rlpy's own, and uses numpy's global generator, so `d3rlpy.seed` makes it reproducible.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Mapping

import numpy as np
from d3rlpy.dataset import ReplayBuffer, TransitionMiniBatch

from hintrl.errors import HintrlError


def stratum_weights(strata: np.ndarray, target: Mapping[str, float]) -> dict[str, float]:
    """Share of each logged stratum in a batch under `target` (sums to 1)."""
    keys, counts = np.unique(np.asarray(strata, dtype=str), return_counts=True)
    natural = dict(zip(keys.tolist(), (counts / counts.sum()).tolist()))
    if any(not 0 <= share <= 1 for share in target.values()) or sum(target.values()) > 1 + 1e-9:
        raise HintrlError(f"train.stratum_mix: shares must be in [0, 1] and sum to at most 1, got {dict(target)}")
    group_of: dict[str, str] = {}
    for key in natural:
        matches = [p for p in target if fnmatchcase(key, p)]
        if len(matches) > 1:
            raise HintrlError(f"train.stratum_mix: stratum {key!r} matches several patterns {matches}")
        if matches:
            group_of[key] = matches[0]
    empty = [p for p in target if target[p] > 0 and p not in group_of.values()]
    if empty:
        raise HintrlError(f"train.stratum_mix: no transitions in stratum pattern(s) {empty} "
                          f"(strata in the data: {', '.join(sorted(natural))})")
    rest = [k for k in natural if k not in group_of]
    rest_share = 1.0 - sum(target[p] for p in set(group_of.values()))
    if rest_share > 1e-9 and not rest:
        raise HintrlError(f"train.stratum_mix: shares sum to {1 - rest_share:.3f} < 1 and every stratum is listed")
    weights = {}
    for pattern in set(group_of.values()):
        members = [k for k, p in group_of.items() if p == pattern]
        total = sum(natural[k] for k in members)
        weights.update({k: target[pattern] * natural[k] / total for k in members})
    rest_total = sum(natural[k] for k in rest)
    weights.update({k: rest_share * natural[k] / rest_total for k in rest} if rest else {})
    return weights


class StratifiedReplayBuffer(ReplayBuffer):
    """d3rlpy's replay buffer, drawing each mini-batch's strata to a target mix.

    `strata[i]` is the stratum of the buffer's i-th transition (episodes in dataset order)."""

    def __init__(self, buffer, strata: np.ndarray, target: Mapping[str, float], **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(buffer, **kwargs)
        strata = np.asarray(strata, dtype=str)
        if len(strata) != self._buffer.transition_count:
            raise HintrlError(f"{len(strata)} strata for {self._buffer.transition_count} transitions")
        self.weights = stratum_weights(strata, target)
        self.keys = sorted(k for k, w in self.weights.items() if w > 0)
        self.probabilities = np.array([self.weights[k] for k in self.keys])
        self.probabilities /= self.probabilities.sum()
        self.members = [np.flatnonzero(strata == k) for k in self.keys]

    def sample_indices(self, batch_size: int) -> np.ndarray:
        counts = np.random.multinomial(batch_size, self.probabilities)
        return np.concatenate([rows[np.random.randint(len(rows), size=c)] for rows, c in zip(self.members, counts) if c])

    def sample_transition_batch(self, batch_size: int) -> TransitionMiniBatch:
        indices = self.sample_indices(batch_size)
        np.random.shuffle(indices)
        transitions = []
        for index in indices:
            episode, transition_index = self._buffer[int(index)]
            transitions.append(self._transition_picker(episode, transition_index))
        return TransitionMiniBatch.from_transitions(transitions)


def mdp_episodes(data):  # type: ignore[no-untyped-def]
    """d3rlpy episodes of `Transitions` (each ends at its terminal step), in the data's order."""
    from d3rlpy.dataset import EpisodeGenerator

    return EpisodeGenerator(observations=data.observations, actions=data.actions.reshape(-1, 1),
                            rewards=data.rewards.reshape(-1, 1), terminals=data.terminals)()


def stratified_dataset(data, target: Mapping[str, float]) -> StratifiedReplayBuffer:  # type: ignore[no-untyped-def]
    """A replay buffer of `data` whose mini-batches follow the stratum `target` mix."""
    import d3rlpy
    from d3rlpy.dataset import InfiniteBuffer

    return StratifiedReplayBuffer(InfiniteBuffer(), data.strata, target, episodes=mdp_episodes(data),
                                  action_space=d3rlpy.ActionSpace.DISCRETE, action_size=data.n_actions)
