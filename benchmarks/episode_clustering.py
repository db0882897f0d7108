"""How much the OPE intervals' episode-level bootstrap understates the spread when a user's
episodes move together: per day of the transitions table, the variance of the logs' mean episode
return under a bootstrap over users (each drawn user brings all their episodes of the day) against
the bootstrap over episodes the estimators use (the design effect), and the interval width ratio
(its square root).

    .venv/bin/python benchmarks/episode_clustering.py --home .hintrl [--replicates 2000]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main() -> None:
    import numpy as np
    import pyarrow.dataset as pads

    from hintrl.config import HintrlConfig
    from hintrl.lake import Lake, filesystem

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("HINTRL_HOME", ".hintrl"))
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fs, path = filesystem(Lake(HintrlConfig(home=Path(args.home)).lake_uri).transitions_table())
    try:
        dataset = pads.dataset(path, filesystem=fs, format="parquet", partitioning="hive", exclude_invalid_files=True)
        table = dataset.to_table(columns=["ds", "episode_id", "user_id", "reward"]).to_pandas()
    except FileNotFoundError:
        table = None
    if table is None or table.empty:
        parser.error(f"no transitions under {args.home}: run `bash scripts/dev.sh main` first")
    rng = np.random.default_rng(args.seed)
    print("| ds | episodes | users | design effect | interval width ratio |\n|---|---|---|---|---|")
    effects = []
    for day, rows in table.groupby("ds"):
        episodes = rows.groupby("episode_id").agg(ret=("reward", "sum"), user=("user_id", "first"))
        returns = episodes["ret"].to_numpy()
        _, user_of = np.unique(episodes["user"].to_numpy(), return_inverse=True)
        n, n_users = len(returns), int(user_of.max()) + 1
        by_episode = returns[rng.integers(0, n, size=(args.replicates, n))].mean(axis=1).var()
        user_sum, user_count = np.bincount(user_of, weights=returns), np.bincount(user_of)
        drawn = rng.integers(0, n_users, size=(args.replicates, n_users))
        by_user = (user_sum[drawn].sum(axis=1) / user_count[drawn].sum(axis=1)).var()
        effects.append(by_user / by_episode)
        print(f"| {day} | {n} | {n_users} | {effects[-1]:.2f} | {np.sqrt(effects[-1]):.2f} |")
    print(f"design effect over {len(effects)} days: {min(effects):.2f}-{max(effects):.2f} "
          f"(interval widths x{np.sqrt(min(effects)):.2f}-{np.sqrt(max(effects)):.2f})")


if __name__ == "__main__":
    main()
