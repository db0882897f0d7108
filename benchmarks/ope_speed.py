"""OPE speed against issue 6's target: every estimator with 1,000 bootstrap replicates on 1 million
episodes in under 30 s on 2 cores.

    .venv/bin/python benchmarks/ope_speed.py --episodes 1000000 --horizon 5 --bootstrap 1000

Synthetic logged episodes of 1..horizon steps (rewards, behaviour and target probabilities, fitted
q_hat / v_hat), then `estimate_all` over behavior, is, wis, pdis, wpdis, dr and wdr: one shared set
of bootstrap replicates, drawn a chunk at a time. Prints seconds, the ratio to the target and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np


def synthetic_steps(n_episodes: int, horizon: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, horizon + 1, size=n_episodes)
    episode = np.repeat(np.arange(n_episodes), lengths)
    step = np.arange(len(episode)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    n = len(episode)
    behavior = rng.uniform(0.05, 1.0, size=n)
    target = np.clip(behavior * rng.lognormal(0.0, 0.5, size=n), 0.0, 1.0)
    reward = (rng.random(n) < 0.3).astype(np.float64)
    q_hat = np.clip(reward + rng.normal(0, 0.2, size=n), 0, None)
    return {"episode": episode, "step": step, "reward": reward, "behavior": behavior, "target": target,
            "q_hat": q_hat, "v_hat": q_hat * 0.9}


def main() -> None:
    from offline_rl.ope import DR_ESTIMATORS, IS_ESTIMATORS, Episodes, estimate_all

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    d = synthetic_steps(args.episodes, args.horizon)
    start = time.perf_counter()
    ep = Episodes.from_steps(d["episode"], d["step"], d["reward"], d["behavior"], d["target"], d["q_hat"], d["v_hat"])
    prepare_s = time.perf_counter() - start
    start = time.perf_counter()
    estimates = estimate_all(ep, IS_ESTIMATORS + DR_ESTIMATORS, 1.0, args.bootstrap)
    estimate_s = time.perf_counter() - start
    total = prepare_s + estimate_s
    print(json.dumps({
        "episodes": args.episodes, "steps": int(len(d["episode"])), "bootstrap": args.bootstrap,
        "estimators": list(estimates), "prepare_s": round(prepare_s, 1), "estimate_s": round(estimate_s, 1),
        "total_s": round(total, 1), "ratio_to_target_30s": round(total / 30.0, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "wpdis": {k: round(getattr(estimates["wpdis"], k), 4) for k in ("value", "low", "high")},
    }))


if __name__ == "__main__":
    main()
