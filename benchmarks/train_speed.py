"""Training throughput against issue 5's target: the project's trainer reaches at least 0.9 x the
steps per second of a bare d3rlpy `fit` on the same data and network.

    .venv/bin/python benchmarks/train_speed.py --transitions 200000 --steps 2000
    .venv/bin/python benchmarks/train_speed.py --action-space large --transitions 50000 --steps 300

Synthetic transitions shaped like the default world's (the feature spec's state size, 8 hint types,
5-step episodes, random candidate masks), or with `--action-space large` like the large world's
(20,000 hint ids in 16 families, 20..200 candidates a page, the action-embedding network). For each
algorithm: a bare `DiscreteCQL` / `DoubleDQN` `fit` on an `MDPDataset` with the same network
(d3rlpy's own update code, which reads the large network's dense Q output), then
`offline_rl.train.train_policy` (the nightly's trainer: the array replay buffer, and for the large
catalog the candidate-only updates of offline_rl/embedding_q.py) plain, with the MLflow logger
adapter, and with stratified batches. Steps/s are of the `fit` call alone; each variant runs `--repeat` times,
interleaved, and the median counts. Prints a JSON summary. Measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic(n: int, n_actions: int, state_dim: int, seed: int = 0, candidates: tuple[int, int] | None = None):  # type: ignore[no-untyped-def]
    """Random transitions; with `candidates` = (fewest, most) the ids layout with that many
    candidates a page, else the mask layout with each type a candidate with probability 0.7."""
    from offline_rl.dataset import Transitions, ids_dtype

    rng = np.random.default_rng(seed)
    steps = np.arange(n) % 5
    layout: dict = {}
    if candidates is None:
        masks = (rng.random((n, n_actions)) < 0.7).astype(np.float32)
        masks[np.arange(n), rng.integers(0, n_actions, size=n)] = 1.0
        cum = np.cumsum(masks, axis=1)
        pick = (rng.random(n) * masks.sum(axis=1)).astype(np.int64)
        actions = (cum > pick[:, None]).argmax(axis=1)
        layout["masks"] = masks
    else:
        counts = rng.integers(candidates[0], candidates[1] + 1, size=n)
        # Distinct ids per row: a random offset plus a random stride modulo the catalog.
        ids = (rng.integers(0, n_actions, size=(n, 1)) + rng.integers(1, 97, size=(n, 1)) * np.arange(candidates[1])) % n_actions
        ids = np.where(np.arange(candidates[1]) < counts[:, None], ids, -1)
        actions = ids[np.arange(n), (rng.random(n) * counts).astype(np.int64)]
        layout.update(masks=None, candidate_ids=ids.astype(ids_dtype(n_actions)), action_count=n_actions)
    strata = rng.choice(["F|25-34|3", "M|25-34|3", "U|unknown|0"], size=n, p=[0.3, 0.6, 0.1])
    return Transitions(
        episode_ids=(np.arange(n) // 5).astype(str), steps=steps, states=rng.random((n, state_dim), dtype=np.float32),
        **layout, actions=actions.astype(np.int64), propensities=np.full(n, 0.2),
        rewards=(rng.random(n) < 0.2).astype(np.float32), terminals=(steps == 4).astype(np.float32),
        buckets=np.full(n, "explore"), strata=np.repeat(strata[::5], 5)[:n], feature_spec_version="bench",
        days=("2026-11-01",),
    )


def bare_fit(name: str, data, cfg, steps: int) -> float:  # type: ignore[no-untyped-def]
    import d3rlpy

    from offline_rl.train import _algo_config

    d3rlpy.seed(cfg.seed)
    dataset = d3rlpy.dataset.MDPDataset(observations=data.observations, actions=data.actions.reshape(-1, 1),
                                        rewards=data.rewards.reshape(-1, 1), terminals=data.terminals,
                                        action_space=d3rlpy.ActionSpace.DISCRETE, action_size=data.n_actions)
    algo = _algo_config(name, cfg, data.state_dim, data.layout).create(device="cpu:0")
    start = time.perf_counter()
    algo.fit(dataset, n_steps=steps, n_steps_per_epoch=steps, show_progress=False,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    return steps / (time.perf_counter() - start)


def _large_slots(world: dict):  # type: ignore[no-untyped-def]
    from feature_store.registry import slots_for

    n, families = world["n_types"], world["n_families"]
    return slots_for(list(range(n)), [f"f{k % families}" for k in range(n)], per="family")


def main() -> None:
    import dataclasses

    import torch

    from feature_store.registry import build_spec
    from hintrl.config import SimulatorConfig, TrainConfig
    from offline_rl.registry import Registry
    from offline_rl.tracking import TrainingRun
    from offline_rl.train import train_policy

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transitions", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--action-space", choices=["small", "large"], default="small")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    world = {k.split(".", 1)[1]: v for k, v in SimulatorConfig.preset(args.action_space).items()}
    n_actions, state_dim = world["n_types"], build_spec(_large_slots(world) if args.action_space == "large" else list(range(world["n_types"]))).state_dim
    bounds = (world["min_candidates"], world["max_candidates"]) if args.action_space == "large" else None
    data = synthetic(args.transitions, n_actions, state_dim, candidates=bounds)
    cfg = TrainConfig(n_steps=args.steps, n_steps_per_epoch=args.steps)
    results = {"transitions": args.transitions, "state_dim": state_dim, "n_actions": n_actions, "layout": data.layout,
               "steps": args.steps}
    quiet = lambda _m: None  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(f"sqlite:///{tmp}/mlflow.db", "bench", "bench", f"{tmp}/artifacts")
        for name in ("dqn", "cql"):
            rates: dict[str, list[float]] = {}
            for attempt in range(args.repeat):  # interleaved, so drift in machine load hits every variant
                rates.setdefault("bare_fit", []).append(bare_fit(name, data, cfg, args.steps))
                plain = train_policy(name, data, cfg, Path(tmp) / f"{name}-plain", quiet)
                run = TrainingRun(registry, "2026-11-08", name, {"bench": True}, {})
                tracked = train_policy(name, data, cfg, Path(tmp) / f"{name}-tracked", quiet, run.adapter_factory(),
                                       run.run_id)
                stratified = train_policy(name, data, dataclasses.replace(cfg, stratum_mix={"F|*|*": 0.4, "M|*|*": 0.4}),
                                          Path(tmp) / f"{name}-stratified", quiet)
                for label, trained in (("trainer", plain), ("trainer_mlflow", tracked), ("trainer_stratified", stratified)):
                    rates.setdefault(label, []).append(args.steps / trained.seconds)
            bare = float(np.median(rates["bare_fit"]))
            row = {"bare_fit_steps_per_s": round(bare, 1)}
            for label in ("trainer", "trainer_mlflow", "trainer_stratified"):
                rate = float(np.median(rates[label]))
                row[f"{label}_steps_per_s"] = round(rate, 1)
                row[f"{label}_ratio"] = round(rate / bare, 3)
            results[name] = row
            print(f"{name} (median of {args.repeat}): " + ", ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
