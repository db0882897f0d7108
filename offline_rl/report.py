"""The OPE report's plots, logged with each nightly run: what a reviewer looks at before trusting
the gate's numbers. They are drawn from the evaluate stage's report (staging ope.json)."""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_PLOTTED_TYPES = 30


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """{file name: matplotlib Figure}: estimates against behaviour, episode weights, action shares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    estimator = report.get("gate_estimator", "wpdis")
    evaluations = {e["policy"]: e for e in report["evaluations"]}
    behavior = evaluations["behavior"]["estimates"]["behavior"]
    policies = [p for p in evaluations if p != "behavior"]
    out = {}

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.axhspan(behavior["low"], behavior["high"], color="grey", alpha=0.25, label="behaviour 95% interval")
    ax.axhline(behavior["value"], color="grey", label="behaviour")
    for i, name in enumerate(policies):
        est = evaluations[name]["estimates"][estimator]
        ax.errorbar([i], [est["value"]], yerr=[[est["value"] - est["low"]], [est["high"] - est["value"]]], fmt="o", capsize=6)
    ax.set_xticks(range(len(policies)), policies)
    ax.set_ylabel(f"{estimator} estimate (95% interval)")
    ax.set_title(f"Held-out {report.get('eval_label', report['eval_day'])}: estimates against behaviour")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out["ope_estimates.png"] = fig

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in policies:
        hist = evaluations[name].get("weight_histogram")
        if hist:
            edges = np.asarray(hist["log10_edges"])
            ax.step(edges[:-1], hist["counts"], where="post", label=f"{name} ({hist['zero']:.0f} zero)")
    ax.set_xlabel("log10 episode importance weight")
    ax.set_ylabel("episodes")
    ax.set_title("Importance weight distribution")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out["ope_weights.png"] = fig

    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = ["behavior", *policies]
    width = 0.8 / len(names)
    logged = np.asarray(evaluations["behavior"].get("action_share") or [])
    # A large catalog shows its most-logged hint types, in logged order.
    shown = np.argsort(-logged, kind="stable")[:MAX_PLOTTED_TYPES] if logged.size > MAX_PLOTTED_TYPES else np.arange(logged.size)
    for i, name in enumerate(names):
        share = np.asarray(evaluations[name].get("action_share") or [])
        if share.size:
            ax.bar(np.arange(shown.size) + i * width, share[shown], width, label="logs" if name == "behavior" else name)
    if logged.size > MAX_PLOTTED_TYPES:
        ax.set_xticks(range(shown.size), [str(t) for t in shown], rotation=90, fontsize=5)
    ax.set_xlabel("hint type" if logged.size <= MAX_PLOTTED_TYPES else f"hint id (the {shown.size} most logged of {logged.size})")
    ax.set_ylabel("share of held-out steps")
    ax.set_title("Action distribution: each policy against the logs")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out["ope_actions.png"] = fig
    return out
