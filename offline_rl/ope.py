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
where q = Q(s_t, a_t) and v = E_pi Q(s_t, .) come from a model of the target policy's value.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def ratios(self) -> np.ndarray:
        return self.target_probs / self.behavior_probs

    @property
    def cumulative_weights(self) -> np.ndarray:
        return np.cumprod(self.ratios, axis=1)

    @property
    def trajectory_weights(self) -> np.ndarray:
        return self.cumulative_weights[:, -1]

    @property
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

    def to_json(self) -> dict[str, float | str | int]:
        return dict(self.__dict__)


class RatioEstimator:
    """Base: subclasses define the (numerator, denominator) matrix pairs of their ratio terms."""

    name = "ratio"

    def __init__(self, gamma: float = 1.0):
        if not 0.0 <= gamma <= 1.0:
            raise ValueError("gamma must be in [0, 1]")
        self.gamma = gamma

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def weights(self, ep: Episodes) -> np.ndarray:
        """The per-episode weights the diagnostics describe."""
        return ep.trajectory_weights

    def _combine(self, num: np.ndarray, den: np.ndarray) -> np.ndarray:
        discount = self.gamma ** np.arange(num.shape[-1])
        with np.errstate(invalid="ignore", divide="ignore"):
            per_step = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        return per_step @ discount

    def estimate_policy_value(self, ep: Episodes) -> float:
        return float(sum(self._combine(num.sum(axis=0), den.sum(axis=0)) for num, den in self.terms(ep)))

    def estimate_interval(
        self, ep: Episodes, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
    ) -> tuple[float, float]:
        """Percentile bootstrap over episodes."""
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(ep.n, np.full(ep.n, 1.0 / ep.n), size=n_bootstrap).astype(np.float64)
        values = sum(self._combine(counts @ num, counts @ den) for num, den in self.terms(ep))
        alpha = (1.0 - confidence) / 2.0
        low, high = np.quantile(values, [alpha, 1.0 - alpha])
        return float(low), float(high)

    def estimate(self, ep: Episodes, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0) -> Estimate:
        low, high = self.estimate_interval(ep, n_bootstrap, confidence, seed)
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
        )


class BehaviorValue(RatioEstimator):
    name = "behavior"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(ep.rewards, np.ones_like(ep.rewards))]

    def weights(self, ep: Episodes) -> np.ndarray:
        return np.ones(ep.n)


class TrajectoryIS(RatioEstimator):
    name = "is"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray]]:
        w = ep.trajectory_weights[:, None]
        return [(w * ep.rewards, np.ones_like(ep.rewards))]


class WeightedIS(RatioEstimator):
    name = "wis"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray]]:
        w = np.broadcast_to(ep.trajectory_weights[:, None], ep.rewards.shape)
        return [(w * ep.rewards, np.array(w))]


class PerDecisionIS(RatioEstimator):
    name = "pdis"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(ep.cumulative_weights * ep.rewards, np.ones_like(ep.rewards))]


class WeightedPerDecisionIS(RatioEstimator):
    name = "wpdis"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray]]:
        w = ep.cumulative_weights
        return [(w * ep.rewards, w)]


def _models(ep: Episodes, name: str) -> tuple[np.ndarray, np.ndarray]:
    if ep.q_hat is None or ep.v_hat is None:
        raise OPEInputError(f"{name} needs q_hat and v_hat")
    return ep.q_hat, ep.v_hat


class DoublyRobust(RatioEstimator):
    name = "dr"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray]]:
        q, v = _models(ep, self.name)
        w, w_prev = ep.cumulative_weights, ep.previous_weights
        return [(w * (ep.rewards - q) + w_prev * v, np.ones_like(ep.rewards))]


class WeightedDoublyRobust(RatioEstimator):
    name = "wdr"

    def terms(self, ep: Episodes) -> list[tuple[np.ndarray, np.ndarray]]:
        q, v = _models(ep, self.name)
        w, w_prev = ep.cumulative_weights, ep.previous_weights
        # After an episode ends its v is 0, so it adds only to the step's normaliser, as in WPDIS.
        return [(w * (ep.rewards - q), w), (w_prev * v, w_prev)]


ESTIMATORS: dict[str, type[RatioEstimator]] = {
    cls.name: cls
    for cls in (BehaviorValue, TrajectoryIS, WeightedIS, PerDecisionIS, WeightedPerDecisionIS, DoublyRobust,
                WeightedDoublyRobust)
}
IS_ESTIMATORS = ("behavior", "is", "wis", "pdis", "wpdis")
DR_ESTIMATORS = ("dr", "wdr")
