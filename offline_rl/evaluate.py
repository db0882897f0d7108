"""Evaluate policies on the held-out day: the OPE table the gate and the report read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hintrl.config import OPEConfig
from offline_rl.dataset import Transitions
from offline_rl.ope import ESTIMATORS, BehaviorValue, Episodes, Estimate, OPEInputError
from offline_rl.policies import Policy, probability_of

GATE_ESTIMATOR = "wpdis"
REPORTED_ESTIMATORS = ("wpdis", "pdis", "wis", "is")


@dataclass(frozen=True)
class PolicyEvaluation:
    policy: str
    estimates: dict[str, Estimate]

    def to_json(self) -> dict:
        return {"policy": self.policy, "estimates": {k: v.to_json() for k, v in self.estimates.items()}}


def check_logged_actions(data: Transitions) -> None:
    in_mask = data.masks[np.arange(len(data)), data.actions] > 0.5
    if not in_mask.all():
        raise OPEInputError(f"{int((~in_mask).sum())} logged actions are outside their step's candidates")


def _episodes(data: Transitions, target_probs: np.ndarray) -> Episodes:
    return Episodes.from_steps(data.episode_ids, data.steps, data.rewards, data.propensities, target_probs)


def evaluate_behavior(data: Transitions, cfg: OPEConfig) -> PolicyEvaluation:
    ep = _episodes(data, data.propensities)
    est = BehaviorValue(cfg.gamma).estimate(ep, cfg.n_bootstrap, cfg.confidence, cfg.seed)
    return PolicyEvaluation("behavior", {"behavior": est})


def evaluate_policy(name: str, policy: Policy, data: Transitions, cfg: OPEConfig) -> PolicyEvaluation:
    """Every reported estimator for `policy`, with pi evaluated at the logged action."""
    check_logged_actions(data)
    ep = _episodes(data, probability_of(policy, data.observations, data.actions))
    return PolicyEvaluation(
        name,
        {est: ESTIMATORS[est](cfg.gamma).estimate(ep, cfg.n_bootstrap, cfg.confidence, cfg.seed) for est in REPORTED_ESTIMATORS},
    )
