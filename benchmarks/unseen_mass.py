"""What the weight mass a held-out day did not see does to the self-normalised estimators' lower
end, and why the interval leaves it there (offline_rl/ope.py, module docstring).

The upper end of is, wis, pdis and wpdis lets the missing mass (1 - the mean weight, per step)
earn the largest reward seen; the lower end of is and pdis lets it earn the smallest. The lower
end of wis and wpdis credits it the seen average, the estimators' own assumption. This prints,
for each policy of `policy_set.py` on each held-out day, what crediting it the smallest reward seen
would take off wis's and wpdis's lower bound, beside the gate's margin: wpdis's lower bound over
the logs' own value (the gate also asks for a margin over the champion).

    .venv/bin/python benchmarks/unseen_mass.py --home .hintrl --ds 2026-11-08 --days 2026-11-07 2026-11-08

The days must be in the home's transitions (`bash scripts/dev.sh main` writes 2026-11-01..07;
benchmarks/ope_accuracy.py's docstring carries the run further).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import torch
    from policy_set import build_policies

    from hintrl.config import HintrlConfig
    from hintrl.lake import Lake
    from offline_rl.dataset import load_transitions
    from offline_rl.evaluate import _episodes, logged_action_probabilities
    from offline_rl.ope import WeightedIS, WeightedPerDecisionIS, estimate_all

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("HINTRL_HOME", ".hintrl"))
    parser.add_argument("--ds", default="2026-11-08", help="the nightly whose trained policies to evaluate")
    parser.add_argument("--days", nargs="+", default=["2026-11-07"], help="held-out days in the home's transitions")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(2)
    cfg = HintrlConfig(home=Path(args.home))
    built = build_policies(cfg, args.ds)
    spec = built["spec"]
    print("day | policy | wpdis: lower bound, margin over the logs, lost to the smallest reward, ESS | "
          "wis: lower bound, lost, mean trajectory weight")
    for day in args.days:
        data = load_transitions(Lake(cfg.lake_uri), [day], spec.n_actions, with_queries=True)
        for name, policy in built["policies"].items():
            target, _ = logged_action_probabilities(policy, data)
            ep = _episodes(data, target)
            est = estimate_all(ep, ("behavior", "wis", "wpdis"), cfg.ope.gamma, args.bootstrap, cfg.ope.confidence, cfg.ope.seed)
            wpdis_lost = WeightedPerDecisionIS(cfg.ope.gamma).unseen_mass_shift(ep)[0]
            wis_lost = WeightedIS(cfg.ope.gamma).unseen_mass_shift(ep)[0]
            wpdis, wis = est["wpdis"], est["wis"]
            print(f"{day} | {name} | {wpdis.low:.4f}, {wpdis.low - est['behavior'].value:+.4f}, {wpdis_lost:.4f}, "
                  f"{wpdis.effective_sample_size:.0f} | {wis.low:.4f}, {wis_lost:.4f}, {ep.trajectory_weights.mean():.3f}",
                  flush=True)


if __name__ == "__main__":
    main()
