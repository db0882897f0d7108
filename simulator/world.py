"""A synthetic e-commerce search world with known click and purchase probabilities.

Everything random about the world itself (users, queries, items, preferences) is drawn once from
`SimulatorConfig.seed`; behaviour on a day is drawn from a generator seeded by (seed, day).

Click probability of hint type k (the j-th candidate of query q) shown to user u on page p at hour h:

    logit = base[k] + pref[u, k] + query_affinity[q, j] - page_penalty * (p - 1)
            - fatigue * hints_clicked_this_episode
            + recency_boost * min(recent_clicks[u, slot(k)], 3) + tod_swing * sin(2 pi (h - 20) / 24)

so the user's demographics (through pref), the recent clicks of the real-time features and the
page all carry signal. slot(k) is k in the small action space and k's family in the large one (the
granularity of the features). A clicked hint raises the purchase chance and makes leaving likelier
(guided shopping: the user found what they wanted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from feature_store.registry import HintSlots, slots_for
from hintrl.config import SimulatorConfig

GENDERS = np.array(["F", "M", "U"])
FAMILY_NAMES = (
    "related_search", "hot_pick", "brand", "attribute", "style", "color", "material", "size",
    "length", "sleeve", "neckline", "pattern", "season", "occasion", "fit", "price_band",
)
# Rank of the low-rank individual preference over hint ids in the large action space.
LARGE_PREF_RANK = 8
# Standard deviation of a query's affinity to each of its hints (a logit term; the prior a
# learner of affinities from the logs would have to assume).
QUERY_AFFINITY_SD = 0.3


@dataclass
class World:
    cfg: SimulatorConfig
    # users
    gender: np.ndarray  # index into GENDERS
    age: np.ndarray
    purchase_power: np.ndarray
    family_pref: np.ndarray  # (users, families)
    # Type-level preference: demographic weights per type plus individual noise, dense
    # (users, types) in the small action space, low-rank (users, r) x (r, types) in the large one.
    type_gender_w: np.ndarray  # (3, types)
    type_age_w: np.ndarray  # (types,)
    type_power_w: np.ndarray  # (types,)
    type_noise: np.ndarray | None
    user_factor: np.ndarray | None
    type_factor: np.ndarray | None
    # queries
    query_category: np.ndarray
    query_popularity: np.ndarray
    query_candidates: np.ndarray  # (queries, max candidates), -1 padded
    query_affinity: np.ndarray  # (queries, max candidates), aligned with query_candidates
    # items
    item_price: np.ndarray
    item_category: np.ndarray
    item_conversion: np.ndarray
    item_sales: np.ndarray
    # hints
    type_base: np.ndarray
    type_family: np.ndarray
    page_penalty: float = 0.25
    fatigue: float = 0.3
    recency_boost: float = 0.35
    tod_swing: float = 0.3

    @property
    def n_types(self) -> int:
        return len(self.type_base)

    @property
    def family_names(self) -> list[str]:
        return catalog_families(self.cfg)

    @property
    def slots(self) -> HintSlots:
        """The feature granularity: per type (small) or per family (large)."""
        return world_slots(self.cfg)

    @property
    def age_z(self) -> np.ndarray:
        return (self.age - 33.0) / 10.0

    @property
    def power_z(self) -> np.ndarray:
        return (self.purchase_power - 3.0) / 1.5

    def pref(self, users: np.ndarray, types: np.ndarray) -> np.ndarray:
        """pref[u, k] for broadcastable arrays of user and type indices."""
        value = (
            self.family_pref[users, self.type_family[types]]
            + self.type_gender_w[self.gender[users], types]
            + self.type_age_w[types] * self.age_z[users]
            + self.type_power_w[types] * self.power_z[users]
        )
        if self.type_noise is not None:
            return value + self.type_noise[users, types]
        assert self.user_factor is not None and self.type_factor is not None
        u = self.user_factor[users]  # (..., r)
        t = np.moveaxis(self.type_factor[:, types], 0, -1)  # (..., r)
        return value + (u * t).sum(axis=-1)

    def click_probability(
        self,
        users: np.ndarray,
        queries: np.ndarray,
        positions: np.ndarray,
        pages: np.ndarray,
        clicked_in_episode: np.ndarray,
        recent_clicks: np.ndarray,
        hours: np.ndarray,
    ) -> np.ndarray:
        """P(click) of the candidate at `positions` of each query's candidate row (broadcasting
        like numpy); `recent_clicks` are the user's clicks in that hint's slot."""
        types = self.query_candidates[queries, positions]
        logit = (
            self.type_base[types]
            + self.pref(users, types)
            + self.query_affinity[queries, positions]
            - self.page_penalty * (pages - 1)
            - self.fatigue * clicked_in_episode
            + self.recency_boost * np.minimum(recent_clicks, 3)
            + self.tod_swing * np.sin(2 * np.pi * (hours - 20.0) / 24.0)
        )
        return 1.0 / (1.0 + np.exp(-logit))


def type_families(cfg: SimulatorConfig) -> np.ndarray:
    """Family index of each hint type: contiguous blocks."""
    return (np.arange(cfg.n_types) * cfg.n_families // cfg.n_types).astype(np.int32)


def catalog_families(cfg: SimulatorConfig) -> list[str]:
    """The `family` column of the world's hint catalog."""
    return [FAMILY_NAMES[f] for f in type_families(cfg)]


def world_slots(cfg: SimulatorConfig) -> HintSlots:
    """Features per type in the small action space, per family in the large one."""
    per = "family" if cfg.action_space == "large" else "type"
    return slots_for(range(cfg.n_types), catalog_families(cfg), per)


def build_world(cfg: SimulatorConfig) -> World:
    rng = np.random.default_rng(cfg.seed)
    n_u, n_q, n_i, n_t = cfg.n_users, cfg.n_queries, cfg.n_items, cfg.n_types
    high = cfg.candidates_high
    if cfg.min_candidates < cfg.max_pages:
        raise ValueError("min_candidates must be >= max_pages so that every page has a hint left")
    if not 1 <= cfg.min_candidates <= high <= n_t:
        raise ValueError("need 1 <= min_candidates <= max_candidates <= n_types")
    if cfg.n_families > len(FAMILY_NAMES):
        raise ValueError(f"at most {len(FAMILY_NAMES)} hint families")
    large = cfg.action_space == "large"

    gender = rng.choice(3, size=n_u, p=[0.48, 0.47, 0.05])
    age = np.clip(rng.normal(33, 10, size=n_u), 16, 70).astype(np.int32)
    purchase_power = rng.choice(np.arange(1, 6), size=n_u, p=[0.15, 0.25, 0.3, 0.2, 0.1]).astype(np.int32)

    type_family = type_families(cfg)
    # Preferences over hint families and types: demographic effects shared by a segment plus
    # individual noise, at both levels; a type inherits its family's preference.
    age_z = (age - 33.0) / 10.0
    power_z = (purchase_power - 3.0) / 1.5
    scale = 0.7

    def weights(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (rng.normal(0.0, 0.9 * scale, size=(3, n)), rng.normal(0.0, 0.6 * scale, size=n),
                rng.normal(0.0, 0.5 * scale, size=n))

    fg, fa, fp = weights(cfg.n_families)
    family_pref = fg[gender] + np.outer(age_z, fa) + np.outer(power_z, fp) + rng.normal(0.0, 0.5 * scale, size=(n_u, cfg.n_families))
    tg, ta, tp = weights(n_t)
    if large:
        type_noise = None
        user_factor = rng.normal(0.0, 1.0, size=(n_u, LARGE_PREF_RANK))
        type_factor = rng.normal(0.0, 0.5 * scale / np.sqrt(LARGE_PREF_RANK), size=(LARGE_PREF_RANK, n_t))
    else:
        type_noise = rng.normal(0.0, 0.5 * scale, size=(n_u, n_t))
        user_factor = type_factor = None

    query_category = rng.integers(0, 10, size=n_q).astype(np.int32)
    popularity = 1.0 / np.arange(1, n_q + 1) ** 1.1
    query_popularity = popularity / popularity.sum()
    candidates = np.full((n_q, high), -1, dtype=np.int32)
    if large:
        sizes = rng.integers(cfg.min_candidates, high + 1, size=n_q)
        for q in range(n_q):
            # A query's hints come mostly from a few families of its own (its attributes).
            home = rng.choice(cfg.n_families, size=3, replace=False)
            w = np.where(np.isin(type_family, home), 8.0, 1.0)
            chosen = rng.choice(n_t, size=sizes[q], replace=False, p=w / w.sum())
            candidates[q, : sizes[q]] = np.sort(chosen)
        query_affinity = np.where(candidates >= 0, rng.normal(0.0, QUERY_AFFINITY_SD, size=(n_q, high)), 0.0)
    else:
        # Drawn in the order of the first version of the world, so the small world stays the one
        # the README's figures were measured in.
        for q in range(n_q):
            chosen = np.sort(rng.choice(n_t, size=rng.integers(cfg.min_candidates, high + 1), replace=False))
            candidates[q, : len(chosen)] = chosen
        dense = rng.normal(0.0, QUERY_AFFINITY_SD, size=(n_q, n_t))
        query_affinity = np.where(candidates >= 0, np.take_along_axis(dense, np.maximum(candidates, 0), axis=1), 0.0)

    item_category = rng.integers(0, 10, size=n_i).astype(np.int32)
    item_price = np.round(np.exp(rng.normal(4.0, 0.8, size=n_i)), 2)
    item_conversion = np.clip(rng.beta(2, 40, size=n_i), 0.001, 0.5)
    item_sales = rng.zipf(1.8, size=n_i).clip(max=100000).astype(np.int64)

    type_base = rng.normal(-2.0, 0.35, size=n_t)
    return World(
        cfg=cfg,
        gender=gender,
        age=age,
        purchase_power=purchase_power,
        family_pref=family_pref,
        type_gender_w=tg,
        type_age_w=ta,
        type_power_w=tp,
        type_noise=type_noise,
        user_factor=user_factor,
        type_factor=type_factor,
        query_category=query_category,
        query_popularity=query_popularity,
        query_candidates=candidates,
        query_affinity=query_affinity,
        item_price=item_price,
        item_category=item_category,
        item_conversion=item_conversion,
        item_sales=item_sales,
        type_base=type_base,
        type_family=type_family,
    )
