"""What a served policy is worth and what the nightly gate makes of it, for the benchmarks that
train policies and compare them (quality_frontier, learning_curve): the true hint CTR of the policy
serving every user over some days, as a ratio to the baseline bucket's (simulator ground truth),
and the gate's view of it on the nightly's held-out days (its estimator, effective sample size and
lower bound, and `offline_rl.gate.decide` against the logged behaviour, guardrails included, no
champion). The held-out days, the behaviour's estimate and the baseline's truth are computed once.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from feature_store.registry import FeatureSpec
from hintrl.config import HintrlConfig, setting_arg
from hintrl.lake import Lake
from offline_rl.dataset import load_transitions
from offline_rl.evaluate import (
    evaluate_behavior,
    evaluate_policy,
    with_behavior_propensities,
)
from offline_rl.gate import decide
from simulator.ground_truth import rollout
from simulator.logging_policy import ServedPolicy


class ServedQuality:
    def __init__(self, cfg: HintrlConfig, lake: Lake, spec: FeatureSpec, nightly_ds: str, first_ds: str, days: int):
        """The held-out days of the nightly of `nightly_ds`; the truth over `days` days from `first_ds`."""
        self.cfg, self.spec, self.first_ds, self.days = cfg, spec, first_ds, days
        window = cfg.nightly_window(nightly_ds)
        self.eval_label = window.eval_label
        self.ope = dataclasses.replace(cfg.ope, fqe_steps=0)  # the gate's estimator needs no FQE
        self.held_out = with_behavior_propensities(load_transitions(
            lake, window.eval_days, spec.n_actions, tuple(sorted(cfg.gate.guardrails)), with_queries=True), self.ope)
        self.behavior = evaluate_behavior(self.held_out, self.ope)
        self.baseline = rollout("baseline", cfg.simulator, first_ds, days, spec=spec)

    @property
    def gate_bar(self) -> float:
        """The value the gate's lower bound must clear (no champion): the behaviour's plus the margin."""
        return self.behavior.estimates["behavior"].value + self.cfg.gate.min_margin_over_behavior

    def measure(self, policy: Any) -> dict:
        """`ratio` (true hint CTR / the baseline's), `expected_ratio` (the same with each shown
        hint's click probability in place of its drawn click: less noise, same expectation), and
        the gate's `ess`, `low`, `promoted` and the reasons it `failed` (empty when promoted) for a
        policy answering `candidate_probabilities` with a `name`."""
        truth = rollout(ServedPolicy(policy, policy.name), self.cfg.simulator, self.first_ds, self.days, spec=self.spec)
        gate_cfg = self.cfg.gate
        evaluation = evaluate_policy(policy.name, policy, self.held_out, self.ope, gate_cfg.estimator)
        gate = evaluation.estimates[gate_cfg.estimator]
        guardrails = {c: (evaluation.guardrails[c], self.behavior.guardrails[c]) for c in gate_cfg.guardrails}
        decision = decide(gate, self.behavior.estimates["behavior"], None, gate_cfg, guardrails=guardrails)
        failed = [r.removeprefix("failed: ") for r in decision.reasons if not decision.promote]
        ratio, expected_ratio = truth.ratio_to(self.baseline)
        return {"ratio": ratio, "expected_ratio": expected_ratio,
                "ess": gate.effective_sample_size, "low": gate.low,
                "promoted": decision.promote, "failed": failed}


def add_served_arguments(parser: argparse.ArgumentParser, days: int, set_help: str = "") -> None:
    """The options every benchmark that trains and serves policies takes: the home, the nightly,
    the days of truth, the variants (`algo[:cql_alpha]`), the temperatures, the seeds and settings."""
    parser.add_argument("--home", default=os.environ.get("HINTRL_HOME", ".hintrl"))
    parser.add_argument("--ds", default="2026-11-08", help="the nightly whose training and held-out days to use")
    parser.add_argument("--days", type=int, default=days, help="days of rollout from --ds for the truth")
    parser.add_argument("--variant", action="append", default=None, help="algo[:cql_alpha], repeatable")
    parser.add_argument("--temperatures", type=float, nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--set", action="append", type=setting_arg, metavar="SECTION.KEY=VALUE", default=[],
                        help="a setting of hintrl/config.py, as for hintrl" + (f" ({set_help})" if set_help else ""))


def default_variants(cfg: HintrlConfig) -> list[str]:
    """The nightly's algorithms as variants, CQL at its configured alpha."""
    return [f"{a}:{cfg.train.cql_alpha}" if a == "cql" else a for a in cfg.train.algos]


def parse_variant(variant: str) -> tuple[str, dict[str, float]]:
    """`algo[:cql_alpha]` (as `default_variants` writes it) as the algorithm and its train settings."""
    algo, _, alpha = variant.partition(":")
    return algo, {"cql_alpha": float(alpha)} if alpha else {}
