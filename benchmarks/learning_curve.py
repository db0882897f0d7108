"""How policy quality grows with the logs: each variant trained on the nightly's training days plus
K independent redraws of each of them, for each K of `--redraws`, and measured as
`quality_frontier.py` measures it (true hint CTR over `--days` days from `--ds` against the
baseline's, and the gate's verdict on the real held-out day). A redraw is the day drawn once more
by the logging buckets (`Deployment.logged_redraw`: the users' histories are those of the logs, the
day's draws are new), so K redraws give K + 1 times the logged transitions of the same users and
days. Thompson sampling per gender, fitted on the same data, stands beside the trained policies.
Whether a policy falls short for want of data, or for something more data does not fix:

    bash scripts/dev.sh main          # 7 days of logs from 2026-11-01, a nightly for 2026-11-08
    .venv/bin/python benchmarks/learning_curve.py --home .hintrl --ds 2026-11-08 --days 10 \\
        --redraws 0 3 9 --variant cql:0.03 --variant dqn --temperatures 0.03 0.05 --seeds 1 2 3

A variant is `algo[:cql_alpha]`, trained with the configured settings otherwise (its number of
steps included, whatever the data's size) and served at every `--temperatures`. The small action
space only (the redrawn days are built in the mask layout), and no `train.stratum_mix` when K > 0
(a redrawn day's transitions carry no strata).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
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
    from hintrl.dates import parse_ds
    from hintrl.lake import Lake
    from offline_rl.baselines import fit_thompson, state_segments
    from offline_rl.dataset import concat_transitions, load_transitions
    from offline_rl.train import load_policy, train_policy
    from simulator.ground_truth import REDRAW_DAY_INDEX, Deployment, redraw_transitions

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_served_arguments(parser, days=10)
    parser.add_argument("--run", default="2026-11-01", help="first day of the run that wrote the logs")
    parser.add_argument("--redraws", type=int, nargs="+", default=[0, 3, 9],
                        help="redraws of each training day added to the logs (0: the logs alone)")
    args = parser.parse_args()
    cfg = HintrlConfig(home=Path(args.home)).with_settings(dict(args.set), "--set")
    if min(args.redraws) < 0:
        parser.error("--redraws must be >= 0")
    if cfg.simulator.action_space != "small":
        parser.error("the learning curve is built in the small action space (the mask layout)")
    if max(args.redraws) > 0 and cfg.train.stratum_mix:
        parser.error("train.stratum_mix needs strata, which redrawn days do not carry: unset it")
    torch.set_num_threads(cfg.train.torch_threads)
    temperatures = args.temperatures or [cfg.train.temperature]
    lake = Lake(cfg.lake_uri)
    window = cfg.nightly_window(args.ds)
    if parse_ds(window.train_days[0]) < parse_ds(args.run):
        parser.error(f"--run {args.run} is after the first training day {window.train_days[0]}")
    spec = catalog_spec(lake, cfg.features)
    if cfg.train.candidate_layout(spec.n_actions) != "mask":
        parser.error("the learning curve needs the masked Q-network (train.q_function)")
    logs = load_transitions(lake, window.train_days, spec.n_actions, ("hint_click",), "mask")
    quality = ServedQuality(cfg, lake, spec, args.ds, args.ds, args.days)

    started = time.time()
    redrawn: dict[str, list] = {day: [] for day in window.train_days}
    for day in window.train_days if max(args.redraws) else []:
        deployment = Deployment(cfg.simulator, args.run, (parse_ds(day) - parse_ds(args.run)).days + 1, spec=spec)
        for r in range(max(args.redraws)):
            frame = deployment.logged_redraw({}, REDRAW_DAY_INDEX + r, with_states=True)
            redrawn[day].append(redraw_transitions(frame, day, cfg.reward, spec.n_actions, spec.version, ("hint_click",)))
        print(f"{day}: {max(args.redraws)} redraws, {sum(len(t) for t in redrawn[day])} transitions "
              f"({time.time() - started:.0f} s)", flush=True)

    segment_of, n_segments = state_segments([f.name for f in spec.state], ("gender_f", "gender_m"))
    variants = args.variant or default_variants(cfg)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in sorted(set(args.redraws)):
            data = concat_transitions([logs] + [t for day in window.train_days for t in redrawn[day][:k]]) if k else logs
            print(f"K={k}: {len(data)} transitions, {data.n_episodes} episodes", flush=True)
            thompson = fit_thompson(data, "segment", segment_of=segment_of, n_segments=n_segments)
            thompson.name = "thompson per gender"
            rows.append({"redraws": k, "transitions": len(data), "variant": thompson.name, "temperature": None,
                         "runs": [quality.measure(thompson)]})
            for variant in variants:
                algo, settings = parse_variant(variant)
                runs: dict[float, list[dict]] = {t: [] for t in temperatures}
                for seed in args.seeds:
                    out = Path(tmp) / f"{k}-{algo}-{seed}"
                    train_policy(algo, data, dataclasses.replace(cfg.train, seed=seed, **settings), out, progress=lambda m: None)
                    policy, _ = load_policy(out)
                    for t in temperatures:
                        policy.temperature, policy.name = t, f"{variant} t{t:g}"
                        runs[t].append(quality.measure(policy))
                        r = runs[t][-1]
                        print(f"K={k} {variant} seed {seed} temperature {t:g}: ratio {r['ratio']:.4f}, ESS {r['ess']:.0f}, "
                              f"{'promoted' if r['promoted'] else 'refused: ' + '; '.join(r['failed'])}", flush=True)
                rows += [{"redraws": k, "transitions": len(data), "variant": variant, "temperature": t, "runs": r}
                         for t, r in runs.items()]

    print(f"\nTrue hint CTR / baseline's over {args.days} days from {args.ds}, trained on {window.train_days[0]}.."
          f"{window.train_days[-1]} plus K redraws of each day; the gate's {cfg.gate.estimator} on {quality.eval_label} "
          f"(bar {quality.gate_bar:.4f}, minimum ESS {cfg.gate.min_effective_sample_size:g}); per seed {args.seeds}; "
          f"{time.time() - started:.0f} s:")
    print("| K | transitions | policy | temperature | CTR ratio (mean) | per seed | ESS per seed | gate |\n"
          "|---|---|---|---|---|---|---|---|")
    for row in rows:
        r = row["runs"]
        t = "sampled" if row["temperature"] is None else f"{row['temperature']:g}"
        print(f"| {row['redraws']} | {row['transitions']:,} | {row['variant']} | {t} | {np.mean([x['ratio'] for x in r]):.3f} | "
              + " ".join(f"{x['ratio']:.3f}" for x in r) + " | " + " ".join(f"{x['ess']:.0f}" for x in r)
              + " | " + " ".join("P" if x["promoted"] else "x" for x in r) + " |")
    print(json.dumps({"baseline_hint_ctr": quality.baseline.hint_ctr.value,
                      "baseline_expected_hint_ctr": quality.baseline.expected_hint_ctr.value, "gate_bar": quality.gate_bar, "rows": rows}))


if __name__ == "__main__":
    main()
