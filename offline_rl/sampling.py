"""Stratified mini-batches: transitions drawn so that the batch mix over strata (gender | age band |
purchase power, the transitions' `stratum`) matches a configured target instead of the logs' mix.

A target maps stratum patterns (`fnmatch` patterns over the key, e.g. `F|*|*` or `*|18-24|*`) to
shares of each batch. Strata no pattern matches share what is left, in their logged proportions;
inside a pattern's group, strata keep their logged proportions too. Sampling is with replacement,
like d3rlpy's own, and uses numpy's global generator, so `d3rlpy.seed` makes it reproducible; the
batches are gathered by `offline_rl.replay.ArrayReplayBuffer`.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Mapping

import numpy as np

from hintrl.errors import HintrlError


def _strata_codes(strata) -> tuple[list[str], np.ndarray]:  # type: ignore[no-untyped-def]
    """(distinct strata, each row's index into them), without a string per row for a Categorical."""
    if hasattr(strata, "codes") and hasattr(strata, "categories"):
        return [str(c) for c in strata.categories], np.asarray(strata.codes)
    keys, codes = np.unique(np.asarray(strata, dtype=str), return_inverse=True)
    return keys.tolist(), codes.reshape(-1)


def stratum_weights(strata, target: Mapping[str, float]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Share of each logged stratum in a batch under `target` (sums to 1)."""
    keys, codes = _strata_codes(strata)
    counts = np.bincount(codes, minlength=len(keys))
    natural = {k: c / counts.sum() for k, c in zip(keys, counts.tolist()) if c > 0}
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


class StratumSampler:
    """Rows drawn so that each batch's strata follow `stratum_weights(strata, target)`: a multinomial
    count per stratum, then rows uniformly within it (with replacement, like d3rlpy)."""

    def __init__(self, strata, target: Mapping[str, float]):  # type: ignore[no-untyped-def]
        keys, codes = _strata_codes(strata)
        self.weights = stratum_weights(strata, target)
        present = [i for i, k in enumerate(keys) if self.weights.get(k, 0) > 0]
        self.keys = [keys[i] for i in present]
        self.probabilities = np.array([self.weights[k] for k in self.keys])
        self.probabilities /= self.probabilities.sum()
        self.members = [np.flatnonzero(codes == i) for i in present]

    def sample(self, batch_size: int) -> np.ndarray:
        counts = np.random.multinomial(batch_size, self.probabilities)
        rows = np.concatenate([m[np.random.randint(len(m), size=c)] for m, c in zip(self.members, counts) if c])
        np.random.shuffle(rows)
        return rows
