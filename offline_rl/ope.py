"""Off-policy evaluation on variable-length episodes.

Every estimator here is a sum of ratios of per-episode, per-step contributions:

    V = sum over terms (num, den) of  sum_t gamma^t * (sum_i num[i, t]) / (sum_i den[i, t])

so the same (episodes x steps) matrices yield both the value and its bootstrap interval
(episodes resampled with replacement; the same matrices reweighted by multinomial counts).
Episodes are padded after their end with reward 0 and importance ratio 1, so a finished episode
keeps its last cumulative weight in a self-normalised denominator.

Estimators (Precup et al. 2000; Thomas 2015):
  behavior  num = r,                den = 1             on-policy mean return of the logs
  is        num = W_i r,            den = 1             W_i = prod over the whole episode
  wis       num = W_i r,            den = W_i
  pdis      num = w_{i,t} r,        den = 1             w_{i,t} = prod of ratios up to t
  wpdis     num = w_{i,t} r,        den = w_{i,t}
  dr        num = w_t (r - q) + w_{t-1} v,      den = 1       (Jiang & Li 2016; w_{-1} = 1)
  wdr       [num = w_t (r - q), den = w_t] + [num = w_{t-1} v, den = w_{t-1}]   (Thomas & Brunskill 2016)
  dm        num = v at t = 0,       den = 1             the direct method
where q = Q(s_t, a_t) and v = E_pi Q(s_t, .) come from a model of the target policy's value.

The importance-weighted estimators' intervals are the bootstrap's percentiles widened by the
weight mass the logs did not see. Under the logging policy every step's weights have mean exactly
1 (w_{i,t}, frozen after an episode ends; W_i); a sample whose mean weight at step t is m_t < 1
lacks mass 1 - m_t, which sits on trajectories too unlikely under the logs to appear, and a
resample of the sample cannot show it. The upper end lets that mass earn the largest reward seen
at the step (the largest return, for the trajectory-wise estimators) where the estimate gives it
none (is, pdis) or the seen average (wis, wpdis). The lower end of is and pdis lets it earn the
smallest reward seen instead of none, which moves it only where rewards can be negative (the
ma_rdpg preset, baseline-corrected rewards, any file given to `hintrl ope`). The lower end of wis
and wpdis is left to the bootstrap: the gate's lower bound (wpdis) lies above the truth less
often than its level allows (README, OPE accuracy), while crediting the missing mass the smallest
reward would take 0.037 and 0.036 off the nightly's CQL and DQN on the held-out 2026-11-07, more
than their lower bound's margin over the logs (0.034, 0.031; benchmarks/unseen_mass.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from hintrl.errors import HintrlError


class OPEInputError(HintrlError):
    """Logged data that cannot be evaluated (bad propensities, action outside the candidates)."""


@dataclass(frozen=True)
class Episodes:
    """Logged steps padded to (n_episodes, horizon)."""

    rewards: np.ndarray
    behavior_probs: np.ndarray
    target_probs: np.ndarray
    lengths: np.ndarray
    q_hat: np.ndarray | None = None  # Q(s_t, a_t) of the target policy, 0 after the episode ends
    v_hat: np.ndarray | None = None  # E_pi Q(s_t, .), 0 after the episode ends

    @property
    def n(self) -> int:
        return self.rewards.shape[0]

    @cached_property
    def ratios(self) -> np.ndarray:
        return self.target_probs / self.behavior_probs

    @cached_property
    def cumulative_weights(self) -> np.ndarray:
        return np.cumprod(self.ratios, axis=1)

    @property
    def trajectory_weights(self) -> np.ndarray:
        return self.cumulative_weights[:, -1]

    @cached_property
    def previous_weights(self) -> np.ndarray:
        """w_{t-1}, with w_{-1} = 1."""
        w = self.cumulative_weights
        return np.concatenate([np.ones((self.n, 1)), w[:, :-1]], axis=1)

    @classmethod
    def from_steps(
        cls,
        episode_ids: np.ndarray,
        steps: np.ndarray,
        rewards: np.ndarray,
        behavior_probs: np.ndarray,
        target_probs: np.ndarray,
        q_hat: np.ndarray | None = None,
        v_hat: np.ndarray | None = None,
    ) -> "Episodes":
        behavior_probs = np.asarray(behavior_probs, dtype=np.float64)
        target_probs = np.asarray(target_probs, dtype=np.float64)
        rewards = np.asarray(rewards, dtype=np.float64)
        n_rows = len(rewards)
        if n_rows == 0:
            raise OPEInputError("no logged steps to evaluate")
        for name, values in (("behavior", behavior_probs), ("target", target_probs)):
            bad_missing = ~np.isfinite(values)
            if bad_missing.any():
                raise OPEInputError(f"{int(bad_missing.sum())} of {n_rows} steps have a missing {name} probability")
        if (behavior_probs <= 0).any() or (behavior_probs > 1).any():
            bad = int(((behavior_probs <= 0) | (behavior_probs > 1)).sum())
            raise OPEInputError(f"{bad} of {n_rows} steps have a behavior probability outside (0, 1]")
        if (target_probs < 0).any() or (target_probs > 1 + 1e-9).any():
            bad = int(((target_probs < 0) | (target_probs > 1 + 1e-9)).sum())
            raise OPEInputError(f"{bad} of {n_rows} steps have a target probability outside [0, 1]")
        if not np.isfinite(rewards).all():
            raise OPEInputError("rewards must be finite")
        if (q_hat is None) != (v_hat is None):
            raise OPEInputError("give both q_hat and v_hat for the doubly robust estimators, or neither")
        if q_hat is not None and not (np.isfinite(q_hat).all() and np.isfinite(v_hat).all()):
            raise OPEInputError("q_hat and v_hat must be finite")

        order = np.lexsort((steps, episode_ids))
        ids, steps = np.asarray(episode_ids)[order], np.asarray(steps)[order]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
        lengths = np.diff(np.r_[starts, len(ids)])
        position = np.arange(len(ids)) - np.repeat(starts, lengths)
        expected = np.asarray(steps) - np.repeat(np.asarray(steps)[starts], lengths)
        if not np.array_equal(position, expected):
            raise OPEInputError("steps of an episode must be consecutive without duplicates")
        episode = np.repeat(np.arange(len(starts)), lengths)
        shape = (len(starts), int(lengths.max()))
        r = np.zeros(shape)
        b = np.ones(shape)
        p = np.ones(shape)
        r[episode, position] = rewards[order]
        b[episode, position] = behavior_probs[order]
        p[episode, position] = target_probs[order]
        models = []
        for values in (q_hat, v_hat):
            if values is None:
                models.append(None)
                continue
            padded = np.zeros(shape)
            padded[episode, position] = np.asarray(values, dtype=np.float64)[order]
            models.append(padded)
        return cls(r, b, p, lengths, models[0], models[1])


@dataclass(frozen=True)
class Estimate:
    name: str
    value: float
    low: float
    high: float
    effective_sample_size: float
    max_weight: float
    zero_weight_share: float
    n_episodes: int
    # Empirical-Bernstein lower bound at the interval's confidence; None for the self-normalised
    # estimators, which are not means of independent per-episode terms.
    bernstein_low: float | None = None

    def to_json(self) -> dict[str, float | str | int]:
        return dict(self.__dict__)


def empirical_bernstein_lower_bound(x: np.ndarray, confidence: float, value_range: float | None = None) -> float:
    """Lower confidence bound on E[X] from iid X_1..X_n in an interval of width `value_range`
    (Maurer & Pontil 2009, Theorem 4): with probability >= confidence,

        E X >= mean - sqrt(2 V ln(2/d) / n) - 7 R ln(2/d) / (3 (n - 1)),   d = 1 - confidence,

    V the sample variance. Without `value_range` the observed range max - min stands in for R."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2:
        return float("-inf")
    log_term = np.log(2.0 / (1.0 - confidence))
    width = float(x.max() - x.min()) if value_range is None else float(value_range)
    return float(x.mean() - np.sqrt(2.0 * x.var(ddof=1) * log_term / n) - 7.0 * width * log_term / (3.0 * (n - 1)))


class RatioEstimator:
    """Base: subclasses define the (numerator, denominator) matrix pairs of their ratio terms."""

    name = "ratio"
    # The self-normalised estimators leave their interval's lower end to the bootstrap (module docstring).
    bootstrap_lower_end = False

    def __init__(self, gamma: float = 1.0):
        if not 0.0 <= gamma <= 1.0:
            raise ValueError("gamma must be in [0, 1]")
        self.gamma = gamma

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(numerator, denominator) matrices, episodes x steps; a None denominator counts episodes."""
        raise NotImplementedError

    def weights(self, ep: Episodes) -> np.ndarray:
        """The per-episode weights the diagnostics describe."""
        return ep.trajectory_weights

    def discount(self, horizon: int) -> np.ndarray:
        """gamma^t for t = 0 .. horizon - 1."""
        return self.gamma ** np.arange(horizon)

    def _combine(self, num: np.ndarray, den: np.ndarray) -> np.ndarray:
        discount = self.discount(num.shape[-1])
        with np.errstate(invalid="ignore", divide="ignore"):
            per_step = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        return per_step @ discount

    def estimate_policy_value(self, ep: Episodes) -> float:
        return float(sum(self._combine(num.sum(axis=0), np.full(num.shape[1], float(ep.n)) if den is None else den.sum(axis=0))
                         for num, den in self.terms(ep)))

    def estimate_interval(
        self, ep: Episodes, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
    ) -> tuple[float, float]:
        """Percentile bootstrap over episodes, widened by `unseen_mass_allowance`."""
        return bootstrap_intervals(ep, [self], n_bootstrap, confidence, seed)[self.name]

    def unseen_mass_shift(self, ep: Episodes) -> tuple[float, float]:
        """How far the weight mass the logs did not see could move the estimate down and up,
        earning the smallest or the largest reward seen instead of what the estimate credits it
        (module docstring); 0 for the estimators that are not importance-weighted means."""
        return 0.0, 0.0

    def unseen_mass_allowance(self, ep: Episodes) -> tuple[float, float]:
        """How far the interval's lower end falls and its upper end rises: the whole shift, but
        only its upper part where the lower end is the bootstrap's (`bootstrap_lower_end`)."""
        down, up = self.unseen_mass_shift(ep)
        return (0.0 if self.bootstrap_lower_end else down), up

    def per_episode(self, ep: Episodes) -> np.ndarray | None:
        """Each episode's discounted contribution when the estimate is their plain mean (no
        self-normalisation), else None."""
        terms = self.terms(ep)
        if len(terms) != 1 or terms[0][1] is not None:
            return None
        return terms[0][0] @ self.discount(ep.rewards.shape[1])

    def estimate(self, ep: Episodes, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0,
                 interval: tuple[float, float] | None = None) -> Estimate:
        low, high = interval or self.estimate_interval(ep, n_bootstrap, confidence, seed)
        contributions = self.per_episode(ep)
        bernstein = None if contributions is None else empirical_bernstein_lower_bound(contributions, confidence)
        w = self.weights(ep)
        ess = float(w.sum() ** 2 / (w**2).sum()) if (w**2).sum() > 0 else 0.0
        return Estimate(
            name=self.name,
            value=self.estimate_policy_value(ep),
            low=low,
            high=high,
            effective_sample_size=ess,
            max_weight=float(w.max()),
            zero_weight_share=float((w == 0).mean()),
            n_episodes=ep.n,
            bernstein_low=bernstein,
        )


# Replicates resampled at a time: bounds memory to BOOTSTRAP_CHUNK x episodes counts.
BOOTSTRAP_CHUNK = 25


def bootstrap_counts(n: int, n_bootstrap: int, seed: int, chunk: int = BOOTSTRAP_CHUNK):  # type: ignore[no-untyped-def]
    """Resampling counts of n episodes (n draws with replacement per replicate), a chunk of
    replicates at a time; the same seed gives the same replicates whoever asks.

    The next chunk is drawn on a second thread while the caller works on the current one: drawing
    and counting are single-threaded and memory-bound, the caller's matrix product is BLAS's, and
    all of them release the GIL for most of their work. One worker draws the chunks in order from
    one generator, so the replicates are those drawn one after another."""
    rng = np.random.default_rng(seed)

    def draw(start: int) -> np.ndarray:
        k = min(chunk, n_bootstrap - start)
        draws = rng.integers(0, n, size=(k, n), dtype=np.int64)
        counts = np.empty((k, n))
        for replicate, drawn in zip(counts, draws):  # one replicate's n counters at a time stay in cache
            replicate[:] = np.bincount(drawn, minlength=n)
        return counts

    if n_bootstrap <= 0:
        return
    with ThreadPoolExecutor(max_workers=1) as worker:
        pending = worker.submit(draw, 0)
        for start in range(0, n_bootstrap, chunk):
            counts = pending.result()
            if start + chunk < n_bootstrap:
                pending = worker.submit(draw, start + chunk)
            yield counts


class _StackedTerms:
    """The numerator and denominator matrices of several estimators side by side, so that one
    matrix product per chunk of replicates gives every column sum every estimator needs."""

    def __init__(self, ep: Episodes, estimators: list["RatioEstimator"]):
        self.horizon = ep.rewards.shape[1]
        blocks: list[np.ndarray] = []
        self.layout: dict[str, list[tuple[int, int | None]]] = {}
        for e in estimators:
            self.layout[e.name] = []
            for num, den in e.terms(ep):
                blocks.append(num)
                num_at = len(blocks) - 1
                den_at = None
                if den is not None:
                    blocks.append(den)
                    den_at = len(blocks) - 1
                self.layout[e.name].append((num_at, den_at))
        # Stored transposed: OpenBLAS multiplies (columns x episodes) @ (episodes x replicates) fastest.
        # Each block is written into place: one copy of the episodes, not a concatenation and its transpose.
        h = self.horizon
        self.matrix_t = np.empty((len(blocks) * h, ep.n))
        for i, block in enumerate(blocks):
            self.matrix_t[i * h:(i + 1) * h] = block.T
        self.estimators = {e.name: e for e in estimators}

    def values(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        sums = (self.matrix_t @ counts.T).T
        episodes = np.repeat(counts.sum(axis=1, keepdims=True), self.horizon, axis=1)
        h = self.horizon

        def block(i: int | None) -> np.ndarray:
            return episodes if i is None else sums[:, i * h:(i + 1) * h]

        return {name: sum(self.estimators[name]._combine(block(n), block(d)) for n, d in parts)
                for name, parts in self.layout.items()}


def bootstrap_intervals(ep: Episodes, estimators: list["RatioEstimator"], n_bootstrap: int = 1000,
                        confidence: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile intervals of several estimators from one shared set of bootstrap replicates."""
    stacked = _StackedTerms(ep, estimators)
    values: dict[str, list[np.ndarray]] = {e.name: [] for e in estimators}
    for counts in bootstrap_counts(ep.n, n_bootstrap, seed):
        for name, v in stacked.values(counts).items():
            values[name].append(np.atleast_1d(v))
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for e in estimators:
        low, high = np.quantile(np.concatenate(values[e.name]), [alpha, 1.0 - alpha])
        down, up = e.unseen_mass_allowance(ep)
        out[e.name] = (float(low) - down, float(high) + up)
    return out


def _unseen_mass(weights: np.ndarray, worst: np.ndarray, credited: np.ndarray, best: np.ndarray,
                 discount: np.ndarray) -> tuple[float, float]:
    """sum_t discount_t * (1 - mean weight_t)+ times (credited_t - worst_t)+ and times
    (best_t - credited_t)+: how far the missing weight mass of each step could move the estimate
    down and up, earning the smallest or the largest reward seen instead of what it is credited."""
    missing = np.maximum(0.0, 1.0 - weights.mean(axis=0))
    return (float((missing * np.maximum(0.0, credited - worst)) @ discount),
            float((missing * np.maximum(0.0, best - credited)) @ discount))


def _unseen_trajectory_mass(ep: Episodes, discount: np.ndarray, credited: float) -> tuple[float, float]:
    """`_unseen_mass` of the trajectory weights, the missing mass earning the smallest or the
    largest return seen."""
    returns = ep.rewards @ discount
    return _unseen_mass(ep.trajectory_weights[:, None], returns.min(keepdims=True), np.array([credited]),
                        returns.max(keepdims=True), np.ones(1))


def estimate_all(ep: Episodes, names: tuple[str, ...], gamma: float = 1.0, n_bootstrap: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> dict[str, Estimate]:
    """Every named estimator with its diagnostics and bootstrap interval (replicates shared)."""
    estimators = [ESTIMATORS[name](gamma) for name in names]
    intervals = bootstrap_intervals(ep, estimators, n_bootstrap, confidence, seed)
    return {e.name: e.estimate(ep, interval=intervals[e.name]) for e in estimators}


class BehaviorValue(RatioEstimator):
    name = "behavior"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray | None]]:
        return [(ep.rewards, None)]

    def weights(self, ep: Episodes) -> np.ndarray:
        return np.ones(ep.n)


class TrajectoryIS(RatioEstimator):
    name = "is"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray | None]]:
        w = ep.trajectory_weights[:, None]
        return [(w * ep.rewards, None)]

    def unseen_mass_shift(self, ep: Episodes) -> tuple[float, float]:
        return _unseen_trajectory_mass(ep, self.discount(ep.rewards.shape[1]), 0.0)


class WeightedIS(RatioEstimator):
    name = "wis"
    bootstrap_lower_end = True

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray | None]]:
        w = np.broadcast_to(ep.trajectory_weights[:, None], ep.rewards.shape)
        return [(w * ep.rewards, np.array(w))]

    def unseen_mass_shift(self, ep: Episodes) -> tuple[float, float]:
        return _unseen_trajectory_mass(ep, self.discount(ep.rewards.shape[1]), self.estimate_policy_value(ep))


class PerDecisionIS(RatioEstimator):
    name = "pdis"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray | None]]:
        return [(ep.cumulative_weights * ep.rewards, None)]

    def unseen_mass_shift(self, ep: Episodes) -> tuple[float, float]:
        horizon = ep.rewards.shape[1]
        return _unseen_mass(ep.cumulative_weights, ep.rewards.min(axis=0), np.zeros(horizon),
                            ep.rewards.max(axis=0), self.discount(horizon))


class WeightedPerDecisionIS(RatioEstimator):
    name = "wpdis"
    bootstrap_lower_end = True

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray | None]]:
        w = ep.cumulative_weights
        return [(w * ep.rewards, w)]

    def unseen_mass_shift(self, ep: Episodes) -> tuple[float, float]:
        w = ep.cumulative_weights
        mass = w.sum(axis=0)
        step_values = (w * ep.rewards).sum(axis=0) / np.where(mass > 0, mass, 1.0)
        return _unseen_mass(w, ep.rewards.min(axis=0), step_values, ep.rewards.max(axis=0), self.discount(w.shape[1]))


def _models(ep: Episodes, name: str) -> tuple[np.ndarray, np.ndarray]:
    if ep.q_hat is None or ep.v_hat is None:
        raise OPEInputError(f"{name} needs q_hat and v_hat")
    return ep.q_hat, ep.v_hat


class DoublyRobust(RatioEstimator):
    name = "dr"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray | None]]:
        q, v = _models(ep, self.name)
        w, w_prev = ep.cumulative_weights, ep.previous_weights
        return [(w * (ep.rewards - q) + w_prev * v, None)]


class WeightedDoublyRobust(RatioEstimator):
    name = "wdr"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray | None]]:
        q, v = _models(ep, self.name)
        w, w_prev = ep.cumulative_weights, ep.previous_weights
        # After an episode ends its v is 0, so it adds only to the step's normaliser, as in WPDIS.
        return [(w * (ep.rewards - q), w), (w_prev * v, w_prev)]


class DirectMethod(RatioEstimator):
    """The model's own value of each episode's first state, E_pi Q(s_0, .)."""

    name = "dm"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray | None]]:
        _, v = _models(ep, self.name)
        first = np.zeros_like(v)
        first[:, 0] = v[:, 0]
        return [(first, None)]

    def weights(self, ep: Episodes) -> np.ndarray:
        return np.ones(ep.n)


ESTIMATORS: dict[str, type[RatioEstimator]] = {
    cls.name: cls
    for cls in (BehaviorValue, TrajectoryIS, WeightedIS, PerDecisionIS, WeightedPerDecisionIS, DirectMethod,
                DoublyRobust, WeightedDoublyRobust)
}
IS_ESTIMATORS = ("behavior", "is", "wis", "pdis", "wpdis")
DR_ESTIMATORS = ("dm", "dr", "wdr")
