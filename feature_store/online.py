"""The online feature computer: from an event history, the feature columns the Spark jobs store.

It follows the definitions of `pipelines/long_term.py` and `pipelines/realtime.py`:
- long-term columns (user_lt, query_lt) of an event on day X count page views, hint shows and
  clicks of days before X, per user (with demographics from the profile) and per query;
- real-time columns (pv_rt) use the user's previous `window_pvs` page views in (ts, event_id)
  order, whatever their day, the hints shown earlier in the same (session, query), and the user's
  last 5 actions and clicked items strictly before the page view.
Events must be observed in time order; an action at the same ts as a page view comes after it. Serving and the simulator read the state through
`FeatureSpec.state_vector(columns)`, so the state is built by the registry in both places.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Profile:
    gender: str | None
    age: int | None
    purchase_power: int | None


class OnlineFeatureComputer:
    def __init__(
        self,
        n_types: int,
        window_pvs: int = 100,
        profiles: dict[str, Profile] | None = None,
        items: dict[str, tuple[float, int, float]] | None = None,
    ):
        self.n_types = n_types
        self.window_pvs = window_pvs
        self.profiles: dict[str, Profile] = dict(profiles or {})
        self.items = dict(items or {})  # item_id -> (price, category_id, conversion_rate)
        self._actions: dict[str, deque] = defaultdict(lambda: deque(maxlen=5))
        self._clicked_items: dict[str, deque] = defaultdict(lambda: deque(maxlen=5))
        # long-term counts per ("user", id) and ("query", id): [page views, shows per type, clicks per type]
        width = 1 + 2 * n_types
        self._before_today: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(width, dtype=np.int64))
        self._today: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(width, dtype=np.int64))
        self._day: str | None = None
        # The user's previous `window_pvs` page views, and their per-type clicks and shows kept as
        # running counts (updated as page views enter and leave the window).
        self._recent: dict[str, deque] = defaultdict(lambda: deque(maxlen=window_pvs))
        self._recent_clicks: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(n_types, dtype=np.int64))
        self._recent_shows: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(n_types, dtype=np.int64))
        self._shown: dict[tuple[str, str], list[int]] = defaultdict(list)

    def set_profile(self, user_id: str, profile: Profile) -> None:
        self.profiles[user_id] = profile

    def start_day(self, ds: str) -> None:
        """Move to day `ds`: what was observed on earlier days becomes long-term history."""
        if self._day is not None and ds < self._day:
            raise ValueError(f"events must arrive in time order: day {ds} after {self._day}")
        if ds != self._day:
            for key, counts in self._today.items():
                self._before_today[key] += counts
            self._today.clear()
            self._day = ds

    def recent_clicks(self, user_id: str) -> np.ndarray:
        """Hint clicks per type in the user's previous `window_pvs` page views."""
        counts = self._recent_clicks.get(user_id)
        return np.zeros(self.n_types, dtype=np.int64) if counts is None else counts.copy()

    def _long_term(self, kind: str, key: str, prefix: str) -> dict[str, int]:
        k = self.n_types
        counts = self._before_today.get((kind, key))
        if counts is None:
            counts = np.zeros(1 + 2 * k, dtype=np.int64)
        cols = {
            f"{prefix}page_views": int(counts[0]),
            f"{prefix}hint_shows": int(counts[1:1 + k].sum()),
            f"{prefix}hint_clicks": int(counts[1 + k:].sum()),
        }
        for t in range(k):
            cols[f"{prefix}shows_t{t}"] = int(counts[1 + t])
            cols[f"{prefix}clicks_t{t}"] = int(counts[1 + k + t])
        return cols

    def columns(self, user_id: str, session_id: str, query_id: str, page: int) -> dict[str, Any]:
        """The user_lt, query_lt and pv_rt columns of a page view about to happen."""
        k = self.n_types
        profile = self.profiles.get(user_id, Profile(None, None, None))
        cols: dict[str, Any] = {
            "gender": profile.gender or "U",
            "age": profile.age,
            "purchase_power": profile.purchase_power,
            **self._long_term("user", user_id, ""),
            **self._long_term("query", query_id, "query_"),
            "page": page,
            "shown_in_session": list(self._shown.get((session_id, query_id), [])),
        }
        clicked = list(reversed(self._clicked_items.get(user_id, ())))
        cols["last5_action_types"] = list(reversed(self._actions.get(user_id, ())))
        cols["last5_click_item_price"] = [c[0] for c in clicked]
        cols["last5_click_item_category"] = [c[1] for c in clicked]
        cols["last5_click_item_conversion_rate"] = [c[2] for c in clicked]
        recent = self.recent_clicks(user_id)
        shows = self._recent_shows.get(user_id, np.zeros(k, dtype=np.int64))
        for t in range(k):
            cols[f"clicks_last100_t{t}"] = int(recent[t])
            cols[f"shows_last100_t{t}"] = int(shows[t])
        return cols

    def observe(self, user_id: str, session_id: str, query_id: str, hint_type: int | None, clicked: bool) -> None:
        """Record a page view after it happened."""
        window = self._recent[user_id]
        if window.maxlen and len(window) == window.maxlen:
            left_hint, left_clicked = window[0]
            if left_hint is not None:
                self._recent_shows[user_id][left_hint] -= 1
                self._recent_clicks[user_id][left_hint] -= int(left_clicked)
        window.append((hint_type, bool(clicked)))
        if hint_type is not None:
            self._recent_shows[user_id][hint_type] += 1
            self._recent_clicks[user_id][hint_type] += int(bool(clicked))
        for key in (("user", user_id), ("query", query_id)):
            today = self._today[key]
            today[0] += 1
            if hint_type is not None:
                today[1 + hint_type] += 1
                today[1 + self.n_types + hint_type] += int(bool(clicked))
        if hint_type is not None:
            self._shown[(session_id, query_id)].append(int(hint_type))

    def observe_action(self, user_id: str, action_type: str, item_id: str) -> None:
        """Record a user action (browse, click, cart, purchase) after it happened."""
        self._actions[user_id].append(action_type)
        if action_type == "click":
            self._clicked_items[user_id].append(self.items.get(item_id, (None, None, None)))
