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
    """Steps sorted by (episode, step); observations carry the page's candidates after the state.

    Two candidate layouts, one per Q-network: `mask` (small catalogs, offline_rl/masked_q.py) keeps
    a uint8 candidate mask over the catalog and observations `[state, mask]`; `ids` (large
    catalogs, offline_rl/embedding_q.py) keeps the candidate ids padded with -1 and observations
    `[state, ids]`, so no array grows with the catalog.

    Stored compactly (training holds no other copy): float32 states, the candidates, int32
    episode codes (in episode-id order) and categorical bucket and stratum; the float32
    observation matrix is built only on request (`observations`), or a batch of rows at a time
    (`observation_rows`, the replay buffer)."""

    episode_ids: np.ndarray  # (n,) episode codes (or ids), equal within an episode
    steps: np.ndarray
    states: np.ndarray  # (n, state_dim) float32
    masks: np.ndarray | None  # (n, n_actions) 1 = candidate (uint8 when loaded); None in the ids layout
    actions: np.ndarray  # (n,) int64
    propensities: np.ndarray
    rewards: np.ndarray  # (n,) float32
    terminals: np.ndarray  # (n,) float32
    buckets: Any  # (n,) strings, or a pandas Categorical when loaded
    strata: Any
    feature_spec_version: str
    days: tuple[str, ...]
    components: dict[str, np.ndarray] = field(default_factory=dict)  # the reward components asked for
    candidate_ids: np.ndarray | None = None  # (n, max_candidates) ids padded with -1: the ids layout
    action_count: int = 0  # the catalog size in the ids layout
    queries: Any = None  # (n,) query ids (a pandas Categorical) when loaded `with_queries`

    def __post_init__(self) -> None:
        if (self.masks is None) == (self.candidate_ids is None):
            raise ValueError("Transitions need exactly one of masks (mask layout) and candidate_ids (ids layout)")
        if self.candidate_ids is not None and self.action_count <= 0:
            raise ValueError("the ids layout needs action_count, the catalog size")

    @property
    def layout(self) -> str:
        return "ids" if self.candidate_ids is not None else "mask"

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def observations(self) -> np.ndarray:
        return self.observation_rows(slice(None))

    def observation_rows(self, rows: Any) -> np.ndarray:
        """Observations of some rows (an index array, a slice, or the first n for an int)."""
        if isinstance(rows, int):
            rows = slice(0, rows)
        part = self.masks[rows] if self.candidate_ids is None else self.candidate_ids[rows]
        return np.concatenate([self.states[rows], part.astype(np.float32)], axis=1)

    @property
    def state_dim(self) -> int:
        return self.states.shape[1]

    @property
    def n_actions(self) -> int:
        return self.masks.shape[1] if self.masks is not None else self.action_count

    @property
    def observation_dim(self) -> int:
        return self.state_dim + (self.masks if self.masks is not None else self.candidate_ids).shape[1]  # type: ignore[union-attr]

    def padded_candidates(self, rows: Any = slice(None)) -> np.ndarray:
        """The candidate ids of some rows, `(rows, max_candidates)` padded with -1, in either layout."""
        if self.candidate_ids is not None:
            return np.asarray(self.candidate_ids[rows], dtype=np.int64)
        return mask_to_ids(self.masks[rows])  # type: ignore[index]

    def logged_in_candidates(self) -> np.ndarray:
        """Whether each logged action is among its step's candidates."""
        rows = np.arange(len(self))
        if self.masks is not None:
            return self.masks[rows, self.actions] > 0.5
        return (self.candidate_ids == self.actions[:, None]).any(axis=1)  # type: ignore[union-attr]

    @property
    def n_episodes(self) -> int:
        return len(np.unique(self.episode_ids))

    def episode_rows(self, episodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows of `episodes` (indexes in episode order; repeats allowed, as in a bootstrap
        resample) in the given order, and each row's position among those episodes."""
        starts = np.flatnonzero(np.r_[True, self.episode_ids[1:] != self.episode_ids[:-1]])
        lengths = np.diff(np.r_[starts, len(self)])[episodes]
        offsets = np.r_[0, np.cumsum(lengths)[:-1]]
        rows = np.repeat(starts[episodes] - offsets, lengths) + np.arange(int(lengths.sum()))
        return rows, np.repeat(np.arange(len(episodes), dtype=np.int32), lengths)

    def take_episodes(self, episodes: np.ndarray) -> "Transitions":
        """The steps of `episodes` (as `episode_rows`), each copy an episode of its own."""
        rows, episode_ids = self.episode_rows(episodes)
        return Transitions(
            episode_ids=episode_ids, steps=self.steps[rows],
            states=self.states[rows], masks=None if self.masks is None else self.masks[rows],
            actions=self.actions[rows], propensities=self.propensities[rows], rewards=self.rewards[rows],
            terminals=self.terminals[rows], buckets=self.buckets[rows], strata=self.strata[rows],
            feature_spec_version=self.feature_spec_version, days=self.days,
            components={k: v[rows] for k, v in self.components.items()},
            candidate_ids=None if self.candidate_ids is None else self.candidate_ids[rows], action_count=self.action_count,
            queries=None if self.queries is None else self.queries[rows],
        )

    def nbytes(self) -> int:
        """Bytes held by the arrays (what training keeps in memory)."""
        total = 0
        for value in (self.episode_ids, self.steps, self.states, self.actions, self.propensities,
                      self.rewards, self.terminals, *self.components.values()):
            total += np.asarray(value).nbytes
        total += (self.masks if self.masks is not None else self.candidate_ids).nbytes  # type: ignore[union-attr]
        for value in (self.buckets, self.strata):
            total += value.codes.nbytes if hasattr(value, "codes") else np.asarray(value).nbytes
        return total


LAYOUTS = ("mask", "ids")


def concat_transitions(parts: list[Transitions]) -> Transitions:
    """One table of several (e.g. the logs and redrawn days of them): each part's episodes stay
    episodes of their own (renumbered in part order), the days are the union. The parts must share
    the feature spec, the mask layout, the catalog and the reward components; queries are kept only
    when every part has them."""
    import pandas as pd

    if not parts:
        raise ValueError("nothing to concatenate")
    first = parts[0]
    for part in parts[1:]:
        if part.feature_spec_version != first.feature_spec_version:
            raise DataContractError(f"cannot join transitions of feature specs {first.feature_spec_version} "
                                    f"and {part.feature_spec_version}")
        if part.layout != "mask" or first.layout != "mask" or part.n_actions != first.n_actions:
            raise DataContractError("can only join transitions in the mask layout over the same catalog")
        if sorted(part.components) != sorted(first.components):
            raise DataContractError(f"cannot join transitions with reward components {sorted(first.components)} "
                                    f"and {sorted(part.components)}")
    episode_ids, offset = [], 0
    for part in parts:
        _, codes = np.unique(np.asarray(part.episode_ids), return_inverse=True)
        codes = codes.reshape(-1)  # rows stay grouped by episode, so each episode keeps one code
        episode_ids.append(codes + offset)
        offset += int(codes.max()) + 1 if len(codes) else 0

    def joined(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(p, name)) for p in parts])

    def labels(name: str) -> Any:
        values = [getattr(p, name) for p in parts]
        return pd.Categorical(np.concatenate([np.asarray(v, dtype=object) for v in values]))

    return Transitions(
        episode_ids=np.concatenate(episode_ids).astype(np.int32 if offset < 2**31 else np.int64),
        steps=joined("steps"), states=joined("states").astype(np.float32, copy=False), masks=joined("masks"),
        actions=joined("actions"), propensities=joined("propensities"),
        rewards=joined("rewards").astype(np.float32, copy=False), terminals=joined("terminals").astype(np.float32, copy=False),
        buckets=labels("buckets"), strata=labels("strata"), feature_spec_version=first.feature_spec_version,
        days=tuple(sorted({d for p in parts for d in p.days})),
        components={c: np.concatenate([p.components[c] for p in parts]) for c in first.components},
        queries=(pd.Categorical(np.concatenate([np.asarray(p.queries, dtype=object) for p in parts]))
                 if all(p.queries is not None for p in parts) else None),
    )


def mask_to_ids(masks: np.ndarray) -> np.ndarray:
    """Candidate masks `(n, n_actions)` as ids `(n, max candidates)`, ascending, padded with -1."""
    masks = np.asarray(masks) > 0.5
    width = max(int(masks.sum(axis=1).max(initial=0)), 1)
    rows, cols = np.nonzero(masks)
    slot = np.arange(len(rows)) - np.searchsorted(rows, rows)  # position within its row
    out = np.full((len(masks), width), -1, dtype=np.int64)
    out[rows, slot] = cols
    return out


def ids_to_mask(candidates: np.ndarray, n_actions: int, dtype: type = np.float32) -> np.ndarray:
    """Candidate ids `(n, width)`, padded with -1, as masks `(n, n_actions)`: `mask_to_ids` undone."""
    mask = np.zeros((len(candidates), n_actions), dtype=dtype)
    rows, slots = np.nonzero(candidates >= 0)
    mask[rows, candidates[rows, slots]] = 1
    return mask


def ids_dtype(n_actions: int) -> type:
    return np.int16 if n_actions <= np.iinfo(np.int16).max else np.int32


def _scan(lake: Lake, days: list[str], columns: list[str]):  # type: ignore[no-untyped-def]
    """Record batches of the days' transitions, file by file in path order (the same order on
    every pass)."""
    for day in days:
        fs, path = filesystem(lake.transitions(day))
        dataset = pads.dataset(path, filesystem=fs, format="parquet", exclude_invalid_files=True)
        for file in sorted(dataset.files):
            with fs.open_input_file(file) as handle:
                yield from pq.ParquetFile(handle).iter_batches(columns=columns, batch_size=65_536, use_threads=False)


def load_transitions(lake: Lake, days: list[str], n_actions: int, components: tuple[str, ...] = (),
                     layout: str = "mask", with_queries: bool = False) -> Transitions:
    """Transitions of `days` (with the named reward components) in the candidate `layout`, and with
    each step's query id (the query part of its episode id) when `with_queries`; fails when a day
    is missing, the days mix feature specs, or a candidate is outside the catalog.

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
    step = np.concatenate(steps)
    order = np.lexsort((step, codes))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)  # where each stored row goes

    out: dict[str, Any] = {"episode_ids": codes[order], "steps": step[order].astype(np.int32)}
    if with_queries:
        # An episode id is "session|query" (sql/transitions.sql): one split per episode, not per step.
        episode_query = pc.list_element(pc.split_pattern(encoded.dictionary, "|", max_splits=1), 1)
        query_codes, query_names = pd.factorize(np.asarray(episode_query.to_pylist(), dtype=object))
        out["queries"] = pd.Categorical.from_codes(query_codes[encoded.indices.to_numpy()][order], categories=query_names)
    del ids, encoded
    del codes, step
    if layout not in LAYOUTS:
        raise ValueError(f"unknown candidate layout {layout!r}: choose from {', '.join(LAYOUTS)}")
    states = None
    masks = np.zeros((n, n_actions), dtype=np.uint8) if layout == "mask" else None
    # The ids layout widens as longer candidate lists turn up (a few times at most).
    padded = np.full((n, 1), -1, dtype=ids_dtype(n_actions)) if layout == "ids" else None
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
        flat = candidates.flatten().to_numpy()
        if len(flat) and (flat.min() < 0 or flat.max() >= n_actions):
            raise DataContractError(f"candidates outside the catalog's hint types 0..{n_actions - 1} "
                                    f"(found {flat.min()}..{flat.max()}): rebuild the transitions with this catalog")
        if masks is not None:
            masks[np.repeat(rows, counts), flat] = 1
        else:
            assert padded is not None
            widest = int(counts.max(initial=0))
            if widest > padded.shape[1]:
                padded = np.pad(padded, ((0, 0), (0, widest - padded.shape[1])), constant_values=-1)
            offsets = candidates.offsets.to_numpy()
            slot = np.arange(len(flat)) - np.repeat(offsets[:-1] - offsets[0], counts)
            padded[np.repeat(rows, counts), slot] = flat
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
        components=parts, states=states, masks=masks, candidate_ids=padded, action_count=n_actions if padded is not None else 0,
        actions=actions, propensities=propensities, rewards=rewards,
        terminals=terminals, buckets=categorical["bucket"], strata=categorical["stratum"],
        feature_spec_version=next(iter(versions)), days=tuple(days), **out,
    )
