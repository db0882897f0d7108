"""End to end: simulate logs, run the real hintrl_nightly DAG (dag.test) twice, check the registry."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

SMALL_WORLD = ["--set", "simulator.n_users=600", "--set", "simulator.n_queries=60", "--set", "simulator.n_items=300"]
FAST_SETTINGS = {
    "train.train_days": 2, "train.n_steps": 200, "train.n_steps_per_epoch": 100, "ope.n_bootstrap": 200,
    "ope.fqe_steps": 100,
    # A permissive gate, so that the first night promotes and the second faces a champion.
    "gate.min_margin_over_behavior": -100, "gate.min_margin_over_champion": -100, "gate.min_effective_sample_size": 0,
    "gate.guardrails": {"purchased": 100},
}


def as_flags(settings):
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={json.dumps(value)}")]


FAST = as_flags(FAST_SETTINGS)


def hintrl(home, *args):
    import os

    # mlflow.set_tracking_uri (in earlier tests) exports MLFLOW_TRACKING_URI; each run here uses its home's.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run([sys.executable, "-m", "hintrl.cli", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    hintrl(home, "simulate", "--ds", "2026-11-01", "--days", "5", *SMALL_WORLD)
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
    assert v1.tags["code_version"].startswith("0.1.0") and v1.tags["ope.behavior"].startswith("behavior ")
    assert v1.tags[f"ope.{v1.tags['algo']}"].startswith("wpdis ") and "ess=" in v1.tags["ope.behavior"]
    assert "guardrail.behavior.purchased" in v1.tags
    assert "PROMOTED to champion" in v1.description and "| policy | estimator | value |" in v1.description


def test_second_night_evaluates_the_champion_on_the_same_day(two_nights):
    home, _, second = two_nights
    assert "| champion | wpdis |" in second
    report = json.loads((home / "staging" / "ds=2026-11-05" / "ope.json").read_text())
    assert report["eval_day"] == "2026-11-04" and report["champion_version"] == "1"
    assert {e["policy"] for e in report["evaluations"]} == {"behavior", "cql", "dqn", "champion"}
    cql = next(e for e in report["evaluations"] if e["policy"] == "cql")["estimates"]
    assert {"wpdis", "dm", "dr", "wdr"} <= set(cql)  # FQE of the stochastic policy feeds DM, DR and WDR
    client = registry(home)
    aliases = client.get_registered_model("hintrl_hint_policy").aliases
    assert {k: str(v) for k, v in aliases.items()} == {"champion": "2", "previous_champion": "1"}
    runs = client.search_runs([client.get_experiment_by_name("hintrl_nightly").experiment_id])
    nightly = [r for r in runs if r.data.tags.get("hintrl.stage") != "train"]
    assert sorted(r.data.params["ds"] for r in nightly) == ["2026-11-04", "2026-11-05"]
    # One training run per algorithm and night, each linked from its nightly's run.
    training = {(r.data.tags["ds"], r.data.tags["algo"]): r.info.run_id for r in runs if r.data.tags.get("hintrl.stage") == "train"}
    assert set(training) == {(d, a) for d in ("2026-11-04", "2026-11-05") for a in ("cql", "dqn")}
    for r in nightly:
        assert r.data.tags["train_run.cql"] == training[(r.data.params["ds"], "cql")]
    assert all("ope.behavior.behavior.value" in r.data.metrics for r in nightly)
    assert {a.path for a in client.list_artifacts(nightly[0].info.run_id, "report")} == {
        "report/ope_estimates.png", "report/ope_weights.png", "report/ope_actions.png"}


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


def _free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(args, env_extra, ready_url, timeout_s=180):
    """Start an MLflow server process on loopback and wait until `ready_url` answers."""
    import os
    import time
    import urllib.request
    from pathlib import Path

    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), **env_extra}
    proc = subprocess.Popen([str(Path(bin_dir) / "mlflow"), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow {args[0]} exited: {proc.stderr.read()[-3000:]}")
        try:
            with urllib.request.urlopen(ready_url, timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise AssertionError(f"mlflow {args[0]} did not answer {ready_url} in {timeout_s}s")


def test_registered_model_gives_the_evaluated_policys_probabilities_and_torchscript(two_nights):
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    import torch

    from hintrl.lake import Lake
    from offline_rl.dataset import load_transitions
    from offline_rl.train import load_policy

    home, _, _ = two_nights
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/hintrl_hint_policy@champion")
    algo = registry(home).get_model_version("hintrl_hint_policy", "2").tags["algo"]
    evaluated, _ = load_policy(home / "staging" / "ds=2026-11-05" / algo)  # what the gate evaluated
    data = load_transitions(Lake(str(home / "lake")), ["2026-11-04"], 8)
    rows = np.arange(0, len(data), max(1, len(data) // 200))
    candidates = [list(np.flatnonzero(data.masks[i])) for i in rows]
    out = model.predict(pd.DataFrame({"state": list(data.states[rows]), "candidates": candidates}))
    expected = evaluated.action_probabilities(data.observations[rows])
    for got, cands, exp in zip(out.probabilities, candidates, expected):
        np.testing.assert_allclose(got, exp[cands], atol=1e-6)
    scripted = torch.jit.load(str(home / "staging" / "ds=2026-11-05" / algo / "policy_torchscript.pt"))
    np.testing.assert_allclose(scripted(torch.as_tensor(data.observations[rows])).numpy(), expected, atol=1e-6)


def test_served_model_builds_the_state_from_feature_rows_with_its_bundled_spec(two_nights):
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd

    home, _, _ = two_nights
    lake, day = home / "lake", "ds=2026-11-04"
    transitions = pd.read_parquet(lake / "mdp" / "transitions" / day, columns=["event_id", "state", "candidates"])
    transitions = transitions.sample(n=min(150, len(transitions)), random_state=0)
    pv = pd.read_parquet(lake / "validated" / "search_pv" / day, columns=["event_id", "user_id", "query_id", "candidates"])
    rows = (pv.merge(pd.read_parquet(lake / "features" / "pv_rt" / day).drop(columns=["ts", "session_id", "user_id", "query_id"]), on="event_id")
            .merge(pd.read_parquet(lake / "features" / "user_lt" / day), on="user_id", how="left")
            .merge(pd.read_parquet(lake / "features" / "query_lt" / day), on="query_id", how="left"))
    rows = rows.set_index("event_id").loc[transitions.event_id].reset_index()
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/hintrl_hint_policy@champion")
    from_features = model.predict(rows)  # full candidates + shown_in_session: the model removes what was shown
    from_states = model.predict(pd.DataFrame({"state": list(transitions.state), "candidates": list(transitions.candidates)}))
    assert [list(c) for c in from_features.candidates] == [list(c) for c in transitions.candidates]
    for a, b in zip(from_features.probabilities, from_states.probabilities):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_mlflow_models_serve_answers_with_the_champion(two_nights):
    import json as _json
    import urllib.request

    home, _, _ = two_nights
    port = _free_port()
    proc = _serve(["models", "serve", "-m", "models:/hintrl_hint_policy@champion", "--env-manager", "local",
                   "--host", "127.0.0.1", "--port", str(port)],
                  {"MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}, f"http://127.0.0.1:{port}/ping")
    try:
        state_dim = json.loads((home / "staging" / "ds=2026-11-05" / "cql" / "policy.json").read_text())["state_dim"]
        body = {"dataframe_split": {"columns": ["state", "candidates"], "data": [[[0.1] * state_dim, [1, 4, 6]]]}}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=_json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            prediction = _json.loads(response.read())["predictions"][0]
        assert prediction["hint_type"] in (1, 4, 6) and sum(prediction["probabilities"]) == pytest.approx(1.0)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_gate_and_registry_against_a_real_mlflow_server(two_nights, tmp_path):
    home, _, _ = two_nights
    port = _free_port()
    proc = _serve(["server", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                   "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port)],
                  {}, f"http://127.0.0.1:{port}/health")
    uri = f"http://127.0.0.1:{port}"
    try:
        out = hintrl(home, "promote", "--ds", "2026-11-05", "--mlflow-uri", uri, *FAST)
        assert "PROMOTED models:/hintrl_hint_policy/1" in out
        status = json.loads(hintrl(home, "registry", "status", "--mlflow-uri", uri, "--json").splitlines()[-1])
        assert status["aliases"]["champion"]["version"] == "1" and status["aliases"]["champion"]["ds"] == "2026-11-05"
        assert "already promoted version 1" in hintrl(home, "promote", "--ds", "2026-11-05", "--mlflow-uri", uri, *FAST)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # the server is gone: the gate fails closed, in one line
    failed = subprocess.run([sys.executable, "-m", "hintrl.cli", "promote", "--ds", "2026-11-05", "--mlflow-uri", uri,
                             "--home", str(home)], capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: MLflow tracking server") and "unreachable" in failed.stderr


def test_rerunning_a_promoted_night_registers_nothing(two_nights):
    home, _, _ = two_nights
    out = hintrl(home, "promote", "--ds", "2026-11-05", *FAST)
    assert "already promoted version 2" in out
    assert len(registry(home).search_model_versions("name='hintrl_hint_policy'")) == 2


def test_a_strict_gate_keeps_the_champion(two_nights):
    home, _, _ = two_nights
    strict = as_flags({**FAST_SETTINGS, "gate.min_margin_over_behavior": 100, "gate.guardrails": {"purchased": 0}})
    out = hintrl(home, "nightly", "--ds", "2026-11-06", *strict)
    assert "Gate: NOT PROMOTED" in out and "failed: wpdis lower bound" in out
    client = registry(home)
    aliases = client.get_registered_model("hintrl_hint_policy").aliases
    assert str(aliases["champion"]) == "2" and str(aliases["challenger"]) == "3"
    v3 = client.get_model_version("hintrl_hint_policy", "3")
    assert v3.tags["gate_decision"] == "reject" and "not promoted" in v3.description


def test_evaluation_on_several_held_out_days_pools_their_episodes(two_nights, tmp_path):
    """`ope.eval_days=2`: the nightly of 2026-11-05 evaluates on 11-03 and 11-04 together."""
    import shutil

    home, _, _ = two_nights
    copy = tmp_path / "home"
    shutil.copytree(home / "lake", copy / "lake")
    shutil.copytree(home / "staging" / "ds=2026-11-05", copy / "staging" / "ds=2026-11-05")
    hintrl(copy, "evaluate", "--ds", "2026-11-05", *as_flags({**FAST_SETTINGS, "ope.eval_days": 2}))
    report = json.loads((copy / "staging" / "ds=2026-11-05" / "ope.json").read_text())
    one_day = {ds: json.loads((home / "staging" / f"ds={ds}" / "ope.json").read_text()) for ds in ("2026-11-04", "2026-11-05")}
    assert report["eval_days"] == ["2026-11-03", "2026-11-04"] and report["eval_label"] == "2026-11-03..2026-11-04"
    assert report["eval_episodes"] == sum(r["eval_episodes"] for r in one_day.values())
    assert report["eval_transitions"] == sum(r["eval_transitions"] for r in one_day.values())


def test_registry_status_and_rollback_record_who_and_why(two_nights):
    home, _, _ = two_nights
    status = json.loads(hintrl(home, "registry", "status", "--json").splitlines()[-1])
    assert status["aliases"]["champion"]["version"] == "2" and status["aliases"]["previous_champion"]["version"] == "1"
    out = hintrl(home, "registry", "rollback", "--reason", "CTR dropped in the A/B test", "--by", "alice", "--json")
    after = json.loads(out.splitlines()[-1])["aliases"]
    assert after["champion"]["version"] == "1" and "previous_champion" not in after
    client = registry(home)
    v1, v2 = (client.get_model_version("hintrl_hint_policy", v) for v in ("1", "2"))
    assert (v1.tags["restored_by"], v1.tags["restored_reason"]) == ("alice", "CTR dropped in the A/B test")
    assert (v2.tags["rolled_back_by"], v2.tags["rolled_back_to"]) == ("alice", "1")
    proc = subprocess.run([sys.executable, "-m", "hintrl.cli", "registry", "rollback", "--reason", "again",
                           "--home", str(home)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "no previous_champion to roll back to" in proc.stderr


def test_a_failed_data_quality_check_stops_the_nightly_and_is_recorded(two_nights, tmp_path):
    """A validated partition that lost a file (its _SUCCESS marker still there): the ingest check
    recounts raw = clean + quarantined, fails, and nothing downstream runs."""
    import shutil

    home, _, _ = two_nights
    copy = tmp_path / "home"
    shutil.copytree(home / "lake", copy / "lake")
    validated = copy / "lake" / "validated" / "search_pv" / "ds=2026-11-04"
    for part in validated.glob("*.parquet"):
        part.unlink()
    # (an earlier test's nightly built 2026-11-05's transitions in the original lake)
    shutil.rmtree(copy / "lake" / "mdp" / "transitions" / "ds=2026-11-05", ignore_errors=True)
    proc = subprocess.run([sys.executable, "-m", "hintrl.cli", "nightly", "--ds", "2026-11-06", "--home", str(copy), *FAST],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1
    assert "failed task(s): check_ingest (ingest data-quality check failed: search_pv/ds=2026-11-04:" in proc.stderr
    assert "raw rows but 0 clean" in proc.stderr and "not run: build_mdp" in proc.stderr
    failures = [json.loads(line) for line in (copy / "alerts" / "failures.jsonl").read_text().splitlines()]
    assert [f["task_id"] for f in failures] == ["check_ingest"]
    assert not (copy / "lake" / "mdp" / "transitions" / "ds=2026-11-05").exists()
    assert not (copy / "staging" / "ds=2026-11-06").exists()


def test_thompson_per_query_fits_evaluates_and_rolls_out_from_the_logs_query_ids(two_nights):
    import numpy as np
    import pandas as pd

    from hintrl.config import OPEConfig, SimulatorConfig
    from hintrl.lake import Lake
    from offline_rl.baselines import fit_thompson
    from offline_rl.dataset import load_transitions
    from offline_rl.evaluate import evaluate_policy
    from simulator.ground_truth import rollout
    from simulator.logging_policy import ServedPolicy

    home, _, _ = two_nights
    lake = Lake(str(home / "lake"))
    days = ["2026-11-01", "2026-11-02", "2026-11-03"]
    data = load_transitions(lake, days, 8, ("hint_click",), with_queries=True)
    logged = pd.concat([pd.read_parquet(home / "lake" / "mdp" / "transitions" / f"ds={d}", columns=["episode_id"]) for d in days])
    assert sorted(set(np.asarray(data.queries))) == sorted({e.split("|", 1)[1] for e in logged.episode_id})
    policy = fit_thompson(data, per="query")
    q = str(data.queries[0])
    shown = data.actions[np.asarray(data.queries) == q]
    assert policy.alpha[policy.query_rows[q]].sum() > policy.alpha[-1].sum()  # its own shows and clicks on the prior
    assert policy.beta[policy.query_rows[q]].sum() - policy.beta[-1].sum() == pytest.approx(
        len(shown) - data.components["hint_click"][np.asarray(data.queries) == q].sum())
    held_out = load_transitions(lake, ["2026-11-04"], 8, with_queries=True)
    value = evaluate_policy("thompson_query", policy, held_out, OPEConfig(n_bootstrap=50, fqe_steps=0)).estimates["wpdis"]
    assert np.isfinite(value.value) and value.effective_sample_size > 0
    with pytest.raises(ValueError, match="per query"):
        evaluate_policy("thompson_query", policy, load_transitions(lake, ["2026-11-04"], 8), OPEConfig(n_bootstrap=50, fqe_steps=0))
    world = SimulatorConfig(n_users=600, n_queries=60, n_items=300)
    # The simulator names its queries as the logs do, so every logged query finds its posterior.
    truth = rollout(ServedPolicy(policy), world, "2026-11-01", 1)
    assert 0 < truth.hint_ctr.value < 1


@pytest.fixture(scope="module")
def large_night(tmp_path_factory):
    """A night on the large catalog (20,000 hint ids): the action-embedding network end to end."""
    home = tmp_path_factory.mktemp("large")
    hintrl(home, "simulate", "--ds", "2026-11-01", "--days", "4", "--action-space", "large", *SMALL_WORLD)
    return home, hintrl(home, "nightly", "--ds", "2026-11-04", *FAST)


def test_large_catalog_night_trains_evaluates_and_serves_the_embedding_network(large_night):
    import mlflow.pyfunc
    import numpy as np
    import pandas as pd
    import torch

    from hintrl.lake import Lake
    from offline_rl.dataset import load_transitions
    from offline_rl.policies import candidate_probabilities
    from offline_rl.train import load_policy

    home, out = large_night
    assert "Gate: PROMOTED to champion" in out
    staged = home / "staging" / "ds=2026-11-04"
    report = json.loads((staged / "ope.json").read_text())
    assert {e["policy"] for e in report["evaluations"]} == {"behavior", "cql", "dqn"}
    for evaluation in report["evaluations"]:
        assert len(evaluation["action_share"]) == 20_000 and sum(evaluation["action_share"]) == pytest.approx(1.0)
        assert all(np.isfinite(e["value"]) for e in evaluation["estimates"].values())
    algo = registry(home).get_model_version("hintrl_hint_policy", "1").tags["algo"]
    evaluated, meta = load_policy(staged / algo)
    assert meta["layout"] == "ids" and meta["n_actions"] == 20_000 and evaluated.layout == "ids"

    data = load_transitions(Lake(str(home / "lake")), ["2026-11-03"], 20_000, layout="ids")
    rows = np.arange(0, len(data), max(1, len(data) // 100))
    candidates = data.padded_candidates(rows)
    expected = candidate_probabilities(evaluated, data.states[rows], candidates, 20_000)
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/hintrl_hint_policy@champion")
    lists = [[int(c) for c in row if c >= 0] for row in candidates]
    served = model.predict(pd.DataFrame({"state": list(data.states[rows]), "candidates": lists}))
    for got, cands, exp in zip(served.probabilities, lists, expected):
        np.testing.assert_allclose(got, exp[: len(cands)], atol=1e-6)
    assert all(h in cands for h, cands in zip(served.hint_type, lists))
    scripted = torch.jit.load(str(staged / algo / "policy_torchscript.pt"))
    np.testing.assert_allclose(scripted(torch.as_tensor(data.observation_rows(rows))).numpy(), expected, atol=1e-6)
