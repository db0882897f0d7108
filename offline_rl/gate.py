"""The promotion gate: a pure decision from OPE estimates on the held-out day.

The challenger is promoted only when the lower bound of its interval (the configured estimator)
beats both the logged behaviour's value and the current champion's estimate on the same data (each
by a margin), with enough effective sample size, no importance weight above the limit, and no
guardrail metric (a reward component such as purchases) falling more than allowed below
behaviour. Anything missing or non-finite fails closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hintrl.config import GateConfig
from offline_rl.ope import Estimate


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return ("PROMOTE: " if self.promote else "REJECT: ") + "; ".join(self.reasons)


def _finite(*values: float | None) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def decide(
    challenger: Estimate | None,
    behavior: Estimate | None,
    champion: Estimate | None,
    cfg: GateConfig,
    champion_error: str | None = None,
    guardrails: dict[str, tuple[Estimate, Estimate]] | None = None,
) -> GateDecision:
    """`champion` None with no `champion_error` means there is no champion yet. `guardrails` maps
    each reward component of `cfg.guardrails` to (challenger's estimate, behaviour's value)."""
    if challenger is None or behavior is None:
        return GateDecision(False, ["missing challenger or behaviour estimate: fail closed"])
    low = challenger.low if cfg.bound == "bootstrap" else challenger.bernstein_low
    label = "lower bound" if cfg.bound == "bootstrap" else "Bernstein lower bound"
    if not _finite(challenger.value, low, challenger.high, behavior.value):
        return GateDecision(False, ["non-finite estimate: fail closed"])
    if champion_error:
        return GateDecision(False, [f"champion could not be evaluated on the same data ({champion_error}): fail closed"])
    failures, passes = [], []
    bar = behavior.value + cfg.min_margin_over_behavior
    text = f"{challenger.name} {label} {low:.4f} vs behaviour {behavior.value:.4f} + margin {cfg.min_margin_over_behavior:g}"
    (passes if low > bar else failures).append(text)
    if champion is None:
        passes.append("no current champion")
    elif not _finite(champion.value):
        failures.append("champion estimate is not finite: fail closed")
    else:
        bar = champion.value + cfg.min_margin_over_champion
        text = f"{challenger.name} {label} {low:.4f} vs champion {champion.value:.4f} + margin {cfg.min_margin_over_champion:g}"
        (passes if low > bar else failures).append(text)
    ess_text = f"effective sample size {challenger.effective_sample_size:.0f} vs minimum {cfg.min_effective_sample_size:g}"
    (passes if challenger.effective_sample_size >= cfg.min_effective_sample_size else failures).append(ess_text)
    if cfg.max_weight > 0:
        text = f"largest weight {challenger.max_weight:.2f} vs maximum {cfg.max_weight:g}"
        (passes if _finite(challenger.max_weight) and challenger.max_weight <= cfg.max_weight else failures).append(text)
    for component, max_drop in sorted(cfg.guardrails.items()):
        pair = (guardrails or {}).get(component)
        if pair is None or not _finite(pair[0].value, pair[1].value):
            failures.append(f"guardrail {component}: no finite estimate: fail closed")
            continue
        mine, logged = pair
        text = f"guardrail {component}: {mine.value:.4f} vs behaviour {logged.value:.4f} - allowed drop {max_drop:g}"
        (passes if mine.value >= logged.value - max_drop else failures).append(text)
    if failures:
        return GateDecision(False, [f"failed: {f}" for f in failures])
    return GateDecision(True, [f"passed: {p}" for p in passes])
