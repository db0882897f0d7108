"""Simulate days of traffic and write the raw tables of DESIGN.md's raw log contract."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyarrow as pa

from hintrl.config import SimulatorConfig
from hintrl.contracts import arrow_schema
from hintrl.dates import parse_ds
from feature_store.online import OnlineFeatureComputer, Profile
from feature_store.registry import FeatureSpec, build_spec
from simulator.logging_policy import BaselinePolicy, SimPolicy, StepContext, UniformPolicy
from simulator.world import GENDERS, World, build_world

SEARCH_PV_SCHEMA = arrow_schema("search_pv")
USER_ACTION_SCHEMA = arrow_schema("user_action")
USER_PROFILE_SCHEMA = arrow_schema("user_profile")
ITEM_SCHEMA = arrow_schema("item")
HINT_CATALOG_SCHEMA = arrow_schema("hint_catalog")

FAMILY_NAMES = ("related_search", "hot_pick", "brand", "attribute")


def user_id(u: int) -> str:
    return f"u{u:05d}"


def query_id(q: int) -> str:
    return f"q{q:04d}"


def item_id(i: int) -> str:
    return f"i{i:05d}"


@dataclass
class DayLogs:
    ds: str
    search_pv: pa.Table
    user_action: pa.Table
    user_profile: pa.Table


@dataclass
class _Rows:
    columns: dict[str, list] = field(default_factory=dict)

    def add(self, **values: object) -> None:
        for key, value in values.items():
            self.columns.setdefault(key, []).append(value)

    def table(self, schema: pa.Schema) -> pa.Table:
        return pa.table({name: self.columns.get(name, []) for name in schema.names}, schema=schema)


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
            draw < cfg.explore_share, "explore",
            np.where(draw < cfg.explore_share + policy_share, "policy", "baseline"),
        )
        self.policies: dict[str, SimPolicy] = {
            "baseline": BaselinePolicy(self.world, cfg.baseline_epsilon), "explore": UniformPolicy(),
        }
        if policy is not None:
            self.policies["policy"] = policy
        self.spec = spec or build_spec(list(range(self.world.n_types)))
        w = self.world
        self.online = OnlineFeatureComputer(
            w.n_types, window_pvs=100,
            profiles={user_id(u): Profile(str(GENDERS[w.gender[u]]), int(w.age[u]), int(w.purchase_power[u]))
                      for u in range(cfg.n_users)},
            items={item_id(i): (float(w.item_price[i]), int(w.item_category[i]), float(w.item_conversion[i]))
                   for i in range(len(w.item_price))},
        )
        self._items_by_category = [np.flatnonzero(self.world.item_category == c) for c in range(10)]

    @property
    def baseline(self) -> SimPolicy:
        return self.policies["baseline"]

    @property
    def explore(self) -> SimPolicy:
        return self.policies["explore"]

    def _observation(self, uid: str, session: str, qid: str, page: int, open_c: np.ndarray) -> np.ndarray:
        state = self.spec.state_vector(self.online.columns(uid, session, qid, page))
        mask = np.zeros(self.world.n_types, dtype=np.float32)
        mask[open_c] = 1.0
        return np.concatenate([state, mask])

    def static_tables(self) -> dict[str, pa.Table]:
        w = self.world
        items = pa.table(
            {
                "item_id": [item_id(i) for i in range(len(w.item_price))],
                "price": w.item_price,
                "category_id": w.item_category,
                "conversion_rate": w.item_conversion,
                "sales_volume": w.item_sales,
            },
            schema=ITEM_SCHEMA,
        )
        catalog = pa.table(
            {
                "hint_type": np.arange(w.n_types, dtype=np.int32),
                "family": [FAMILY_NAMES[f % len(FAMILY_NAMES)] for f in w.type_family],
                "name": [f"{FAMILY_NAMES[f % len(FAMILY_NAMES)]}_{k}" for k, f in enumerate(w.type_family)],
            },
            schema=HINT_CATALOG_SCHEMA,
        )
        return {"item": items, "hint_catalog": catalog}

    def profile_table(self) -> pa.Table:
        w = self.world
        return pa.table(
            {
                "user_id": [user_id(u) for u in range(self.cfg.n_users)],
                "gender": GENDERS[w.gender].tolist(),
                "age": w.age,
                "purchase_power": w.purchase_power,
            },
            schema=USER_PROFILE_SCHEMA,
        )

    def simulate_day(self, ds: str, day_index: int) -> DayLogs:
        cfg, w = self.cfg, self.world
        rng = np.random.default_rng([cfg.seed, 2, day_index])
        midnight = dt.datetime.combine(parse_ds(ds), dt.time(0), tzinfo=dt.timezone.utc)
        end_of_day = midnight + dt.timedelta(days=1)
        hour_weights = 1.0 + 0.8 * np.sin(2 * np.pi * (np.arange(23) - 14) / 24)
        hour_weights /= hour_weights.sum()
        pv, actions = _Rows(), _Rows()
        active = np.flatnonzero(rng.random(cfg.n_users) < cfg.daily_active_share)
        sessions = []
        for u in active:
            for _ in range(1 + rng.poisson(0.4)):
                start = midnight + dt.timedelta(hours=int(rng.choice(23, p=hour_weights)), seconds=float(rng.uniform(0, 1800)))
                sessions.append((start, int(u)))
        sessions.sort()
        self.online.start_day(ds)
        busy_until: dict[int, dt.datetime] = {}
        pv_seq = action_seq = 0
        for s_index, (start, u) in enumerate(sessions):
            session = f"s{ds.replace('-', '')}{s_index:06d}"
            bucket = str(self.user_bucket[u])
            policy = self.policies[bucket]
            uid = user_id(u)
            # A user's sessions never overlap, so their page views form one time-ordered history.
            now = max(start, busy_until.get(u, start))
            used_queries: set[int] = set()
            for _ in range(1 + rng.poisson(0.3)):
                q = int(rng.choice(cfg.n_queries, p=w.query_popularity))
                qid = query_id(q)
                if q in used_queries:  # an episode is (session, query): a repeated query continues nothing
                    continue
                used_queries.add(q)
                candidates = w.query_candidates[q]
                shown: list[int] = []
                clicks_in_episode = 0
                for page in range(1, cfg.max_pages + 1):
                    if now >= end_of_day:  # logs of a day hold only that day's page views
                        break
                    open_c = np.array([c for c in candidates if c not in shown], dtype=np.int64)
                    recent = self.online.recent_clicks(uid)
                    hour = (now - midnight).total_seconds() / 3600.0
                    ctx = StepContext(
                        user=u, query=q, page=page, hour=hour, clicks_in_episode=clicks_in_episode,
                        open_candidates=open_c, recent_clicks=recent,
                        observation=lambda: self._observation(uid, session, qid, page, open_c),  # noqa: B023
                    )
                    probs = policy.probabilities(ctx)
                    choice = int(rng.choice(len(open_c), p=probs))
                    hint, propensity = int(open_c[choice]), float(probs[choice])
                    p_click = w.click_probability(u, q, np.array([hint]), page, clicks_in_episode, recent, hour)[0]
                    clicked = bool(rng.random() < p_click)
                    item_clicks = int(rng.poisson(0.5 + 0.8 * clicked))
                    p_buy = 0.012 * (0.6 + 0.2 * w.purchase_power[u]) * (1.0 + 1.5 * clicked)
                    purchased = bool(rng.random() < p_buy)
                    pool = self._items_by_category[w.query_category[q]]
                    bought = int(rng.choice(pool)) if purchased else -1
                    pv.add(
                        event_id=f"pv{ds.replace('-', '')}{pv_seq:07d}",
                        ts=now,
                        user_id=uid,
                        session_id=session,
                        query_id=qid,
                        page=page,
                        bucket=bucket,
                        candidates=candidates.tolist(),
                        hint_type=hint,
                        propensity=propensity,
                        policy_version=policy.name,
                        hint_clicked=clicked,
                        item_clicks=item_clicks,
                        purchased=purchased,
                        purchase_amount=float(w.item_price[bought]) if purchased else 0.0,
                    )
                    pv_seq += 1
                    t_action = now
                    browsed = rng.choice(pool, size=1 + rng.poisson(1.5))
                    clicked_items = rng.choice(pool, size=item_clicks)
                    for kind, items in (("browse", browsed), ("click", clicked_items)):
                        for it in items:
                            t_action += dt.timedelta(seconds=float(rng.uniform(0.5, 3)))
                            actions.add(
                                event_id=f"ua{ds.replace('-', '')}{action_seq:08d}",
                                ts=t_action, user_id=uid, session_id=session,
                                action_type=kind, item_id=item_id(int(it)),
                            )
                            self.online.observe_action(uid, kind, item_id(int(it)))
                            action_seq += 1
                    if purchased:
                        for kind in ("cart", "purchase"):
                            t_action += dt.timedelta(seconds=float(rng.uniform(1, 5)))
                            actions.add(
                                event_id=f"ua{ds.replace('-', '')}{action_seq:08d}",
                                ts=t_action, user_id=uid, session_id=session,
                                action_type=kind, item_id=item_id(bought),
                            )
                            self.online.observe_action(uid, kind, item_id(bought))
                            action_seq += 1
                    self.online.observe(uid, session, qid, hint, clicked)
                    shown.append(hint)
                    clicks_in_episode += int(clicked)
                    now = t_action + dt.timedelta(seconds=float(rng.uniform(5, 30)))
                    p_next = 0.2 if purchased else (0.5 if clicked else 0.72)
                    if rng.random() >= p_next:
                        break
                now += dt.timedelta(seconds=float(rng.uniform(5, 60)))
            busy_until[u] = now
        return DayLogs(
            ds=ds,
            search_pv=pv.table(SEARCH_PV_SCHEMA),
            user_action=actions.table(USER_ACTION_SCHEMA),
            user_profile=self.profile_table(),
        )


def simulate(
    cfg: SimulatorConfig,
    first_ds: str,
    n_days: int,
    on_day: Callable[[DayLogs], None],
) -> Simulator:
    """Simulate `n_days` days from `first_ds`, handing each day's logs to `on_day`."""
    sim = Simulator(cfg)
    start = parse_ds(first_ds)
    for i in range(n_days):
        on_day(sim.simulate_day((start + dt.timedelta(days=i)).isoformat(), i))
    return sim
