"""How much of the oracle's lift each kind of knowledge buys: greedy policies that know the world's
true click model, but only through some of what drives it, rolled out for every user like the
policies in `policy_quality.py`. It bounds what a policy that learns from some features can reach:
a policy of gender alone (Thompson sampling per gender) cannot beat the gender-only ceiling however
much data it sees.

    .venv/bin/python benchmarks/oracle_ceilings.py --ds 2026-11-08 --days 10

Each ceiling ranks the open candidates by the click logit of a copy of the world in which what it
does not know is replaced by its population mean:
- gender: the type's base rate and the gender's preference (age and purchasing power at their
  mean, no individual taste, no query affinity, no recency);
- demographics: gender, age and purchasing power (the users' individual taste left out);
- demographics, query and recency: also the query's affinity to each hint and the user's recent
  clicks in the hint's slot (what the state's query CTRs and recent clicks proxy);
- the oracle: everything, individual taste included.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path


def main() -> None:
    import numpy as np

    from hintrl.config import HintrlConfig, setting_arg
    from simulator.ground_truth import rollout
    from simulator.logging_policy import OraclePolicy
    from simulator.world import World, build_world

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("HINTRL_HOME", ".hintrl"))
    parser.add_argument("--ds", default="2026-11-08", help="first day of the rollouts")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--set", action="append", type=setting_arg, metavar="SECTION.KEY=VALUE", default=[],
                        help="a setting of hintrl/config.py (e.g. a simulator.* setting of the world)")
    args = parser.parse_args()
    cfg = HintrlConfig(home=Path(args.home)).with_settings(dict(args.set), "--set")
    if cfg.simulator.action_space != "small":
        parser.error("the ceilings are defined for the small action space (per-type individual taste)")
    world = build_world(cfg.simulator)

    def knowing(demographics: bool, context: bool) -> World:
        """The world as a policy knowing only gender (plus age and purchasing power with
        `demographics`, plus query affinity and recency with `context`) sees it."""
        columns = [np.eye(3)[world.gender]] + ([world.age_z[:, None], world.power_z[:, None]] if demographics else [])
        design = np.concatenate(columns, axis=1)
        # The family preference's demographic part: its least-squares fit on what is known.
        coef, *_ = np.linalg.lstsq(design, world.family_pref, rcond=None)
        seen = dataclasses.replace(world, family_pref=design @ coef, type_noise=np.zeros_like(world.type_noise))
        if not demographics:
            seen.type_age_w = np.zeros_like(world.type_age_w)
            seen.type_power_w = np.zeros_like(world.type_power_w)
        if not context:
            seen.query_affinity = np.zeros_like(world.query_affinity)
            seen.recency_boost = 0.0
        return seen

    base = rollout("baseline", cfg.simulator, args.ds, args.days, world=world).hint_ctr.value
    ceilings = [("gender", knowing(False, False)), ("demographics", knowing(True, False)),
                ("demographics, query and recency", knowing(True, True)), ("oracle (everything)", world)]
    print(f"Greedy on the true click model, rolled out for every user over {args.days} days from {args.ds}; "
          f"baseline hint CTR {base:.4f}")
    print("| knows | true hint CTR | ratio to baseline |\n|---|---|---|")
    for name, seen in ceilings:
        policy = OraclePolicy(seen)
        policy.name = f"oracle knowing {name}"
        value = rollout(policy, cfg.simulator, args.ds, args.days, world=world).hint_ctr.value
        print(f"| {name} | {value:.4f} | {value / base:.3f} |", flush=True)


if __name__ == "__main__":
    main()
