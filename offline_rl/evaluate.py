"""Evaluate policies on the held-out day: the OPE table the gate and the report read."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    # Guardrail metrics: per reward component, its per-episode value (the gate's estimator for a
    # target policy, the on-policy mean for behaviour).
    guardrails: dict[str, Estimate] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"policy": self.policy, "estimates": {k: v.to_json() for k, v in self.estimates.items()},
                "guardrails": {k: v.to_json() for k, v in self.guardrails.items()}}


def check_logged_actions(data: Transitions) -> None:
    in_mask = data.masks[np.arange(len(data)), data.actions] > 0.5
    if not in_mask.all():
        raise OPEInputError(f"{int((~in_mask).sum())} logged actions are outside their step's candidates")


def _episodes(data: Transitions, target_probs: np.ndarray, rewards: np.ndarray | None = None) -> Episodes:
    return Episodes.from_steps(data.episode_ids, data.steps, data.rewards if rewards is None else rewards,
                               data.propensities, target_probs)


def evaluate_behavior(data: Transitions, cfg: OPEConfig) -> PolicyEvaluation:
    """The logged behaviour's value, and of every reward component loaded with `data`."""
    def value(rewards: np.ndarray | None) -> Estimate:
        ep = _episodes(data, data.propensities, rewards)
        return BehaviorValue(cfg.gamma).estimate(ep, cfg.n_bootstrap, cfg.confidence, cfg.seed)

    return PolicyEvaluation("behavior", {"behavior": value(None)},
                            {c: value(r) for c, r in data.components.items()})


def evaluate_policy(name: str, policy: Policy, data: Transitions, cfg: OPEConfig,
                    guardrail_estimator: str = GATE_ESTIMATOR) -> PolicyEvaluation:
    """Every reported estimator for `policy`, with pi evaluated at the logged action, and the
    guardrail estimator on every reward component loaded with `data`."""
    check_logged_actions(data)
    target = probability_of(policy, data.observations, data.actions)
    ep = _episodes(data, target)
    guardrails = {
        c: ESTIMATORS[guardrail_estimator](cfg.gamma).estimate(_episodes(data, target, r), cfg.n_bootstrap, cfg.confidence, cfg.seed)
        for c, r in data.components.items()
    }
    return PolicyEvaluation(
        name,
        {est: ESTIMATORS[est](cfg.gamma).estimate(ep, cfg.n_bootstrap, cfg.confidence, cfg.seed) for est in REPORTED_ESTIMATORS},
        guardrails,
    )
