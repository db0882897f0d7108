"""The transitions loader before streaming (whole Arrow table, sorted copy, dense float32 masks,
the observation matrix), kept only so benchmarks/train_memory.py can compare against it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from hintrl.lake import filesystem

COLUMNS = ["episode_id", "step", "state", "action", "propensity", "candidates", "reward", "terminal",
           "feature_spec_version", "bucket", "stratum", "reward_components"]


def load_table_path(lake, days, n_actions):  # type: ignore[no-untyped-def]
    tables = []
    for day in days:
        fs, path = filesystem(lake.transitions(day))
        tables.append(pads.dataset(path, filesystem=fs, format="parquet", exclude_invalid_files=True).to_table(columns=COLUMNS))
    table = pa.concat_tables(tables)
    order = np.lexsort((table.column("step").to_numpy(), table.column("episode_id").to_numpy(zero_copy_only=False)))
    table = table.take(pa.array(order))
    n = table.num_rows
    states = np.asarray(table.column("state").combine_chunks().flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    states = states.reshape(n, -1)
    candidates = table.column("candidates").combine_chunks()
    masks = np.zeros((n, n_actions), dtype=np.float32)
    rows = np.repeat(np.arange(n), np.diff(candidates.offsets.to_numpy()))
    masks[rows, candidates.flatten().to_numpy()] = 1.0
    return {
        "table": table, "states": states, "masks": masks, "observations": np.concatenate([states, masks], axis=1),
        "actions": table.column("action").to_numpy().astype(np.int64),
        "rewards": table.column("reward").to_numpy().astype(np.float32),
        "terminals": table.column("terminal").to_numpy(zero_copy_only=False).astype(np.float32),
        "episode_ids": table.column("episode_id").to_numpy(zero_copy_only=False), "state_dim": states.shape[1],
    }
