"""Policy quality against issue 5's target, by simulator ground truth on the default world: CQL and
DQN reach at least 1.10 x the baseline bucket's true hint CTR and beat Thompson sampling (the
seed's: a Beta per hint type; per query and per gender beside it); the oracle's figure beside them.

    bash scripts/dev.sh main          # 7 days of logs, a nightly for 2026-11-08 (trains CQL and DQN)
    .venv/bin/python benchmarks/policy_quality.py --home .hintrl --ds 2026-11-08 --days 3

    # the large world (20,000 hint ids, the action-embedding network):
    H=.hintrl-large; hintrl simulate --home $H --ds 2026-11-01 --days 7 --action-space large
    hintrl nightly --home $H --ds 2026-11-08
    .venv/bin/python benchmarks/policy_quality.py --home $H --ds 2026-11-08 --days 3 --action-space large

Every policy of benchmarks/policy_set.py, plus the simulator's baseline (the logs' epsilon-greedy
bucket) and oracle, is rolled out for every user over `--days` days from `--ds` in the world that
wrote the logs; prints each true hint CTR with its 95% interval and its ratio to the baseline, as
drawn and as expected (each shown hint's click probability in place of its click), and a
verdict per trained algorithm on the expected figures: the 1.10x target, and which Thompson
samplings it beats.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import torch
    from policy_set import build_policies

    from hintrl.config import HintrlConfig, SimulatorConfig
    from simulator.ground_truth import rollout
    from simulator.logging_policy import ServedPolicy

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("HINTRL_HOME", ".hintrl"))
    parser.add_argument("--ds", default="2026-11-08", help="the nightly whose trained policies to measure")
    parser.add_argument("--days", type=int, default=3, help="days of rollout from --ds")
    parser.add_argument("--action-space", choices=["small", "large"], default="small",
                        help="the world the logs came from (`hintrl simulate --action-space`)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = HintrlConfig(home=Path(args.home)).replace(**SimulatorConfig.preset(args.action_space))
    built = build_policies(cfg, args.ds)
    results = {}
    for name in ("baseline", "oracle"):
        results[name] = rollout(name, cfg.simulator, args.ds, args.days, spec=built["spec"])
    for name, policy in built["policies"].items():
        results[name] = rollout(ServedPolicy(policy, name), cfg.simulator, args.ds, args.days, spec=built["spec"])
    ratios = {name: value.ratio_to(results["baseline"]) for name, value in results.items()}
    print(f"True hint CTR, {args.days} days from {args.ds}, every user (95% intervals; expected: each shown "
          "hint's click probability in place of its drawn click):")
    print("| policy | hint CTR | ratio to baseline | expected hint CTR | ratio to baseline |\n|---|---|---|---|---|")
    for name, value in sorted(results.items(), key=lambda kv: -kv[1].hint_ctr.value):
        ctr, expected = value.hint_ctr, value.expected_hint_ctr
        print(f"| {name} | {ctr.value:.4f} [{ctr.low:.4f}, {ctr.high:.4f}] | {ratios[name][0]:.3f} "
              f"| {expected.value:.4f} [{expected.low:.4f}, {expected.high:.4f}] | {ratios[name][1]:.3f} |")
    # The verdict reads the expected CTR: the drawn one's click noise can move a ratio by 0.02.
    expected_ctr = {name: value.expected_hint_ctr.value for name, value in results.items()}
    thompsons = {name: v for name, v in expected_ctr.items() if name.startswith("thompson")}
    verdict = {algo: {"expected_ratio_to_baseline": round(ratios[algo][1], 4),
                      "meets_1_10": ratios[algo][1] >= 1.10,
                      "beats_thompson": {name: expected_ctr[algo] > v for name, v in thompsons.items()}}
               for algo in cfg.train.algos}
    print(json.dumps({"verdict": verdict, "hint_ctr": {k: v.hint_ctr.value for k, v in results.items()},
                      "expected_hint_ctr": expected_ctr}))


if __name__ == "__main__":
    main()
