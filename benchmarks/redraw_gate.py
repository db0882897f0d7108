"""The nightly's promotion gate asked about one redrawn day of logs (`Deployment.logged_redraw`), for
the benchmarks that measure how often it would promote a policy: the behaviour's value and its
guardrail components are estimated once per redraw, then each target policy's estimate goes to
`offline_rl.gate.decide` against them (no champion), as `hintrl promote` would send it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hintrl.config import HintrlConfig
from hintrl.rewards import reward
from offline_rl.gate import GateDecision, decide
from offline_rl.ope import ESTIMATORS, Episodes, Estimate


class RedrawGate:
    def __init__(self, steps: pd.DataFrame, components: dict[str, np.ndarray], cfg: HintrlConfig,
                 n_bootstrap: int, seed: int):
        """`steps` and `components` as `simulator.ground_truth.step_components` gives them."""
        self.cfg, self.n_bootstrap, self.seed = cfg, n_bootstrap, seed
        self.components = components
        self.rewards = reward(components, cfg.reward)
        self._episodes, self._pages = steps["episode"].to_numpy(), steps["page"].to_numpy()
        self.propensities = steps["propensity"].to_numpy()
        self.behavior = self.estimate("behavior", self.propensities)
        self._logged_guardrails = {c: self.estimate("behavior", self.propensities, components[c])
                                   for c in cfg.gate.guardrails}

    def estimate(self, estimator: str, target: np.ndarray, rewards: np.ndarray | None = None) -> Estimate:
        """`estimator` of the policy whose probabilities of the logged hints are `target`, on the
        configured reward or on `rewards` (a reward component)."""
        ep = Episodes.from_steps(self._episodes, self._pages, self.rewards if rewards is None else rewards,
                                 self.propensities, target)
        return ESTIMATORS[estimator](self.cfg.ope.gamma).estimate(ep, self.n_bootstrap, self.cfg.ope.confidence, self.seed)

    def decide(self, target: np.ndarray, challenger: Estimate | None = None) -> GateDecision:
        """The gate's decision on the target policy (its gate-estimator estimate computed here
        unless given), with its guardrail components estimated as the nightly does."""
        gate = self.cfg.gate
        challenger = challenger or self.estimate(gate.estimator, target)
        guardrails = {c: (self.estimate(gate.estimator, target, self.components[c]), self._logged_guardrails[c])
                      for c in gate.guardrails}
        return decide(challenger, self.behavior, None, gate, guardrails=guardrails)
