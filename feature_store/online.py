"""The online feature computer: from an event history, the feature columns the Spark jobs store.

It follows the definitions of `pipelines/long_term.py` and `pipelines/realtime.py`:
- long-term columns (user_lt, query_lt) of an event on day X count page views, hint shows and
  clicks of days before X, per user (with demographics from the profile) and per query;
- real-time columns (pv_rt) use the user's previous `window_pvs` page views in time order, whatever
  their day, the hints shown earlier in the same (session, query), and the user's last 5 actions
  and clicked items strictly before the page view.

Everything is array-based and works on batches, so the simulator can step hundreds of thousands of
users at once: users, queries, items and episodes are integer indices (the caller maps its ids),
and per-hint counts are kept per slot of `HintSlots` (type or family). Events must be observed in
time order; an action at the same ts as a page view comes after it. A user has one open episode at
a time: a page view of another (session, query) starts a new one, which is how the simulator and a
serving session work.

`columns()` returns numbers as 1-D arrays (unknown demographics as NaN) and the array columns padded:
`shown_in_session` with -1, `last5_action_types` with "", the `last5_click_item_*` columns with NaN
(`last5_click_n` says how many entries are real). `row()` turns one row back into the values Spark
stores. The state is built from these columns by `FeatureSpec.state_matrix`, the registry's single
definition of every element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from feature_store.registry import HintSlots
from hintrl.contracts import ACTION_TYPES
from hintrl.dates import shift

ACTION_CODES = {name: code for code, name in enumerate(ACTION_TYPES)}
_ACTION_NAMES = np.array(list(ACTION_TYPES) + [""])  # code -1 (no action) reads as ""
NO_ITEM = -1
UNKNOWN_ITEM = -2


@dataclass(frozen=True)
class Profiles:
    """Demographics per user index: gender "F"/"M"/"U", age and purchase power (NaN = unknown)."""

    gender: np.ndarray
    age: np.ndarray
    purchase_power: np.ndarray

    @classmethod
    def unknown(cls, n_users: int) -> "Profiles":
        return cls(np.full(n_users, "U"), np.full(n_users, np.nan), np.full(n_users, np.nan))


@dataclass(frozen=True)
class Items:
    """Price, category and conversion rate per item index."""

    price: np.ndarray
    category: np.ndarray
    conversion_rate: np.ndarray


class OnlineFeatures:
    def __init__(
        self,
        slots: HintSlots,
        n_users: int,
        n_queries: int,
        window_pvs: int = 100,
        max_shown: int = 20,
        profiles: Profiles | None = None,
        items: Items | None = None,
        query_category: np.ndarray | None = None,
        windows: tuple[int, ...] = (),
    ):
        self.slots = slots
        # Recent-window counts (`_7d`, `_30d`) keep every past day's counts, so they are computed
        # only when asked for; the state vector does not use them.
        self.windows = tuple(windows)
        self.query_category = (np.full(n_queries, np.nan) if query_category is None
                               else np.asarray(query_category, dtype=np.float64))
        self.slot_of_type = np.asarray(slots.slot_of_type, dtype=np.int64)
        self.n_slots = slots.n_slots
        self.window_pvs = window_pvs
        self.profiles = profiles or Profiles.unknown(n_users)
        self.items = items or Items(np.zeros(0), np.zeros(0), np.zeros(0))
        s = self.n_slots
        # Long-term counts per user and per query: [page views, shows per slot, clicks per slot],
        # before the current day and on it.
        self._user_before = np.zeros((n_users, 1 + 2 * s), dtype=np.int32)
        self._user_today = np.zeros_like(self._user_before)
        self._query_before = np.zeros((n_queries, 1 + 2 * s), dtype=np.int32)
        self._query_today = np.zeros_like(self._query_before)
        self._day: str | None = None
        self._past_days: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # day -> (user, query) counts of that day
        # The user's previous `window_pvs` page views as a ring: 0 = no hint, slot + 1 = shown,
        # -(slot + 1) = shown and clicked; the per-slot counts over it run as page views enter and leave.
        ring_dtype = np.int8 if s < 127 else np.int16 if s < 32767 else np.int32
        self._ring = np.zeros((n_users, window_pvs), dtype=ring_dtype)
        self._ring_head = np.zeros(n_users, dtype=np.int32)
        self._recent_clicks = np.zeros((n_users, s), dtype=np.int16)
        self._recent_shows = np.zeros((n_users, s), dtype=np.int16)
        # The open episode of each user and the hints shown in it.
        self._episode = np.full(n_users, -1, dtype=np.int64)
        self._shown = np.full((n_users, max_shown), -1, dtype=np.int32)
        self._n_shown = np.zeros(n_users, dtype=np.int32)
        # Most recent first, padded with -1.
        self._last_actions = np.full((n_users, 5), -1, dtype=np.int8)
        self._last_clicked = np.full((n_users, 5), NO_ITEM, dtype=np.int32)

    def start_day(self, ds: str) -> None:
        """Move to day `ds`: what was observed on earlier days becomes long-term history."""
        if self._day is not None and ds < self._day:
            raise ValueError(f"events must arrive in time order: day {ds} after {self._day}")
        if ds != self._day:
            if self.windows and self._day is not None:
                self._past_days[self._day] = (self._user_today.copy(), self._query_today.copy())
            self._user_before += self._user_today
            self._user_today[:] = 0
            self._query_before += self._query_today
            self._query_today[:] = 0
            self._day = ds

    def recent_clicks(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_slots): hint clicks per slot in each user's previous `window_pvs` page views."""
        return self._recent_clicks[users]

    def shown(self, users: np.ndarray, episodes: np.ndarray) -> np.ndarray:
        """(len(users), max_shown): hint types shown earlier in each row's episode, -1 padded."""
        same = self._episode[users] == episodes
        return np.where(same[:, None], self._shown[users], -1)

    def _count_columns(self, counts: np.ndarray, prefix: str, suffix: str = "") -> dict[str, np.ndarray]:
        s = self.n_slots
        cols = {
            f"{prefix}page_views{suffix}": counts[:, 0].astype(np.int64),
            f"{prefix}hint_shows{suffix}": counts[:, 1:1 + s].sum(axis=1, dtype=np.int64),
            f"{prefix}hint_clicks{suffix}": counts[:, 1 + s:].sum(axis=1, dtype=np.int64),
        }
        for i, x in enumerate(self.slots.suffixes):
            cols[f"{prefix}shows_{x}{suffix}"] = counts[:, 1 + i].astype(np.int64)
            cols[f"{prefix}clicks_{x}{suffix}"] = counts[:, 1 + s + i].astype(np.int64)
        return cols

    def _long_term(self, which: int, index: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
        before = (self._user_before, self._query_before)[which]
        cols = self._count_columns(before[index], prefix)
        for w in self.windows:
            assert self._day is not None, "start_day() first"
            first = shift(self._day, -w)
            window = np.zeros((len(index), before.shape[1]), dtype=np.int64)
            for day, counts in self._past_days.items():
                if first <= day < self._day:
                    window += counts[which][index]
            cols.update(self._count_columns(window, prefix, f"_{w}d"))
        return cols

    def columns(self, users: np.ndarray, queries: np.ndarray, episodes: np.ndarray, pages: np.ndarray) -> dict[str, np.ndarray]:
        """The user_lt, query_lt and pv_rt columns of a batch of page views about to happen."""
        users, queries = np.asarray(users, dtype=np.int64), np.asarray(queries, dtype=np.int64)
        p = self.profiles
        cols: dict[str, np.ndarray] = {
            "gender": p.gender[users],
            "age": p.age[users],
            "purchase_power": p.purchase_power[users],
            **self._long_term(0, users, ""),
            "query_category": self.query_category[queries],
            **self._long_term(1, queries, "query_"),
            "page": np.asarray(pages, dtype=np.int64),
            "shown_in_session": self.shown(users, np.asarray(episodes, dtype=np.int64)),
            "last5_action_types": _ACTION_NAMES[self._last_actions[users]],
        }
        clicked = self._last_clicked[users]
        known = clicked >= 0
        index = np.where(known, clicked, 0)
        for column, values in (("price", self.items.price), ("category", self.items.category),
                               ("conversion_rate", self.items.conversion_rate)):
            looked_up = values[index] if len(values) else np.zeros(index.shape)
            cols[f"last5_click_item_{column}"] = np.where(known, looked_up, np.nan).astype(np.float64)
        cols["last5_click_n"] = (clicked != NO_ITEM).sum(axis=1)
        recent_clicks, recent_shows = self._recent_clicks[users], self._recent_shows[users]
        for i, x in enumerate(self.slots.suffixes):
            cols[f"clicks_last100_{x}"] = recent_clicks[:, i].astype(np.int64)
            cols[f"shows_last100_{x}"] = recent_shows[:, i].astype(np.int64)
        return cols

    def observe(self, users: np.ndarray, queries: np.ndarray, episodes: np.ndarray, hints: np.ndarray,
                clicked: np.ndarray) -> None:
        """Record a batch of page views after they happened (each user at most once; hint -1 = none)."""
        users = np.asarray(users, dtype=np.int64)
        if len(np.unique(users)) != len(users):
            raise ValueError("a batch of page views holds each user at most once (observe them in time order)")
        queries, episodes = np.asarray(queries, dtype=np.int64), np.asarray(episodes, dtype=np.int64)
        hints, clicked = np.asarray(hints, dtype=np.int64), np.asarray(clicked, dtype=bool)
        shown = hints >= 0
        slot = np.where(shown, self.slot_of_type[np.where(shown, hints, 0)], 0)
        # The page view that leaves each user's window.
        head = self._ring_head[users]
        leaving = self._ring[users, head].astype(np.int64)
        gone = leaving != 0
        gone_slot = np.abs(leaving[gone]) - 1
        self._recent_shows[users[gone], gone_slot] -= 1
        self._recent_clicks[users[gone], gone_slot] -= (leaving[gone] < 0).astype(np.int16)
        code = np.where(shown, np.where(clicked, -(slot + 1), slot + 1), 0)
        self._ring[users, head] = code
        self._ring_head[users] = (head + 1) % self.window_pvs
        self._recent_shows[users[shown], slot[shown]] += 1
        self._recent_clicks[users[shown], slot[shown]] += clicked[shown].astype(np.int16)
        # Today's long-term counts (queries repeat within a batch, users do not).
        s = self.n_slots
        self._user_today[users, 0] += 1
        self._user_today[users[shown], 1 + slot[shown]] += 1
        self._user_today[users[shown], 1 + s + slot[shown]] += clicked[shown]
        np.add.at(self._query_today, (queries, 0), 1)
        np.add.at(self._query_today, (queries[shown], 1 + slot[shown]), 1)
        np.add.at(self._query_today, (queries[shown], 1 + s + slot[shown]), clicked[shown].astype(np.int32))
        # The hints shown in each user's open episode.
        new = self._episode[users] != episodes
        self._episode[users[new]] = episodes[new]
        self._shown[users[new]] = -1
        self._n_shown[users[new]] = 0
        su = users[shown]
        position = self._n_shown[su]
        if (position >= self._shown.shape[1]).any():
            raise ValueError(f"more than {self._shown.shape[1]} hints shown in one episode; raise max_shown")
        self._shown[su, position] = hints[shown]
        self._n_shown[su] += 1

    def observe_actions(self, users: np.ndarray, action_types: np.ndarray, items: np.ndarray) -> None:
        """Record user actions after they happened, in time order per user.

        `action_types` are codes of `ACTION_CODES`; `items` are item indices (`UNKNOWN_ITEM` for an
        item outside the catalog)."""
        users = np.asarray(users, dtype=np.int64)
        if len(users) == 0:
            return
        order = np.argsort(users, kind="stable")
        users, action_types, items = users[order], np.asarray(action_types)[order], np.asarray(items)[order]
        _push_recent(self._last_actions, users, action_types.astype(np.int8))
        clicks = action_types == ACTION_CODES["click"]
        _push_recent(self._last_clicked, users[clicks], items[clicks].astype(np.int32))

    @staticmethod
    def row(cols: dict[str, np.ndarray], i: int) -> dict[str, Any]:
        """Row i of a `columns()` batch as Spark stores it (lists unpadded, NaN as None)."""
        n = int(cols["last5_click_n"][i])
        out: dict[str, Any] = {}
        for name, values in cols.items():
            value = values[i]
            if name == "shown_in_session":
                out[name] = [int(v) for v in value if v >= 0]
            elif name == "last5_action_types":
                out[name] = [str(v) for v in value if v]
            elif name == "last5_click_item_category":
                out[name] = [None if np.isnan(v) else int(v) for v in value[:n]]
            elif name.startswith("last5_click_item_"):
                out[name] = [None if np.isnan(v) else float(v) for v in value[:n]]
            elif name == "gender":
                out[name] = str(value)
            elif name in ("age", "purchase_power", "query_category"):
                out[name] = None if np.isnan(value) else int(value)
            elif name != "last5_click_n":
                out[name] = int(value)
        return out


def _push_recent(recent: np.ndarray, users: np.ndarray, values: np.ndarray) -> None:
    """Push values (grouped by user, oldest first) onto each user's most-recent-first row of `recent`."""
    if len(users) == 0:
        return
    width = recent.shape[1]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    group_users = users[starts]
    taken = np.minimum(counts, width)
    j = np.arange(width)
    # new[g, j] = the j-th most recent value of group g (valid where j < taken[g])
    newest = starts + counts - 1
    new_index = np.clip(newest[:, None] - j[None, :], 0, None)
    new = values[new_index]
    old = recent[group_users]
    old_index = np.clip(j[None, :] - taken[:, None], 0, None)
    old_shifted = np.take_along_axis(old, old_index, axis=1)
    recent[group_users] = np.where(j[None, :] < taken[:, None], new, old_shifted)


def columns_from_rows(rows: Any, max_shown: int = 20) -> dict[str, np.ndarray]:
    """A `columns()` batch from stored feature rows (a DataFrame with the user_lt, query_lt and
    pv_rt columns, lists as lists, null/None where unknown), e.g. what a serving request carries."""
    n = len(rows)

    def padded(name: str, width: int, fill: Any, dtype: Any) -> np.ndarray:
        out = np.full((n, width), fill, dtype=dtype)
        for i, values in enumerate(rows[name] if name in rows else [None] * n):
            values = list(values) if values is not None else []
            if len(values) > width:
                raise ValueError(f"{name} has {len(values)} entries, at most {width} expected")
            out[i, : len(values)] = [fill if v is None else v for v in values]
        return out

    cols: dict[str, np.ndarray] = {}
    for name in rows.columns:
        if name in ("shown_in_session", "last5_action_types") or name.startswith("last5_click_item_"):
            continue
        if name == "gender":
            cols[name] = np.array([g or "U" for g in rows[name]])
        else:
            values = rows[name].to_numpy()
            if values.dtype.kind in "iufb" or values.dtype == object:
                try:
                    cols[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                except (TypeError, ValueError):
                    cols[name] = values
    cols["shown_in_session"] = padded("shown_in_session", max_shown, -1, np.int64)
    cols["last5_action_types"] = padded("last5_action_types", 5, "", "U8")
    for name in ("price", "category", "conversion_rate"):
        cols[f"last5_click_item_{name}"] = padded(f"last5_click_item_{name}", 5, np.nan, np.float64)
    clicks = rows["last5_click_item_price"] if "last5_click_item_price" in rows else [None] * n
    cols["last5_click_n"] = np.array([0 if v is None else len(v) for v in clicks])
    return cols
