"""Training-data memory against issue 5's target: at most 1.3 x the raw float32 state size per
transition, from Parquet to the replay buffer d3rlpy trains on.

    .venv/bin/python benchmarks/train_memory.py --transitions 1000000

Writes a synthetic transitions partition with the contract's columns (the default feature spec's
state size, 8 hint types, 1..5-step episodes; or reads `--lake` and `--days`), then measures
  streamed  `load_transitions` + `ArrayReplayBuffer` (what `hintrl train` does), and
  table      the previous path: the whole Arrow table, a sorted copy, dense float32 masks and the
             observation matrix handed to d3rlpy's `MDPDataset`.
For each: bytes kept per transition and the peak while loading (numpy via tracemalloc plus Arrow's
memory pool), as ratios to the state's float32 bytes. Run it once per path (`--path`) for a clean
peak; without `--path` it runs both in child processes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tracemalloc

import numpy as np
import pyarrow as pa


def write_synthetic(lake_root: str, n: int, n_actions: int, state_dim: int, seed: int = 0) -> list[str]:
    from hintrl.lake import Lake
    from simulator.writer import write_partition

    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 6, size=n // 3 + 1)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n) + 1]
    lengths[-1] -= int(lengths.sum()) - n
    episode = np.repeat(np.arange(len(lengths)), lengths)
    step = np.concatenate([np.arange(k) for k in lengths])
    terminal = np.zeros(n, dtype=bool)
    terminal[np.cumsum(lengths) - 1] = True
    candidates = [np.flatnonzero(row) for row in rng.random((n, n_actions)) < 0.6]
    candidates = [c if len(c) else np.array([0]) for c in candidates]
    action = np.array([c[0] for c in candidates])
    order = rng.permutation(n)  # rows stored out of (episode, step) order, as Spark writes them
    table = pa.table({
        "episode_id": pa.array([f"s{e:09d}|q" for e in episode[order]]),
        "step": pa.array(step[order], pa.int32()),
        "state": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(n * state_dim, dtype=np.float32)[
            (order[:, None] * state_dim + np.arange(state_dim)).reshape(-1)]), state_dim).cast(pa.list_(pa.float32())),
        "action": pa.array(action[order], pa.int32()),
        "propensity": pa.array(np.full(n, 0.25)[order]),
        "candidates": pa.array([candidates[i].tolist() for i in order], pa.list_(pa.int32())),
        "reward": pa.array(rng.random(n).astype(np.float32)),
        "terminal": pa.array(terminal[order]),
        "feature_spec_version": pa.array(["bench"] * n),
        "bucket": pa.array(rng.choice(["baseline", "explore", "policy"], size=n)),
        "stratum": pa.array(rng.choice(["F|25-34|3", "M|25-34|3", "U|unknown|0"], size=n)),
        "reward_components": pa.array([[("hint_click", 1.0)]] * n, pa.map_(pa.string(), pa.float64())),
    })
    write_partition(table, Lake(lake_root).transitions("2026-11-01"))
    return ["2026-11-01"]


def measure(path: str, lake_root: str, days: list[str], n_actions: int) -> dict:
    import d3rlpy

    from hintrl.lake import Lake
    from offline_rl.dataset import load_transitions
    from offline_rl.replay import ArrayReplayBuffer

    pool = pa.default_memory_pool()
    tracemalloc.start()
    if path == "streamed":
        data = load_transitions(Lake(lake_root), days, n_actions)
        buffer = ArrayReplayBuffer(data)
        buffer.sample_transition_batch(256)
        kept = data.nbytes()
    else:
        sys.path.insert(0, "benchmarks")
        from train_memory_table import (
            load_table_path,  # the previous loader, kept for comparison
        )

        data = load_table_path(Lake(lake_root), days, n_actions)
        observations = data["observations"]
        dataset = d3rlpy.dataset.MDPDataset(observations=observations, actions=data["actions"].reshape(-1, 1),
                                            rewards=data["rewards"].reshape(-1, 1), terminals=data["terminals"],
                                            action_space=d3rlpy.ActionSpace.DISCRETE, action_size=n_actions)
        dataset.sample_transition_batch(256)
        kept = tracemalloc.get_traced_memory()[0] + pool.bytes_allocated()
    current, peak = tracemalloc.get_traced_memory()
    n = len(data) if path == "streamed" else len(data["actions"])
    state_bytes = (data.state_dim if path == "streamed" else data["state_dim"]) * 4
    return {"path": path, "transitions": n, "state_float32_bytes": state_bytes,
            "kept_bytes_per_transition": round(kept / n, 1), "kept_ratio": round(kept / n / state_bytes, 3),
            "peak_bytes_per_transition": round((peak + pool.max_memory()) / n, 1),
            "peak_ratio": round((peak + pool.max_memory()) / n / state_bytes, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--actions", type=int, default=8)
    parser.add_argument("--lake", help="an existing lake (default: write a synthetic partition)")
    parser.add_argument("--days", nargs="*", default=[])
    parser.add_argument("--path", choices=["streamed", "table"])
    args = parser.parse_args()
    if args.path:
        print(json.dumps(measure(args.path, args.lake, args.days, args.actions)))
        return
    from feature_store.registry import build_spec

    with tempfile.TemporaryDirectory() as tmp:
        lake, days = args.lake, args.days
        if not lake:
            lake = tmp
            days = write_synthetic(lake, args.transitions, args.actions, build_spec(list(range(args.actions))).state_dim)
        for path in ("streamed", "table"):
            out = subprocess.run([sys.executable, __file__, "--path", path, "--lake", lake, "--actions", str(args.actions),
                                  "--days", *days], capture_output=True, text=True, check=True)
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
