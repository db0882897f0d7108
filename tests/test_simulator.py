import numpy as np
import pytest

from hintrl.config import SimulatorConfig
from hintrl.contracts import arrow_schema
from simulator.logging_policy import StepContext
from simulator.logs import Simulator

SMALL = SimulatorConfig(n_users=300, n_queries=40, n_items=200, seed=11)


@pytest.fixture(scope="module")
def day():
    return Simulator(SMALL).simulate_day("2026-11-01", 0).search_pv.to_pandas()


def test_deterministic_for_a_seed():
    a = Simulator(SMALL).simulate_day("2026-11-01", 0).search_pv
    b = Simulator(SMALL).simulate_day("2026-11-01", 0).search_pv
    assert a.equals(b)
    c = Simulator(SimulatorConfig(n_users=300, n_queries=40, n_items=200, seed=12)).simulate_day("2026-11-01", 0).search_pv
    assert not a.equals(c)


def test_tables_follow_the_raw_contract():
    sim = Simulator(SMALL)
    logs = sim.simulate_day("2026-11-01", 0)
    for name in ("search_pv", "user_action", "user_profile"):
        assert getattr(logs, name).schema.equals(arrow_schema(name)), name
    for name, table in sim.static_tables().items():
        assert table.schema.equals(arrow_schema(name)), name


def test_logged_propensities_are_the_logging_policy_probabilities(day):
    sim = Simulator(SMALL)
    for (_, _), ep in day.sort_values("page").groupby(["session_id", "query_id"]):
        shown = []
        for row in ep.itertuples():
            open_c = np.array([c for c in row.candidates if c not in shown])
            policy = sim.explore if row.bucket == "explore" else sim.baseline
            ctx = StepContext(0, 0, row.page, 0.0, 0, open_c, np.zeros(8), lambda: np.zeros(0))
            probs = policy.probabilities(ctx)
            assert row.propensity == pytest.approx(probs[list(open_c).index(row.hint_type)])
            shown.append(row.hint_type)


def test_episodes_are_well_formed(day):
    assert day.event_id.is_unique
    for _, ep in day.groupby(["session_id", "query_id"]):
        assert list(ep.sort_values("ts").page) == list(range(1, len(ep) + 1))
        assert ep.hint_type.is_unique  # a hint is not shown twice in an episode
        assert all(h in c for h, c in zip(ep.hint_type, ep.candidates))
    assert (day.ts.dt.strftime("%Y-%m-%d") == "2026-11-01").all()


def test_baseline_beats_uniform_exploration_on_ctr():
    sim = Simulator(SimulatorConfig(n_users=1500, seed=3, explore_share=0.5))
    pv = sim.simulate_day("2026-11-01", 0).search_pv.to_pandas()
    rates = pv.groupby("bucket").hint_clicked.mean()
    assert rates["baseline"] > rates["explore"]
