"""Read transitions partitions into the arrays training and evaluation use."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from hintrl.errors import DataContractError
from hintrl.lake import Lake, filesystem, partition_complete

COLUMNS = ["episode_id", "step", "state", "action", "propensity", "candidates", "reward", "terminal",
           "feature_spec_version", "bucket", "stratum", "reward_components"]


@dataclass
class Transitions:
    """Steps sorted by (episode, step); observations carry the candidate mask after the state."""

    episode_ids: np.ndarray
    steps: np.ndarray
    states: np.ndarray  # (n, state_dim) float32
    masks: np.ndarray  # (n, n_actions) float32
    actions: np.ndarray  # (n,) int64
    propensities: np.ndarray
    rewards: np.ndarray  # (n,) float32
    terminals: np.ndarray  # (n,) float32
    buckets: np.ndarray
    strata: np.ndarray
    feature_spec_version: str
    days: tuple[str, ...]
    components: dict[str, np.ndarray] = field(default_factory=dict)  # the reward components asked for

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def observations(self) -> np.ndarray:
        return np.concatenate([self.states, self.masks], axis=1)

    def observation_rows(self, n: int) -> np.ndarray:
        """The first n observations (without building the whole observation matrix)."""
        return np.concatenate([self.states[:n], self.masks[:n]], axis=1)

    @property
    def state_dim(self) -> int:
        return self.states.shape[1]

    @property
    def n_actions(self) -> int:
        return self.masks.shape[1]

    @property
    def n_episodes(self) -> int:
        return len(np.unique(self.episode_ids))


def load_transitions(lake: Lake, days: list[str], n_actions: int, components: tuple[str, ...] = ()) -> Transitions:
    """Transitions of `days` (with the named reward components); fails when a day is missing or the
    days mix feature specs."""
    tables = []
    for day in days:
        if not partition_complete(lake.transitions(day)):
            raise DataContractError(f"missing transitions for ds={day} ({lake.transitions(day)}): run build-mdp first")
        fs, path = filesystem(lake.transitions(day))
        tables.append(pads.dataset(path, filesystem=fs, format="parquet",
                                   exclude_invalid_files=True).to_table(columns=COLUMNS))
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise DataContractError(f"no transitions in ds {days[0]}..{days[-1]}")
    versions = sorted(set(table.column("feature_spec_version").to_pylist()))
    if len(versions) != 1:
        raise DataContractError(f"transitions of {days[0]}..{days[-1]} mix feature specs {versions}: rebuild them")
    order = np.lexsort((table.column("step").to_numpy(), table.column("episode_id").to_numpy(zero_copy_only=False)))
    table = table.take(pa.array(order))

    states = np.asarray(table.column("state").combine_chunks().flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    n = table.num_rows
    states = states.reshape(n, -1)
    candidates = table.column("candidates").combine_chunks()
    masks = np.zeros((n, n_actions), dtype=np.float32)
    rows = np.repeat(np.arange(n), np.diff(candidates.offsets.to_numpy()))
    masks[rows, candidates.flatten().to_numpy()] = 1.0
    parts = {}
    for name in components:
        values = pc.map_lookup(table.column("reward_components"), pa.scalar(name), "first")
        if values.null_count:
            raise DataContractError(f"reward component {name!r} is missing from {values.null_count} transitions")
        parts[name] = values.to_numpy().astype(np.float64)
    return Transitions(
        components=parts,
        episode_ids=table.column("episode_id").to_numpy(zero_copy_only=False),
        steps=table.column("step").to_numpy(),
        states=states,
        masks=masks,
        actions=table.column("action").to_numpy().astype(np.int64),
        propensities=table.column("propensity").to_numpy(zero_copy_only=False).astype(np.float64),
        rewards=table.column("reward").to_numpy().astype(np.float32),
        terminals=table.column("terminal").to_numpy(zero_copy_only=False).astype(np.float32),
        buckets=table.column("bucket").to_numpy(zero_copy_only=False),
        strata=table.column("stratum").to_numpy(zero_copy_only=False),
        feature_spec_version=versions[0],
        days=tuple(days),
    )
