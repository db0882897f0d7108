"""Read transitions partitions into the arrays training and evaluation use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from hintrl.errors import DataContractError
from hintrl.lake import Lake, filesystem, partition_complete


@dataclass
class Transitions:
    """Steps sorted by (episode, step); observations carry the candidate mask after the state.

    Stored compactly (training holds no other copy): float32 states, a uint8 candidate mask, int32
    episode codes (in episode-id order) and categorical bucket and stratum; the float32
    observation matrix `[state, mask]` is built only on request (`observations`), or a batch of
    rows at a time (`observation_rows`, the replay buffer)."""

    episode_ids: np.ndarray  # (n,) episode codes (or ids), equal within an episode
    steps: np.ndarray
    states: np.ndarray  # (n, state_dim) float32
    masks: np.ndarray  # (n, n_actions) 1 = candidate (uint8 when loaded)
    actions: np.ndarray  # (n,) int64
    propensities: np.ndarray
    rewards: np.ndarray  # (n,) float32
    terminals: np.ndarray  # (n,) float32
    buckets: Any  # (n,) strings, or a pandas Categorical when loaded
    strata: Any
    feature_spec_version: str
    days: tuple[str, ...]
    components: dict[str, np.ndarray] = field(default_factory=dict)  # the reward components asked for

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def observations(self) -> np.ndarray:
        return self.observation_rows(slice(None))

    def observation_rows(self, rows: Any) -> np.ndarray:
        """Observations of some rows (an index array, a slice, or the first n for an int)."""
        if isinstance(rows, int):
            rows = slice(0, rows)
        return np.concatenate([self.states[rows], self.masks[rows].astype(np.float32)], axis=1)

    @property
    def state_dim(self) -> int:
        return self.states.shape[1]

    @property
    def n_actions(self) -> int:
        return self.masks.shape[1]

    @property
    def n_episodes(self) -> int:
        return len(np.unique(self.episode_ids))

    def nbytes(self) -> int:
        """Bytes held by the arrays (what training keeps in memory)."""
        total = 0
        for value in (self.episode_ids, self.steps, self.states, self.masks, self.actions, self.propensities,
                      self.rewards, self.terminals, *self.components.values()):
            total += np.asarray(value).nbytes
        for value in (self.buckets, self.strata):
            total += value.codes.nbytes if hasattr(value, "codes") else np.asarray(value).nbytes
        return total


def _scan(lake: Lake, days: list[str], columns: list[str]):  # type: ignore[no-untyped-def]
    """Record batches of the days' transitions, file by file in path order (the same order on
    every pass)."""
    for day in days:
        fs, path = filesystem(lake.transitions(day))
        dataset = pads.dataset(path, filesystem=fs, format="parquet", exclude_invalid_files=True)
        for file in sorted(dataset.files):
            with fs.open_input_file(file) as handle:
                yield from pq.ParquetFile(handle).iter_batches(columns=columns, batch_size=65_536, use_threads=False)


def load_transitions(lake: Lake, days: list[str], n_actions: int, components: tuple[str, ...] = ()) -> Transitions:
    """Transitions of `days` (with the named reward components); fails when a day is missing or the
    days mix feature specs.

    Streams: a first pass reads the sort keys and spec versions, a second pass scatters each record
    batch into preallocated arrays at its sorted position, so memory holds the result plus one batch
    (no table, no sorted copy, no separate observation matrix)."""
    import pandas as pd

    for day in days:
        if not partition_complete(lake.transitions(day)):
            raise DataContractError(f"missing transitions for ds={day} ({lake.transitions(day)}): run build-mdp first")
    ids, steps, versions = [], [], set()
    for batch in _scan(lake, days, ["episode_id", "step", "feature_spec_version"]):
        ids.append(batch.column(0))
        steps.append(batch.column(1).to_numpy())
        versions.update(pc.unique(batch.column(2)).to_pylist())
    n = sum(len(s) for s in steps)
    if n == 0:
        raise DataContractError(f"no transitions in ds {days[0]}..{days[-1]}")
    if len(versions) != 1:
        raise DataContractError(f"transitions of {days[0]}..{days[-1]} mix feature specs {sorted(versions)}: rebuild them")
    encoded = pa.chunked_array(ids).combine_chunks().dictionary_encode()
    # Episode codes ranked by id, so sorting by code sorts by episode id.
    rank = np.argsort(np.argsort(encoded.dictionary.to_numpy(zero_copy_only=False), kind="stable"))
    codes = rank[encoded.indices.to_numpy()].astype(np.int32)
    del ids, encoded
    step = np.concatenate(steps)
    order = np.lexsort((step, codes))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)  # where each stored row goes

    out: dict[str, Any] = {"episode_ids": codes[order], "steps": step[order].astype(np.int32)}
    del codes, step
    states = None
    masks = np.zeros((n, n_actions), dtype=np.uint8)
    actions = np.empty(n, dtype=np.int64)
    propensities = np.empty(n, dtype=np.float64)
    rewards = np.empty(n, dtype=np.float32)
    terminals = np.empty(n, dtype=np.float32)
    labels: dict[str, list[Any]] = {"bucket": [], "stratum": []}
    parts = {name: np.empty(n, dtype=np.float64) for name in components}
    offset = 0
    columns = ["state", "candidates", "action", "propensity", "reward", "terminal", "bucket", "stratum", "reward_components"]
    for batch in _scan(lake, days, columns):
        rows = position[offset:offset + batch.num_rows]
        offset += batch.num_rows
        state = batch.column(0)
        width = len(state[0]) if batch.num_rows else 0
        if states is None:
            states = np.empty((n, width), dtype=np.float32)
        values = state.flatten().to_numpy(zero_copy_only=False)
        states[rows] = np.asarray(values, dtype=np.float32).reshape(batch.num_rows, -1)
        candidates = batch.column(1)
        counts = np.diff(candidates.offsets.to_numpy())
        masks[np.repeat(rows, counts), candidates.flatten().to_numpy()] = 1
        actions[rows] = batch.column(2).to_numpy()
        propensities[rows] = batch.column(3).to_numpy(zero_copy_only=False)
        rewards[rows] = batch.column(4).to_numpy()
        terminals[rows] = batch.column(5).to_numpy(zero_copy_only=False)
        for name, index in (("bucket", 6), ("stratum", 7)):
            labels[name].append(pd.Series(batch.column(index).to_numpy(zero_copy_only=False), index=rows, dtype="category"))
        for name in components:
            values = pc.map_lookup(batch.column(8), pa.scalar(name), "first")
            if values.null_count:
                raise DataContractError(f"reward component {name!r} is missing from {values.null_count} transitions")
            parts[name][rows] = values.to_numpy(zero_copy_only=False)
    assert states is not None
    categorical = {}
    for name, series in labels.items():
        joined = pd.api.types.union_categoricals([s.array for s in series])
        index = np.concatenate([s.index.to_numpy() for s in series])
        codes = np.empty(n, dtype=joined.codes.dtype)
        codes[index] = joined.codes
        categorical[name] = pd.Categorical.from_codes(codes, categories=joined.categories)
    return Transitions(
        components=parts, states=states, masks=masks, actions=actions, propensities=propensities, rewards=rewards,
        terminals=terminals, buckets=categorical["bucket"], strata=categorical["stratum"],
        feature_spec_version=next(iter(versions)), days=tuple(days), **out,
    )
