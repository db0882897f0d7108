"""Policy quality against what the nightly gate can certify: for each training variant (CQL alpha,
served temperature) and seed, the true hint CTR against the baseline's (simulator ground truth) and
the gate's view of the same policy on the held-out day (WPDIS, its effective sample size and its
lower bound, and the gate's own verdict: `offline_rl.gate.decide` against the logged behaviour, with
the guardrails and no champion); Thompson sampling beside them. The expected CTR ratio replaces
each shown hint's drawn click by its true click probability: the same expectation, less noise.
Each trained variant is served with and without the anchor to the logs (`--anchors`,
train.behavior_anchor: the softmax tilted by the behaviour model's log-probabilities).

    bash scripts/dev.sh main          # 7 days of logs, a nightly for 2026-11-08
    .venv/bin/python benchmarks/quality_frontier.py --home .hintrl --ds 2026-11-08 --days 5 \\
        --variant cql:0.1 --variant cql:0.03 --variant cql:0.01 --variant dqn --temperatures 0.02 0.03 0.05 \\
        --anchors 0 1 --seeds 1 2 3

A variant is `algo[:cql_alpha]`; each is trained on the nightly's training days with the
configured settings otherwise, once per seed, and served at every `--temperatures`. A sharper
policy (lower alpha or temperature) moves further from the logs: its true CTR may rise while the
held-out day's effective sample size falls below the gate's minimum (`gate.min_effective_sample_size`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import numpy as np
    import torch
    from served_quality import (
        ServedQuality,
        add_served_arguments,
        default_variants,
        parse_variant,
    )

    from feature_store.catalog import catalog_spec
    from hintrl.config import HintrlConfig
    from hintrl.lake import Lake
    from offline_rl.baselines import fit_thompson, state_segments
    from offline_rl.dataset import load_transitions
    from offline_rl.train import load_policy, train_policy

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_served_arguments(parser, days=5, set_help="e.g. ope.eval_days=2, train.train_days=5")
    parser.add_argument("--anchors", type=float, nargs="+", default=None,
                        help="train.behavior_anchor weights to serve each variant at (default: the configured one)")
    args = parser.parse_args()
    cfg = HintrlConfig(home=Path(args.home)).with_settings(dict(args.set), "--set")
    torch.set_num_threads(cfg.train.torch_threads)
    temperatures = args.temperatures or [cfg.train.temperature]
    anchors = args.anchors if args.anchors is not None else [cfg.train.behavior_anchor]
    if min(anchors) < 0:
        parser.error("--anchors must be >= 0")
    lake = Lake(cfg.lake_uri)
    window = cfg.nightly_window(args.ds)
    spec = catalog_spec(lake, cfg.features)
    layout = cfg.train.candidate_layout(spec.n_actions)  # the configured Q-network's (train.q_function)
    train = load_transitions(lake, window.train_days, spec.n_actions, ("hint_click",), layout, with_queries=True)
    quality = ServedQuality(cfg, lake, spec, args.ds, args.ds, args.days)
    measure = quality.measure

    rows = []
    segment_of, n_segments = state_segments([f.name for f in spec.state], ("gender_f", "gender_m"))
    for name, policy in (("thompson per type", fit_thompson(train, "type")),
                         ("thompson per gender", fit_thompson(train, "segment", segment_of=segment_of, n_segments=n_segments)),
                         ("thompson per query", fit_thompson(train, "query"))):
        policy.name = name
        rows.append({"variant": name, "temperature": None, "anchor": None, "runs": [measure(policy)]})
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variant or default_variants(cfg):
            algo, settings = parse_variant(variant)
            # Trained once per seed with the largest anchor, so that its behaviour model is staged;
            # the same Q-network and behaviour model are then served at every anchor weight.
            settings["behavior_anchor"] = max(anchors)
            runs: dict[tuple[float, float], list[dict]] = {(a, t): [] for a in anchors for t in temperatures}
            for seed in args.seeds:
                out = Path(tmp) / f"{algo}-{seed}"
                train_policy(algo, train, dataclasses.replace(cfg.train, seed=seed, **settings), out, progress=lambda m: None)
                policy, _ = load_policy(out)
                for a, t in runs:
                    policy.anchor_weight, policy.temperature, policy.name = a, t, f"{variant} anchor {a:g} t{t:g}"
                    runs[a, t].append(measure(policy))
                    print(f"{variant} seed {seed} anchor {a:g} temperature {t:g}: {runs[a, t][-1]}", flush=True)
            rows += [{"variant": variant, "temperature": t, "anchor": a, "runs": r} for (a, t), r in runs.items()]

    bar = quality.gate_bar
    print(f"\nTrue hint CTR / baseline's over {args.days} days from {args.ds}; the gate's {cfg.gate.estimator} on "
          f"{quality.eval_label} (its bar: behaviour {bar:.4f}, minimum ESS {cfg.gate.min_effective_sample_size:g}); "
          f"gate: promoted (P) or rejected (x) with no champion; per seed {args.seeds}:")
    print("| policy | anchor | temperature | CTR ratio (mean) | per seed | expected CTR ratio (mean) | per seed "
          "| ESS per seed | lower bound per seed | gate |\n|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        r = row["runs"]
        t = "sampled" if row["temperature"] is None else f"{row['temperature']:g}"
        anchor = "" if row["anchor"] is None else f"{row['anchor']:g}"
        print(f"| {row['variant']} | {anchor} | {t} | {np.mean([x['ratio'] for x in r]):.3f} | "
              + " ".join(f"{x['ratio']:.3f}" for x in r)
              + f" | {np.mean([x['expected_ratio'] for x in r]):.3f} | " + " ".join(f"{x['expected_ratio']:.3f}" for x in r)
              + " | " + " ".join(f"{x['ess']:.0f}" for x in r)
              + " | " + " ".join(f"{x['low']:.3f}" for x in r)
              + " | " + " ".join("P" if x["promoted"] else "x" for x in r) + " |")
    print(json.dumps({"baseline_hint_ctr": quality.baseline.hint_ctr.value,
                      "baseline_expected_hint_ctr": quality.baseline.expected_hint_ctr.value, "gate_bar": bar, "rows": rows}))


if __name__ == "__main__":
    main()
