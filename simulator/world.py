"""A synthetic e-commerce search world with known click and purchase probabilities.

Everything random about the world itself (users, queries, items, preferences) is drawn once from
`SimulatorConfig.seed`; behaviour on a day is drawn from a generator seeded by (seed, day).

Click probability of hint type k shown to user u for query q on page p at hour h:

    logit = base[k] + pref[u, k] + query_affinity[q, k] - page_penalty * (p - 1)
            - fatigue * hints_clicked_this_episode
            + recency_boost * min(recent_clicks[u, k], 3) + tod_swing * sin(2 pi (h - 20) / 24)

so the user's demographics (through pref), the recent clicks of the real-time features and the
page all carry signal. A clicked hint raises the purchase chance and makes leaving likelier
(guided shopping: the user found what they wanted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hintrl.config import SimulatorConfig

GENDERS = np.array(["F", "M", "U"])


@dataclass
class World:
    cfg: SimulatorConfig
    # users
    gender: np.ndarray  # index into GENDERS
    age: np.ndarray
    purchase_power: np.ndarray
    pref: np.ndarray  # (users, types): family preference + type preference
    family_pref: np.ndarray  # (users, families)
    # queries
    query_category: np.ndarray
    query_popularity: np.ndarray
    query_candidates: list[np.ndarray]
    query_affinity: np.ndarray  # (queries, types)
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

    def click_probability(
        self,
        user: int,
        query: int,
        types: np.ndarray,
        page: int,
        clicked_in_episode: int,
        recent_clicks: np.ndarray,
        hour: float,
    ) -> np.ndarray:
        """P(click) for each hint type in `types` (vectorised over types)."""
        logit = (
            self.type_base[types]
            + self.pref[user, types]
            + self.query_affinity[query, types]
            - self.page_penalty * (page - 1)
            - self.fatigue * clicked_in_episode
            + self.recency_boost * np.minimum(recent_clicks[types], 3)
            + self.tod_swing * np.sin(2 * np.pi * (hour - 20.0) / 24.0)
        )
        return 1.0 / (1.0 + np.exp(-logit))


def build_world(cfg: SimulatorConfig) -> World:
    rng = np.random.default_rng(cfg.seed)
    n_u, n_q, n_i, n_t = cfg.n_users, cfg.n_queries, cfg.n_items, cfg.n_types
    if cfg.min_candidates < cfg.max_pages:
        raise ValueError("min_candidates must be >= max_pages so that every page has a hint left")
    if not 1 <= cfg.min_candidates <= n_t:
        raise ValueError("min_candidates must be between 1 and n_types")

    gender = rng.choice(3, size=n_u, p=[0.48, 0.47, 0.05])
    age = np.clip(rng.normal(33, 10, size=n_u), 16, 70).astype(np.int32)
    purchase_power = rng.choice(np.arange(1, 6), size=n_u, p=[0.15, 0.25, 0.3, 0.2, 0.1]).astype(np.int32)

    type_family = (np.arange(n_t) * cfg.n_families // n_t).astype(np.int32)
    # Preferences over hint families and types: demographic effects shared by a segment plus
    # individual noise, at both levels; a type inherits its family's preference.
    age_z = (age - 33.0) / 10.0
    power_z = (purchase_power - 3.0) / 1.5

    def preference(n: int, scale: float) -> np.ndarray:
        w_gender = rng.normal(0.0, 0.9 * scale, size=(3, n))
        w_age = rng.normal(0.0, 0.6 * scale, size=n)
        w_power = rng.normal(0.0, 0.5 * scale, size=n)
        noise = rng.normal(0.0, 0.5 * scale, size=(n_u, n))
        return w_gender[gender] + np.outer(age_z, w_age) + np.outer(power_z, w_power) + noise

    family_pref = preference(cfg.n_families, 0.7)
    pref = family_pref[:, type_family] + preference(n_t, 0.7)

    query_category = rng.integers(0, 10, size=n_q).astype(np.int32)
    popularity = 1.0 / np.arange(1, n_q + 1) ** 1.1
    query_popularity = popularity / popularity.sum()
    query_candidates = [
        np.sort(rng.choice(n_t, size=rng.integers(cfg.min_candidates, n_t + 1), replace=False)).astype(np.int32)
        for _ in range(n_q)
    ]
    query_affinity = rng.normal(0.0, 0.3, size=(n_q, n_t))

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
        pref=pref,
        family_pref=family_pref,
        query_category=query_category,
        query_popularity=query_popularity,
        query_candidates=query_candidates,
        query_affinity=query_affinity,
        item_price=item_price,
        item_category=item_category,
        item_conversion=item_conversion,
        item_sales=item_sales,
        type_base=type_base,
        type_family=type_family,
    )
