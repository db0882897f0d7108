"""Bad input gives a one-line error, a non-zero exit, and promotes nothing."""

import subprocess
import sys

import pytest


def hintrl(*args, home):
    proc = subprocess.run([sys.executable, "-m", "hintrl.cli", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr.strip()


@pytest.mark.parametrize("command", ["nightly", "ingest", "train --algo cql", "simulate"])
def test_malformed_ds_is_one_line(tmp_path, command):
    code, _, err = hintrl(*command.split(), "--ds", "2026-11-31", home=tmp_path)
    assert code != 0
    assert err == "error: malformed ds '2026-11-31': expected a date as YYYY-MM-DD"


def test_missing_raw_partition_is_one_line_and_promotes_nothing(tmp_path):
    code, _, err = hintrl("nightly", "--ds", "2026-11-08", home=tmp_path)
    assert code == 1
    assert [line for line in err.splitlines() if "error" in line.lower()] == err.splitlines()[-1:]
    assert err.startswith("error: missing raw partition search_pv/ds=2026-11-07")
    assert not (tmp_path / "mlflow.db").exists()


def test_unreachable_mlflow_is_one_line(tmp_path):
    code, _, err = hintrl("nightly", "--ds", "2026-11-08", "--mlflow-uri", "http://127.0.0.1:9", home=tmp_path)
    assert code == 1
    assert [line for line in err.splitlines() if "error" in line.lower()] == err.splitlines()[-1:] and "MLflow tracking server http://127.0.0.1:9 is unreachable" in err


def test_unknown_setting_is_one_line(tmp_path):
    code, _, err = hintrl("nightly", "--ds", "2026-11-08", "--set", "train.nope=1", home=tmp_path)
    assert code == 1 and err.startswith("error: bad --set") and len(err.splitlines()) == 1


def test_every_stage_has_help():
    for command in ("simulate", "ingest", "features", "build-mdp", "train", "evaluate", "promote", "nightly",
                    "ground-truth"):
        out = subprocess.run([sys.executable, "-m", "hintrl.cli", command, "--help"], capture_output=True, text=True)
        assert out.returncode == 0 and "--lake" in out.stdout and "--ds" in out.stdout, command
    out = subprocess.run([sys.executable, "-m", "hintrl.cli", "backfill", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--start" in out.stdout and "--end" in out.stdout and "--lake" in out.stdout


def test_backfill_refuses_a_reversed_range(tmp_path):
    code, _, err = hintrl("backfill", "--start", "2026-11-05", "--end", "2026-11-01", home=tmp_path)
    assert code == 1 and err == "error: empty date range: 2026-11-05 is after 2026-11-01"


def test_features_describe_prints_the_registry(tmp_path):
    code, out, _ = hintrl("features", "describe", home=tmp_path)
    assert code == 0
    assert "clicks_last100_t7" in out and "recent_clicks_t0" in out and "Feature spec v1-" in out
    code, out, _ = hintrl("features", "describe", "--action-space", "large", home=tmp_path)
    assert code == 0 and "20000 hint types, counted per family" in out
    assert "clicks_last100_fbrand" in out and "clicks_last100_t7" not in out
    code, _, err = hintrl("features", "describe", "--set", "features.hint_slots=brand", home=tmp_path)
    assert code == 1 and err.startswith("error: features are counted per auto or type or family")


def test_ground_truth_of_a_builtin_policy(tmp_path):
    import json

    small = ["--set", "simulator.n_users=300", "--set", "simulator.n_queries=40", "--set", "simulator.n_items=100"]
    code, out, err = hintrl("ground-truth", "--ds", "2026-11-01", "--days", "1", "--policy", "uniform", "--json", *small,
                            home=tmp_path)
    assert code == 0, err
    results = json.loads(out.splitlines()[-1])["results"]
    assert [r["policy"] for r in results] == ["uniform-explore-v1", "baseline-heuristic-v1", "oracle-myopic"]
    assert results[2]["hint_ctr"]["value"] > results[0]["hint_ctr"]["value"]
    assert set(results[0]["returns"]) == {"ctr", "guided", "ma_rdpg"}
    uniform, baseline = results[0], results[1]
    assert baseline["ratio_to_baseline"] == {"hint_ctr": 1.0, "expected_hint_ctr": 1.0}
    assert uniform["ratio_to_baseline"]["hint_ctr"] == pytest.approx(
        uniform["hint_ctr"]["value"] / baseline["hint_ctr"]["value"])
    assert uniform["ratio_to_baseline"]["expected_hint_ctr"] == pytest.approx(
        uniform["expected_hint_ctr"]["value"] / baseline["expected_hint_ctr"]["value"])
    code, out, err = hintrl("ground-truth", "--ds", "2026-11-01", "--days", "1", "--policy", "uniform", "--no-reference",
                            *small, home=tmp_path)
    assert code == 0, err
    assert "| uniform-explore-v1 |" in out and "| n/a, n/a |" in out  # no baseline to divide by


def test_ground_truth_needs_exactly_one_policy(tmp_path):
    code, _, err = hintrl("ground-truth", "--ds", "2026-11-01", home=tmp_path)
    assert code == 1 and err == "error: give exactly one of --model-uri and --policy"


def _ope_file(path, **columns):
    import pyarrow as pa
    import pyarrow.parquet as pq

    base = {"episode_id": ["e1", "e1", "e2", "e3", "e3", "e3"], "step": [0, 1, 0, 0, 1, 2],
            "reward": [1.0, 0, 0, 0, 1, 1], "behavior_prob": [0.5, 0.5, 0.25, 0.5, 0.5, 0.5],
            "target_prob": [1.0, 0.5, 0.5, 0.25, 0.5, 1.0]}
    base.update(columns)
    pq.write_table(pa.table({k: v for k, v in base.items() if v is not None}), path)
    return str(path)


def test_ope_cli_json_contract(tmp_path):
    import json

    code, out, err = hintrl("ope", "--input", _ope_file(tmp_path / "log.parquet"), "--json", home=tmp_path)
    assert code == 0, err
    report = json.loads(out.splitlines()[-1])
    assert set(report) == {"estimates", "diagnostics"}
    assert set(report["estimates"]) == {"behavior", "is", "wis", "pdis", "wpdis"}
    assert all(set(e) == {"value", "low", "high"} for e in report["estimates"].values())
    assert report["estimates"]["wpdis"]["value"] == pytest.approx(2 / 4.5 + 0.5 / 4.5 + 1 / 5)
    assert report["estimates"]["behavior"]["value"] == pytest.approx(1.0)
    assert report["diagnostics"]["n_episodes"] == 3

    code, out, _ = hintrl("ope", "--input", _ope_file(tmp_path / "dr.parquet", q_hat=[0.5] * 6, v_hat=[0.4] * 6),
                          "--gamma", "0.9", "--json", home=tmp_path)
    report = json.loads(out.splitlines()[-1])
    assert code == 0 and {"dr", "wdr"} <= set(report["estimates"]) and report["diagnostics"]["gamma"] == 0.9


@pytest.mark.parametrize("columns, message", [
    ({"behavior_prob": [0.5, 0.0, 0.25, 0.5, 0.5, 0.5]}, "error: 1 of 6 steps have a behavior probability outside (0, 1]"),
    ({"behavior_prob": [0.5, None, 0.25, 0.5, 0.5, 0.5]}, "error: 1 of 6 steps have a missing behavior probability"),
    ({"target_prob": None}, "error: "),
])
def test_ope_cli_refuses_bad_input_in_one_line(tmp_path, columns, message):
    code, _, err = hintrl("ope", "--input", _ope_file(tmp_path / "bad.parquet", **columns), home=tmp_path)
    assert code == 1 and err.startswith(message) and len(err.splitlines()) == 1
    if columns.get("target_prob", 0) is None:
        assert "lacks column(s): target_prob" in err


def test_large_action_space_logs_and_a_clear_refusal_to_train_the_masked_network(tmp_path):
    small = ["--set", "simulator.n_users=200", "--set", "simulator.n_queries=30"]
    code, out, err = hintrl("simulate", "--ds", "2026-11-01", "--days", "1", "--action-space", "large", *small, home=tmp_path)
    assert code == 0, err
    code, _, err = hintrl("train", "--ds", "2026-11-08", "--algo", "dqn", "--set", "train.q_function=masked", home=tmp_path)
    assert code == 1 and "20000 hint types" in err and "train.q_function=embedding" in err
    assert [line for line in err.splitlines() if "error" in line.lower()] == err.splitlines()[-1:]
