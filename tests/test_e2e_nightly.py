"""End to end: simulate logs, run the real hintrl_nightly DAG (dag.test) twice, check the registry."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

SMALL_WORLD = ["--set", "simulator.n_users=600", "--set", "simulator.n_queries=60", "--set", "simulator.n_items=300"]
FAST_SETTINGS = {
    "train.train_days": 2, "train.n_steps": 200, "train.n_steps_per_epoch": 100, "ope.n_bootstrap": 200,
    # A permissive gate, so that the first night promotes and the second faces a champion.
    "gate.min_margin_over_behavior": -100, "gate.min_margin_over_champion": -100, "gate.min_effective_sample_size": 0,
}


def as_flags(settings):
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


FAST = as_flags(FAST_SETTINGS)


def hintrl(home, *args):
    proc = subprocess.run([sys.executable, "-m", "hintrl.cli", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    hintrl(home, "simulate", "--ds", "2026-11-01", "--days", "4", *SMALL_WORLD)
    first = hintrl(home, "nightly", "--ds", "2026-11-04", *FAST)
    second = hintrl(home, "nightly", "--ds", "2026-11-05", *FAST)
    return home, first, second


def registry(home):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")


def test_first_night_promotes_and_prints_a_summary(two_nights):
    home, first, _ = two_nights
    assert "hintrl nightly ds=2026-11-04" in first
    assert "ingest   2026-11-03: search_pv" in first and "mdp      2026-11-03" in first
    assert "| behavior | behavior |" in first and "| cql | wpdis |" in first and "| dqn | wpdis |" in first
    assert "Gate: PROMOTED to champion" in first
    assert "Model: models:/hintrl_hint_policy/1" in first
    v1 = registry(home).get_model_version("hintrl_hint_policy", "1")
    assert v1.tags["gate_decision"] == "promote" and v1.tags["ds"] == "2026-11-04"
    assert v1.tags["data_ds_range"] == "2026-11-01..2026-11-03"
    assert json.loads(v1.tags["gate_reasons"])[1] == "passed: no current champion"


def test_second_night_evaluates_the_champion_on_the_same_day(two_nights):
    home, _, second = two_nights
    assert "| champion | wpdis |" in second
    report = json.loads((home / "staging" / "ds=2026-11-05" / "ope.json").read_text())
    assert report["eval_day"] == "2026-11-04" and report["champion_version"] == "1"
    assert {e["policy"] for e in report["evaluations"]} == {"behavior", "cql", "dqn", "champion"}
    client = registry(home)
    aliases = client.get_registered_model("hintrl_hint_policy").aliases
    assert {k: str(v) for k, v in aliases.items()} == {"champion": "2", "previous_champion": "1"}
    runs = client.search_runs([client.get_experiment_by_name("hintrl_nightly").experiment_id])
    assert sorted(r.data.params["ds"] for r in runs) == ["2026-11-04", "2026-11-05"]
    assert all("ope.behavior.behavior.value" in r.data.metrics for r in runs)


def test_champion_loads_as_a_pyfunc_and_masks_candidates(two_nights):
    import mlflow.pyfunc
    import pandas as pd

    home, _, _ = two_nights
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/hintrl_hint_policy@champion")
    state_dim = model.unwrap_python_model().meta["state_dim"]
    out = model.predict(pd.DataFrame({"state": [[0.1] * state_dim], "candidates": [[2, 5, 7]]}))
    assert out.hint_type[0] in (2, 5, 7)
    assert sum(out.probabilities[0]) == pytest.approx(1.0)


def test_a_strict_gate_keeps_the_champion(two_nights):
    home, _, _ = two_nights
    strict = as_flags({**FAST_SETTINGS, "gate.min_margin_over_behavior": 100})
    out = hintrl(home, "promote", "--ds", "2026-11-05", *strict)
    assert "NOT PROMOTED" in out and "failed: wpdis lower bound" in out
    client = registry(home)
    aliases = client.get_registered_model("hintrl_hint_policy").aliases
    assert str(aliases["champion"]) == "2" and str(aliases["challenger"]) == "3"
    assert client.get_model_version("hintrl_hint_policy", "3").tags["gate_decision"] == "reject"
