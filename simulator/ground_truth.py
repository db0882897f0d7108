"""Ground truth: the true value of any policy, by rolling it out in the world that wrote the logs.

`rollout` runs the same world (same seed, same users and days) with every user served by the
policy, and measures from the page views it produced: the mean episode return under each reward
preset and the hint CTR, each with a 95% normal interval over episodes. `logged_value` measures
the same quantities on logged page views (e.g. the baseline bucket), so the two are comparable.
`Deployment` answers the counterfactual an off-policy estimate on one day's logs stands for: the
policy deployed on that day, the users' history being exactly the one the logs left; its
`logged_redraw` draws that day's logs anew, with each target policy's probability of every logged
hint, so that the estimators' own sampling distribution can be measured against the truth.
Episodes are (session, query); returns are undiscounted sums over pages.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from feature_store.registry import FeatureSpec
from hintrl.config import RewardConfig, SimulatorConfig
from hintrl.dates import shift
from hintrl.rewards import PRESETS, reward
from simulator.logging_policy import SimPolicy, StepBatch
from simulator.logs import BUCKETS, DayLogs, Simulator
from simulator.world import World

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


@dataclass(frozen=True)
class PolicyValue:
    policy: str
    n_sessions: int
    n_episodes: int
    n_page_views: int
    returns: dict[str, Interval]  # per reward preset
    hint_ctr: Interval
    # The same CTR with each shown hint's true click probability in place of its drawn click: the
    # same expectation, without the clicks' own noise, so policies rolled out alike compare sharper.
    # None for page views that do not carry the probability (logs read back, hand-made frames).
    expected_hint_ctr: Interval | None = None

    def ratio_to(self, baseline: PolicyValue) -> tuple[float, float | None]:
        """This hint CTR over `baseline`'s, drawn and expected (None where either lacks the
        expected CTR): the form the seed's headline (1.10x the baseline bucket) is stated in."""
        drawn = self.hint_ctr.value / baseline.hint_ctr.value
        if self.expected_hint_ctr is None or baseline.expected_hint_ctr is None:
            return drawn, None
        return drawn, self.expected_hint_ctr.value / baseline.expected_hint_ctr.value

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _mean_interval(x: np.ndarray) -> Interval:
    mean = float(x.mean())
    half = Z95 * float(x.std(ddof=1)) / float(np.sqrt(len(x))) if len(x) > 1 else float("inf")
    return Interval(mean, mean - half, mean + half)


def _ratio_interval(num: np.ndarray, den: np.ndarray) -> Interval:
    """sum(num) / sum(den) with a delta-method interval over episodes (clicks within an episode correlate)."""
    ratio = float(num.sum() / den.sum())
    n = len(num)
    resid = num - ratio * den
    half = Z95 * float(resid.std(ddof=1)) / float(den.mean() * np.sqrt(n)) if n > 1 else float("inf")
    return Interval(ratio, ratio - half, ratio + half)


def step_components(pv: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Page views that showed a hint, sorted by episode and page, with the reward components of
    hintrl.rewards (the same definitions as the transitions job)."""
    steps = pv[pv["hint_type"].notna()].copy()
    steps["episode"] = steps.groupby(["session_id", "query_id"], sort=False).ngroup()
    steps = steps.sort_values(["episode", "page", "ts", "event_id"]).reset_index(drop=True)
    terminal = (steps["episode"] != steps["episode"].shift(-1)).to_numpy()
    purchased = steps["purchased"].to_numpy(dtype=np.float64)
    components = {
        "hint_click": steps["hint_clicked"].to_numpy(dtype=np.float64),
        "page": steps["page"].to_numpy(dtype=np.float64),
        "item_clicks": steps["item_clicks"].to_numpy(dtype=np.float64),
        "turned_page": (~terminal).astype(np.float64),
        "purchased": purchased,
        "purchase_amount": steps["purchase_amount"].to_numpy(dtype=np.float64),
        "left_without_purchase": (terminal & (purchased == 0)).astype(np.float64),
    }
    return steps, components


def measure(pv: pd.DataFrame, name: str, reward_cfg: RewardConfig | None = None) -> PolicyValue:
    """Value of the page views in `pv` under every reward preset, and their hint CTR."""
    base = reward_cfg or RewardConfig()
    steps, comps = step_components(pv)
    if steps.empty:
        raise ValueError(f"no page views with a hint to measure for {name}")
    episode_codes, _ = pd.factorize(steps["episode"])
    n_episodes = int(episode_codes.max()) + 1
    returns = {}
    for preset in PRESETS:
        r = reward(comps, dataclasses.replace(base, preset=preset))
        returns[preset] = _mean_interval(np.bincount(episode_codes, weights=r, minlength=n_episodes))
    clicks = np.bincount(episode_codes, weights=comps["hint_click"], minlength=n_episodes)
    shows = np.bincount(episode_codes, minlength=n_episodes).astype(np.float64)
    expected = None
    if "hint_click_probability" in steps:
        p = steps["hint_click_probability"].to_numpy(dtype=np.float64)
        expected = _ratio_interval(np.bincount(episode_codes, weights=p, minlength=n_episodes), shows)
    return PolicyValue(name, int(steps["session_id"].nunique()), n_episodes, len(steps), returns,
                       _ratio_interval(clicks, shows), expected)


def logged_value(pv: pd.DataFrame, bucket: str, reward_cfg: RewardConfig | None = None) -> PolicyValue:
    return measure(pv[pv["bucket"] == bucket], f"logged {bucket} bucket", reward_cfg)


def _builtin(name: str, sim: Simulator) -> SimPolicy:
    from simulator.logging_policy import OraclePolicy

    builtin = {"baseline": sim.baseline, "uniform": sim.explore, "oracle": OraclePolicy(sim.world)}
    if name not in builtin:
        raise ValueError(f"unknown built-in policy {name!r}: choose from {', '.join(builtin)}")
    return builtin[name]


def rollout(
    policy: SimPolicy | str,
    cfg: SimulatorConfig,
    first_ds: str,
    days: int,
    reward_cfg: RewardConfig | None = None,
    spec: FeatureSpec | None = None,
    world: World | None = None,
    measure_last: int = 0,
) -> PolicyValue:
    """Roll `policy` out for every user over `days` days from `first_ds`.

    `policy` is a simulator policy, or the name of a built-in one: baseline, uniform, oracle.
    With `measure_last` > 0 only the last that many days are measured (the days before build up
    the users' history, as they did in the logs of a run that started on `first_ds`).
    """
    everyone = dataclasses.replace(cfg, explore_share=0.0, policy_share=1.0)
    sim = Simulator(everyone, world=world, spec=spec)
    if isinstance(policy, str):
        policy = _builtin(policy, sim)
    sim.policies["policy"] = policy
    sim.user_bucket[:] = BUCKETS.index("policy")
    frames = [sim.simulate_day(shift(first_ds, i), i).frame() for i in range(days)]
    if measure_last:
        frames = frames[-measure_last:]
    return measure(pd.concat(frames, ignore_index=True), policy.name, reward_cfg)


@dataclass(frozen=True)
class _Asked:
    """One decided batch of page views, as `_AskingTargets` saw it."""

    users: np.ndarray
    hours: np.ndarray
    candidates: np.ndarray
    target_probabilities: dict[str, np.ndarray]
    open: np.ndarray
    states: np.ndarray | None


class _AskingTargets:
    """A logging bucket's policy that, on every page view it decides, also asks the target policies
    for their probabilities (kept with the page views' users and times), deciding exactly as before."""

    def __init__(self, inner: SimPolicy, targets: dict[str, SimPolicy], asked: list[_Asked],
                 with_states: bool = False):
        self.inner, self.targets, self.asked, self.name = inner, targets, asked, inner.name
        self.with_states = with_states

    def probabilities(self, batch: StepBatch) -> np.ndarray:
        self.asked.append(_Asked(batch.users, batch.hours, batch.candidates,
                                 {name: target.probabilities(batch) for name, target in self.targets.items()},
                                 batch.open, batch.states() if self.with_states else None))
        return self.inner.probabilities(batch)


# Day indexes of the independent redraws of a deployed day (the logs use 0, 1, ... from their run's start).
REDRAW_DAY_INDEX = 10_000


class Deployment:
    """The world on the last of `days` days from `first_ds`, as the run that wrote the logs left it.

    The days before are replayed with the logging buckets and the very draws of `simulate_to_lake`
    from `first_ds` (the same seed and day indexes), so every user's history, and with it every
    state, is the one in the logs. `value(policy)` then serves the last day to every user with
    `policy`, drawing that day `replicas` times independently of the logged day: what an off-policy
    estimate on the last day's logs estimates is this value's expectation, and each redraw is an
    unbiased draw of it (the logged day itself is one more). `history` keeps the replayed days'
    logs, the ones the run wrote.
    """

    def __init__(self, cfg: SimulatorConfig, first_ds: str, days: int, spec: FeatureSpec | None = None,
                 world: World | None = None):
        if days < 1:
            raise ValueError("a deployment needs at least the deployed day")
        self.ds = shift(first_ds, days - 1)
        self._sim = Simulator(cfg, world=world, spec=spec)
        self.history: list[DayLogs] = [self._sim.simulate_day(shift(first_ds, i), i) for i in range(days - 1)]

    # The world's scalar dynamics a what-if may change for the deployed day (the users stay as drawn).
    RETUNABLE = ("page_penalty", "fatigue", "recency_boost", "tod_swing")

    def retune(self, **params: float) -> None:
        """Change the world's scalar dynamics (`RETUNABLE`) for the deployed day on: the users'
        histories stay those the logs' world wrote, and every later `value` and `logged_redraw`
        (the truth and the logs alike) reads the change. The world is shared with the logging
        buckets, so it is changed in place."""
        unknown = sorted(set(params) - set(self.RETUNABLE))
        if unknown:
            raise ValueError(f"cannot retune {unknown}: choose from {list(self.RETUNABLE)}")
        for name, value in params.items():
            setattr(self._sim.world, name, float(value))

    def value(self, policy: SimPolicy | str, reward_cfg: RewardConfig | None = None, replicas: int = 1,
              first_draw: int = REDRAW_DAY_INDEX) -> PolicyValue:
        """`policy` (a simulator policy, a built-in name as for `rollout`, or "behavior": the
        logging buckets themselves) serving every user on the deployed day, measured over `replicas` draws of it (day indexes from `first_draw`)."""
        if replicas < 1:
            raise ValueError("replicas must be >= 1")
        if isinstance(policy, str) and policy != "behavior":
            policy = _builtin(policy, self._sim)
        name = policy if isinstance(policy, str) else policy.name
        frames = []
        for r in range(replicas):
            # The world is read-only: share it; users' histories and the feature state are copied.
            twin = copy.deepcopy(self._sim, memo={id(self._sim.world): self._sim.world})
            if not isinstance(policy, str):
                twin.policies["policy"] = policy
                twin.user_bucket[:] = BUCKETS.index("policy")
            frames.append(twin.simulate_day(self.ds, first_draw + r).frame())
        return measure(pd.concat(frames, ignore_index=True), name, reward_cfg)

    def logged_redraw(self, targets: dict[str, SimPolicy], draw: int = REDRAW_DAY_INDEX,
                      with_states: bool = False) -> pd.DataFrame:
        """The deployed day drawn once more under the logging buckets (day index `draw`): what
        another day of logs could have held. Its page views (`frame()` columns, with `user` and the
        logged `propensity`) carry `target_<name>`, each target policy's probability of the logged
        hint in that page view's state: everything an off-policy estimate on these logs needs.
        `with_states` adds what a model-based estimate (FQE) needs too: `state` (the page view's
        state vector, as the policies saw it) and `open_candidates` (the hint types still open on
        the page, -1 padded); `redraw_transitions` turns such a frame into transitions."""
        twin = copy.deepcopy(self._sim, memo={id(self._sim.world): self._sim.world})
        asked: list[_Asked] = []
        for bucket, policy in list(twin.policies.items()):
            twin.policies[bucket] = _AskingTargets(policy, targets, asked, with_states)
        day = twin.simulate_day(self.ds, draw)
        frame = day.frame()
        frame["user"] = day.pv["user"]
        frame["propensity"] = day.pv["propensity"]
        if not asked:
            return frame
        # A user is on one page at a time, so (user, time) names a page view; hours as _step computes them.
        asked_at = pd.MultiIndex.from_arrays([np.concatenate([a.users for a in asked]), np.concatenate([a.hours for a in asked])])
        row = asked_at.get_indexer(pd.MultiIndex.from_arrays([day.pv["user"], day.pv["seconds"] / 3600.0]))
        if (row < 0).any():
            raise RuntimeError("a logged page view was decided without asking the target policies")
        candidates = np.concatenate([a.candidates for a in asked])[row]
        position = (candidates == day.pv["hint"][:, None]).argmax(axis=1)
        for name in targets:
            probs = np.concatenate([a.target_probabilities[name] for a in asked])
            frame[f"target_{name}"] = probs[row, position]
        if with_states:
            frame["state"] = list(np.concatenate([a.states for a in asked])[row])
            frame["open_candidates"] = list(np.where(np.concatenate([a.open for a in asked])[row], candidates, -1))
        return frame


def redraw_transitions(frame: pd.DataFrame, ds: str, reward_cfg: RewardConfig, n_actions: int, spec_version: str,  # type: ignore[no-untyped-def]
                       components: tuple[str, ...] = ()):
    """The transitions (mask layout, with the reward `components` named) of a `logged_redraw(...,
    with_states=True)` frame of day `ds`: what the transitions job would build from that day's
    logs, for the nightly's evaluation (`offline_rl.evaluate.evaluate_policy`) to run on."""
    from offline_rl.dataset import Transitions, ids_to_mask

    if "state" not in frame:
        raise ValueError("the frame has no states: draw it with logged_redraw(..., with_states=True)")
    steps, parts = step_components(frame)
    unknown = sorted(set(components) - set(parts))
    if unknown:
        raise ValueError(f"unknown reward components {unknown}: choose from {sorted(parts)}")
    masks = ids_to_mask(np.stack(steps["open_candidates"].to_numpy()), n_actions, np.uint8)
    episodes = steps["episode"].to_numpy(dtype=np.int64)
    terminal = np.r_[episodes[1:] != episodes[:-1], True]
    return Transitions(
        episode_ids=episodes, steps=steps["page"].to_numpy(dtype=np.int64),
        states=np.stack(steps["state"].to_numpy()).astype(np.float32), masks=masks,
        actions=steps["hint_type"].to_numpy().astype(np.int64), propensities=steps["propensity"].to_numpy(dtype=np.float64),
        rewards=reward(parts, reward_cfg).astype(np.float32), terminals=terminal.astype(np.float32),
        buckets=steps["bucket"].to_numpy(), strata=np.full(len(steps), "", dtype=object),
        feature_spec_version=spec_version, days=(ds,), components={c: parts[c] for c in components},
    )
