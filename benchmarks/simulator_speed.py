"""Simulator speed and memory against issue 3's targets.

    .venv/bin/python benchmarks/simulator_speed.py write --page-views 1000000
    .venv/bin/python benchmarks/simulator_speed.py rollout --sessions 100000
    .venv/bin/python benchmarks/simulator_speed.py rollout --sessions 100000 --action-space large --policy oracle
    .venv/bin/python benchmarks/simulator_speed.py memory --page-views 100000 500000 1000000

write:   page views per second writing all raw tables of one day to a temporary lake (target: 1M in 60 s)
rollout: sessions per second rolling out a policy, by default a masked DQN network (target: 100,000
         sessions in 60 s); its weights are freshly initialised, which costs the same forward passes
         as trained ones
memory:  peak resident memory per size, each in a fresh process (target: linear, < 4 GiB at 5M)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time

# One user-day of the default world yields about 1.6 page views.
PAGE_VIEWS_PER_USER_DAY = 1.6


def world_for(page_views: int, action_space: str = "small"):  # type: ignore[no-untyped-def]
    from hintrl.config import HintrlConfig, SimulatorConfig

    cfg = HintrlConfig().replace(**SimulatorConfig.preset(action_space)).simulator
    return dataclasses.replace(cfg, n_users=max(1000, int(page_views / PAGE_VIEWS_PER_USER_DAY)))


def bench_write(page_views: int, action_space: str = "small") -> dict:
    from hintrl.lake import Lake
    from simulator.writer import simulate_to_lake

    cfg = world_for(page_views, action_space)
    lake_dir = tempfile.mkdtemp(prefix="hintrl-bench-lake-")
    start = time.perf_counter()
    rows = simulate_to_lake(cfg, Lake(lake_dir), "2026-11-01", 1, progress=lambda _: None)
    seconds = time.perf_counter() - start
    shutil.rmtree(lake_dir, ignore_errors=True)
    pv = rows["search_pv"]
    return {"action_space": action_space, "page_views": pv, "user_actions": rows["user_action"], "seconds": round(seconds, 1),
            "page_views_per_s": round(pv / seconds), "seconds_per_1M": round(seconds * 1e6 / pv, 1),
            "ratio_to_target_60s_per_1M": round(seconds * 1e6 / pv / 60.0, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _random_masked_dqn(state_dim: int, n_actions: int):  # type: ignore[no-untyped-def]
    import d3rlpy

    from offline_rl.masked_q import (
        MaskedMeanQFunctionFactory,
        MaskedStateEncoderFactory,
    )
    from offline_rl.policies import QSoftmaxPolicy

    algo = d3rlpy.algos.DoubleDQNConfig(
        encoder_factory=MaskedStateEncoderFactory(state_dim=state_dim, hidden_units=[64, 64]),
        q_func_factory=MaskedMeanQFunctionFactory(state_dim=state_dim),
    ).create(device="cpu:0")
    algo.create_impl((state_dim + n_actions,), n_actions)
    return QSoftmaxPolicy(algo, state_dim, 0.05, "dqn-untrained")


def bench_rollout(sessions: int, action_space: str, policy_name: str, policy_dir: str | None = None) -> dict:
    import torch

    from simulator.ground_truth import rollout
    from simulator.logging_policy import ServedPolicy
    from simulator.logs import Simulator

    torch.set_num_threads(2)
    # A day of the default world has about 0.35 active users x 1.4 sessions per user.
    cfg = dataclasses.replace(world_for(0, action_space), n_users=max(1000, int(sessions / (0.35 * 1.4))))
    policy: object = policy_name
    if policy_name == "dqn":
        if action_space != "small":
            raise SystemExit("the masked DQN network serves the small action space only")
        spec = Simulator(dataclasses.replace(cfg, n_users=10)).spec
        if policy_dir:  # a trained policy, e.g. .hintrl/staging/ds=2026-11-08/dqn after the main job
            from pathlib import Path

            from offline_rl.train import load_policy

            trained, _ = load_policy(Path(policy_dir))
            policy = ServedPolicy(trained, "dqn-trained")
        else:
            policy = ServedPolicy(_random_masked_dqn(spec.state_dim, spec.n_actions), "dqn")
    start = time.perf_counter()
    value = rollout(policy, cfg, "2026-11-01", 1)
    seconds = time.perf_counter() - start
    per_100k = seconds * 100_000 / value.n_sessions
    return {"action_space": action_space, "policy": policy_name, "sessions": value.n_sessions, "episodes": value.n_episodes, "page_views": value.n_page_views,
            "seconds": round(seconds, 1), "page_views_per_s": round(value.n_page_views / seconds),
            "seconds_per_100k_sessions": round(per_100k, 1), "ratio_to_target_60s": round(per_100k / 60.0, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    w = sub.add_parser("write")
    w.add_argument("--page-views", type=int, default=100_000)
    w.add_argument("--action-space", choices=["small", "large"], default="small")
    r = sub.add_parser("rollout")
    r.add_argument("--sessions", type=int, default=10_000)
    r.add_argument("--action-space", choices=["small", "large"], default="small")
    r.add_argument("--policy", choices=["dqn", "baseline", "oracle"], default="dqn")
    r.add_argument("--policy-dir", help="dqn: a trained staged policy folder instead of a fresh network")
    m = sub.add_parser("memory")
    m.add_argument("--page-views", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    args = parser.parse_args()
    if args.what == "write":
        print(json.dumps(bench_write(args.page_views, args.action_space)))
    elif args.what == "rollout":
        print(json.dumps(bench_rollout(args.sessions, args.action_space, args.policy, args.policy_dir)))
    else:
        rows = []
        for n in args.page_views:
            out = subprocess.run([sys.executable, __file__, "write", "--page-views", str(n)],
                                 check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.splitlines()[-1]))
        for row in rows:
            per_pv = row["peak_rss_mib"] * 1024 / row["page_views"]
            print(f"{row['page_views']:>9} page views: peak {row['peak_rss_mib']:>6} MiB ({per_pv:.2f} KiB per page view)")
        if len(rows) > 1:
            growth = (rows[-1]["peak_rss_mib"] - rows[0]["peak_rss_mib"]) / (rows[-1]["page_views"] - rows[0]["page_views"])
            print(f"marginal memory: {growth * 1024:.2f} KiB per page view; "
                  f"5M page views extrapolate to {rows[0]['peak_rss_mib'] + growth * (5e6 - rows[0]['page_views']):.0f} MiB (target < 4096)")


if __name__ == "__main__":
    main()
