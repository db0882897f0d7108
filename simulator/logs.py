"""Simulate days of traffic and write the raw tables of DESIGN.md's raw log contract.

A day is simulated for all users at once: each active user is a lane that walks through its
sessions, queries (episodes) and pages in time order, and every step of the loop advances every
lane by one page view. Users are independent within a day (their long-term features only change at
midnight), so this is the same process as simulating them one after another, with the policy,
click and feature computations batched over all lanes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_store.online import Items, OnlineFeatures, Profiles
from feature_store.registry import FeatureSpec, build_spec
from hintrl.config import SimulatorConfig
from hintrl.contracts import ACTION_TYPES, arrow_schema
from hintrl.dates import parse_ds
from simulator.logging_policy import BaselinePolicy, SimPolicy, StepBatch, UniformPolicy
from simulator.world import GENDERS, World, build_world

BUCKETS = ("baseline", "explore", "policy")
DAY_SECONDS = 86_400.0
# Session and episode numbers are unique across days: day index * this + number within the day.
_PER_DAY = 10**9


def ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """prefix + zero-padded number, e.g. ids("u", [7], 5) = ["u00007"]."""
    digits = pc.utf8_lpad(pa.array(np.asarray(numbers, dtype=np.int64)).cast(pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def query_id_array(numbers: np.ndarray) -> pa.Array:
    return ids("q", numbers, 4)


def _timestamps(ds: str, seconds: np.ndarray) -> pa.Array:
    midnight = dt.datetime.combine(parse_ds(ds), dt.time(0), tzinfo=dt.timezone.utc)
    micros = int(midnight.timestamp()) * 1_000_000 + np.floor(seconds * 1e6).astype(np.int64)
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"))


@dataclass
class DayLogs:
    """One simulated day as numeric columns, sorted by time; tables are built on demand, whole or in chunks."""

    ds: str
    day_index: int
    pv: dict[str, np.ndarray]  # seconds, user, session, query, page, bucket, hint, propensity, clicked, item_clicks, purchased, amount
    actions: dict[str, np.ndarray]  # seconds, user, session, kind, item
    policy_names: tuple[str, ...]  # per bucket code
    candidate_lists: pa.ListArray  # per query
    n_users: int

    @property
    def n_page_views(self) -> int:
        return len(self.pv["user"])

    def _day(self) -> str:
        return self.ds.replace("-", "")

    def _event_columns(self, c: dict[str, np.ndarray], start: int, prefix: str, width: int) -> dict[str, pa.Array]:
        """event_id (numbered from `start` in time order), ts, user_id and session_id of rows `c`."""
        return {
            "event_id": ids(f"{prefix}{self._day()}", np.arange(start, start + len(c["user"])), width),
            "ts": _timestamps(self.ds, c["seconds"]),
            "user_id": ids("u", c["user"], 5),
            "session_id": ids(f"s{self._day()}", c["session"], 7),
        }

    def _pv_table(self, rows: slice) -> pa.Table:
        c = {k: v[rows] for k, v in self.pv.items()}
        return pa.table(
            {
                **self._event_columns(c, rows.start or 0, "pv", 8),
                "query_id": query_id_array(c["query"]),
                "page": pa.array(c["page"], type=pa.int32()),
                "bucket": pa.array(BUCKETS).take(pa.array(c["bucket"])),
                "candidates": self.candidate_lists.take(pa.array(c["query"])),
                "hint_type": pa.array(c["hint"], type=pa.int32()),
                "propensity": pa.array(c["propensity"], type=pa.float64()),
                "policy_version": pa.array(self.policy_names).take(pa.array(c["bucket"])),
                "hint_clicked": pa.array(c["clicked"]),
                "item_clicks": pa.array(c["item_clicks"], type=pa.int32()),
                "purchased": pa.array(c["purchased"]),
                "purchase_amount": pa.array(c["amount"], type=pa.float64()),
            },
            schema=arrow_schema("search_pv"),
        )

    def _action_table(self, rows: slice) -> pa.Table:
        c = {k: v[rows] for k, v in self.actions.items()}
        return pa.table(
            {
                **self._event_columns(c, rows.start or 0, "ua", 9),
                "action_type": pa.array(ACTION_TYPES).take(pa.array(c["kind"])),
                "item_id": ids("i", c["item"], 5),
            },
            schema=arrow_schema("user_action"),
        )

    def batches(self, table: str, rows: int = 500_000) -> Iterator[pa.Table]:
        """The search_pv or user_action table in chunks of `rows` rows."""
        build, n = (self._pv_table, self.n_page_views) if table == "search_pv" else (self._action_table, len(self.actions["user"]))
        for start in range(0, max(n, 1), rows):
            yield build(slice(start, min(start + rows, n)))

    @property
    def search_pv(self) -> pa.Table:
        return self._pv_table(slice(0, self.n_page_views))

    @property
    def user_action(self) -> pa.Table:
        return self._action_table(slice(0, len(self.actions["user"])))

    def frame(self) -> pd.DataFrame:
        """The page views as numbers (ids unique across days), for measuring values quickly."""
        c = self.pv
        return pd.DataFrame({
            "event_id": np.arange(self.n_page_views) + self.day_index * _PER_DAY,
            "ts": c["seconds"] + self.day_index * DAY_SECONDS,
            "session_id": c["session"].astype(np.int64) + self.day_index * _PER_DAY,
            "query_id": c["query"],
            "page": c["page"],
            "bucket": np.array(BUCKETS)[c["bucket"]],
            "hint_type": c["hint"].astype(np.float64),
            "hint_clicked": c["clicked"],
            # Ground truth only (not a log column): what `clicked` was drawn from.
            "hint_click_probability": c["p_click"],
            "item_clicks": c["item_clicks"],
            "purchased": c["purchased"],
            "purchase_amount": c["amount"],
        })


def _columns_by_time(parts: list[dict[str, np.ndarray]], dtypes: dict[str, type]) -> dict[str, np.ndarray]:
    """The parts' columns joined and sorted by (seconds, user), one column at a time to bound memory."""
    columns: dict[str, np.ndarray] = {}
    for name, dtype in dtypes.items():
        columns[name] = np.concatenate([p.pop(name) for p in parts]).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
    order = np.lexsort((columns["user"], columns["seconds"]))
    for name in dtypes:
        columns[name] = columns[name][order]
    return columns


PV_DTYPES: dict[str, type] = {
    "seconds": np.float64, "user": np.int32, "session": np.int32, "query": np.int32, "page": np.int16,
    "bucket": np.int8, "hint": np.int32, "propensity": np.float64, "clicked": np.bool_, "item_clicks": np.int16,
    "purchased": np.bool_, "amount": np.float64, "p_click": np.float64,
}
ACTION_DTYPES: dict[str, type] = {"seconds": np.float64, "user": np.int32, "session": np.int32, "kind": np.int8, "item": np.int32}


class Simulator:
    """Runs the world day after day; users' histories (and so their features) carry across days.

    Users are split into buckets once: `explore` (uniform), `policy` (the given policy, when one is
    given) and `baseline` (the site's heuristic). Each page view is decided by the user's bucket
    policy with exact probabilities, which are logged as the propensity.
    """

    def __init__(self, cfg: SimulatorConfig, world: World | None = None, policy: SimPolicy | None = None,
                 spec: FeatureSpec | None = None):
        self.cfg = cfg
        self.world = world or build_world(cfg)
        rng = np.random.default_rng([cfg.seed, 1])
        draw = rng.random(cfg.n_users)
        policy_share = cfg.policy_share if policy is not None else 0.0
        self.user_bucket = np.where(
            draw < cfg.explore_share, BUCKETS.index("explore"),
            np.where(draw < cfg.explore_share + policy_share, BUCKETS.index("policy"), BUCKETS.index("baseline")),
        ).astype(np.int8)
        self.policies: dict[str, SimPolicy] = {
            "baseline": BaselinePolicy(self.world, cfg.baseline_epsilon), "explore": UniformPolicy(),
        }
        if policy is not None:
            self.policies["policy"] = policy
        w = self.world
        self.slots = w.slots
        self.spec = spec or build_spec(self.slots)
        self.online = OnlineFeatures(
            self.slots, cfg.n_users, cfg.n_queries, window_pvs=100, max_shown=cfg.max_pages,
            profiles=Profiles(GENDERS[w.gender], w.age.astype(np.float64), w.purchase_power.astype(np.float64)),
            items=Items(w.item_price, w.item_category.astype(np.float64), w.item_conversion),
            query_category=w.query_category,
        )
        self._slot_of_type = np.asarray(self.slots.slot_of_type, dtype=np.int64)
        # Items by category, as one array with offsets, to draw an item of a query's category.
        order = np.argsort(w.item_category, kind="stable")
        self._pool_items = order
        self._pool_sizes = np.bincount(w.item_category, minlength=10)
        self._pool_offsets = np.r_[0, np.cumsum(self._pool_sizes)[:-1]]
        n_cand = (w.query_candidates >= 0).sum(axis=1)
        self._candidate_lists = pa.ListArray.from_arrays(
            pa.array(np.r_[0, np.cumsum(n_cand)].astype(np.int32)),
            pa.array(w.query_candidates[w.query_candidates >= 0].astype(np.int32)),
        )

    @property
    def baseline(self) -> SimPolicy:
        return self.policies["baseline"]

    @property
    def explore(self) -> SimPolicy:
        return self.policies["explore"]

    def static_tables(self) -> dict[str, pa.Table]:
        w = self.world
        items = pa.table(
            {
                "item_id": ids("i", np.arange(len(w.item_price)), 5),
                "price": w.item_price,
                "category_id": w.item_category,
                "conversion_rate": w.item_conversion,
                "sales_volume": w.item_sales,
            },
            schema=arrow_schema("item"),
        )
        families = w.family_names
        catalog = pa.table(
            {
                "hint_type": np.arange(w.n_types, dtype=np.int32),
                "family": families,
                "name": [f"{f}_{k}" for k, f in enumerate(families)],
            },
            schema=arrow_schema("hint_catalog"),
        )
        queries = pa.table(
            {"query_id": query_id_array(np.arange(self.cfg.n_queries)), "category_id": w.query_category},
            schema=arrow_schema("query"),
        )
        return {"item": items, "hint_catalog": catalog, "query": queries}

    def profile_table(self) -> pa.Table:
        w = self.world
        return pa.table(
            {
                "user_id": ids("u", np.arange(self.cfg.n_users), 5),
                "gender": GENDERS[w.gender].tolist(),
                "age": w.age,
                "purchase_power": w.purchase_power,
            },
            schema=arrow_schema("user_profile"),
        )

    def _episodes(self, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """The day's sessions and episodes: per episode its user, session, query and whether it opens
        its session, ordered by user and time; per session its start (seconds) and name number."""
        cfg, w = self.cfg, self.world
        hour_weights = 1.0 + 0.8 * np.sin(2 * np.pi * (np.arange(23) - 14) / 24)
        hour_weights /= hour_weights.sum()
        active = np.flatnonzero(rng.random(cfg.n_users) < cfg.daily_active_share)
        sess_user = np.repeat(active, 1 + rng.poisson(0.4, size=len(active)))
        n_sessions = len(sess_user)
        sess_start = rng.choice(23, size=n_sessions, p=hour_weights) * 3600.0 + rng.uniform(0, 1800, size=n_sessions)
        sess_number = np.empty(n_sessions, dtype=np.int64)
        sess_number[np.lexsort((sess_user, sess_start))] = np.arange(n_sessions)
        ep_sess = np.repeat(np.arange(n_sessions), 1 + rng.poisson(0.3, size=n_sessions))
        cum = np.cumsum(w.query_popularity)
        ep_query = np.minimum(np.searchsorted(cum, rng.random(len(ep_sess)) * cum[-1], side="right"), cfg.n_queries - 1)
        # An episode is (session, query): a repeated query in a session continues nothing.
        _, first = np.unique(ep_sess * cfg.n_queries + ep_query, return_index=True)
        keep = np.sort(first)
        ep_sess, ep_query = ep_sess[keep], ep_query[keep]
        ep_user = sess_user[ep_sess]
        order = np.lexsort((np.arange(len(ep_sess)), sess_start[ep_sess], ep_user))
        ep_sess, ep_query, ep_user = ep_sess[order], ep_query[order], ep_user[order]
        opens_session = np.r_[True, ep_sess[1:] != ep_sess[:-1]]
        return ep_user, ep_sess, ep_query, opens_session, sess_start, sess_number

    def simulate_day(self, ds: str, day_index: int) -> DayLogs:
        cfg, online = self.cfg, self.online
        rng = np.random.default_rng([cfg.seed, 2, day_index])
        ep_user, ep_sess, ep_query, opens_session, sess_start, sess_number = self._episodes(rng)
        episode_key = day_index * _PER_DAY + np.arange(len(ep_user), dtype=np.int64)
        lane_first = np.flatnonzero(np.r_[True, ep_user[1:] != ep_user[:-1]]) if len(ep_user) else np.zeros(0, np.int64)
        lane_end = np.r_[lane_first[1:], len(ep_user)].astype(np.int64)
        n_lanes = len(lane_first)
        ptr = lane_first.astype(np.int64)
        now = np.full(n_lanes, -np.inf)
        page = np.ones(n_lanes, dtype=np.int64)
        clicks_in_episode = np.zeros(n_lanes, dtype=np.int64)
        online.start_day(ds)
        pv_parts: list[dict[str, np.ndarray]] = []
        action_parts: list[dict[str, np.ndarray]] = []
        live = np.arange(n_lanes)
        while live.size:
            ep = ptr[live]
            # A session starts no earlier than the user's previous one ended (they never overlap).
            opening = (page[live] == 1) & opens_session[ep]
            now[live] = np.where(opening, np.maximum(now[live], sess_start[ep_sess[ep]]), now[live])
            in_day = now[live] < DAY_SECONDS  # a day's logs hold only that day's page views
            live, ep = live[in_day], ep[in_day]
            if not live.size:
                break
            pv, actions, t_next, go_on = self._step(rng, ep_user[ep], ep_query[ep], episode_key[ep], page[live],
                                                    now[live], clicks_in_episode[live])
            pv["session"] = sess_number[ep_sess[ep]]
            actions["session"] = pv["session"][actions.pop("lane")]
            pv_parts.append({k: v.astype(PV_DTYPES[k], copy=False) for k, v in pv.items()})
            action_parts.append({k: v.astype(ACTION_DTYPES[k], copy=False) for k, v in actions.items()})
            now[live] = t_next
            page[live] = np.where(go_on, page[live] + 1, 1)
            clicks_in_episode[live] = np.where(go_on, clicks_in_episode[live] + pv["clicked"], 0)
            ptr[live] += ~go_on
            live = live[ptr[live] < lane_end[live]]
        return DayLogs(
            ds=ds, day_index=day_index,
            pv=_columns_by_time(pv_parts, PV_DTYPES),
            actions=_columns_by_time(action_parts, ACTION_DTYPES),
            policy_names=tuple(self.policies[b].name if b in self.policies else b for b in BUCKETS),
            candidate_lists=self._candidate_lists, n_users=self.cfg.n_users,
        )

    def _step(self, rng: np.random.Generator, users: np.ndarray, queries: np.ndarray, episodes: np.ndarray,
              pages: np.ndarray, seconds: np.ndarray, clicks_in_episode: np.ndarray):  # type: ignore[no-untyped-def]
        """One page view of every live lane: decide, click, act, observe. Returns the page-view and
        action columns, when each lane's next page view can start, and whether it turns the page."""
        w, online, n = self.world, self.online, len(users)
        rows = np.arange(n)
        hours = seconds / 3600.0
        candidates = w.query_candidates[queries]
        shown = online.shown(users, episodes)
        open_ = (candidates >= 0) & ~(candidates[:, :, None] == shown[:, None, :]).any(axis=2)
        recent = np.take_along_axis(online.recent_clicks(users), self._slot_of_type[np.maximum(candidates, 0)], axis=1)
        batch = StepBatch(users, queries, pages, hours, clicks_in_episode, candidates, open_, recent,
                          lambda r: self.spec.state_matrix(online.columns(users[r], queries[r], episodes[r], pages[r])), w.n_types)
        buckets = self.user_bucket[users]
        probs = np.zeros(candidates.shape)
        for code, name in enumerate(BUCKETS):
            chosen_rows = np.flatnonzero(buckets == code)
            if chosen_rows.size:
                probs[chosen_rows] = self.policies[name].probabilities(batch.subset(chosen_rows))
        cum = probs.cumsum(axis=1)
        choice = np.minimum((cum <= (rng.random(n) * cum[:, -1])[:, None]).sum(axis=1), candidates.shape[1] - 1)
        hints = candidates[rows, choice]
        p_click = w.click_probability(users, queries, choice, pages, clicks_in_episode, recent[rows, choice], hours)
        clicked = rng.random(n) < p_click
        item_clicks = rng.poisson(0.5 + 0.8 * clicked)
        purchased = rng.random(n) < 0.012 * (0.6 + 0.2 * w.purchase_power[users]) * (1.0 + 1.5 * clicked)
        category = w.query_category[queries]
        offsets, sizes = self._pool_offsets[category], self._pool_sizes[category]
        bought = self._pool_items[offsets + (rng.random(n) * sizes).astype(np.int64)]
        # Actions seconds after the page view: browses, item clicks, then cart + purchase.
        counts = np.stack([1 + rng.poisson(1.5, size=n), item_clicks, purchased, purchased], axis=1).ravel()
        lane = np.repeat(np.repeat(rows, 4), counts)
        kind = np.repeat(np.tile(np.arange(4), n), counts)
        m = len(lane)
        drawn = self._pool_items[offsets[lane] + (rng.random(m) * sizes[lane]).astype(np.int64)]
        item = np.where(kind >= 2, bought[lane], drawn)
        gap = np.where(kind >= 2, rng.uniform(1, 5, size=m), rng.uniform(0.5, 3, size=m))
        elapsed = np.cumsum(gap)
        per_lane = counts.reshape(n, 4).sum(axis=1)
        lane_last = np.cumsum(per_lane) - 1
        before = np.r_[0.0, elapsed[lane_last][:-1]]
        action_seconds = seconds[lane] + elapsed - before[lane]
        online.observe_actions(users[lane], kind, item)
        online.observe(users, queries, episodes, hints, clicked)
        p_next = np.where(purchased, 0.2, np.where(clicked, 0.5, 0.72))
        go_on = (rng.random(n) < p_next) & (pages < self.cfg.max_pages)
        t_next = action_seconds[lane_last] + rng.uniform(5, 30, size=n)
        t_next += np.where(go_on, 0.0, rng.uniform(5, 60, size=n))
        pv = {
            "seconds": seconds, "user": users, "query": queries, "page": pages, "bucket": buckets.astype(np.int64),
            "hint": hints, "propensity": probs[rows, choice], "clicked": clicked, "p_click": p_click, "item_clicks": item_clicks,
            "purchased": purchased, "amount": np.where(purchased, w.item_price[bought], 0.0),
        }
        actions = {"seconds": action_seconds, "user": users[lane], "lane": lane, "kind": kind, "item": item}
        return pv, actions, t_next, go_on
