"""Training runs in MLflow: the d3rlpy adapter streams every epoch; the run records its data and model."""

import json

from test_baselines_sampling import make_transitions

from hintrl.config import TrainConfig
from offline_rl.registry import Registry
from offline_rl.tracking import TrainingRun
from offline_rl.train import train_policy


def test_a_training_run_streams_epochs_and_records_data_params_and_model(tmp_path):
    registry = Registry(f"sqlite:///{tmp_path / 'mlflow.db'}", "m", "exp", str(tmp_path / "artifacts"))
    data = make_transitions(400)
    cfg = TrainConfig(n_steps=60, n_steps_per_epoch=20, batch_size=32, hidden_units=(8,),
                      stratum_mix={"F|*|*": 0.5, "M|*|*": 0.5})
    run = TrainingRun(registry, "2026-11-08", "dqn", {"train": {"n_steps": 60}, "rows": len(data)},
                      {"data_ds_range": "2026-11-01..2026-11-01", "feature_spec_version": "test"})
    trained = train_policy("dqn", data, cfg, tmp_path / "dqn", lambda _m: None, run.adapter_factory(), run.run_id)
    run.finish(tmp_path / "dqn", {"seconds": trained.seconds})

    client = registry.client
    record = client.get_run(run.run_id)
    assert record.info.status == "FINISHED"
    assert record.data.tags["data_ds_range"] == "2026-11-01..2026-11-01" and record.data.tags["algo"] == "dqn"
    assert record.data.params["rows"] == "400" and record.data.params["train.n_steps"] == "60"
    assert "d3rlpy.config.params.batch_size" in record.data.params  # d3rlpy's own params, via the adapter
    loss = client.get_metric_history(run.run_id, "loss")
    assert [m.step for m in loss] == [20, 40, 60]  # one point per epoch, at its step
    assert {a.path for a in client.list_artifacts(run.run_id, "model")} >= {"model/model.d3", "model/policy.json"}
    meta = json.loads((tmp_path / "dqn" / "policy.json").read_text())
    assert meta["mlflow_run_id"] == run.run_id and meta["stratum_mix"] == {"F|*|*": 0.5, "M|*|*": 0.5}

    # Training the same nightly again replaces the record instead of adding a second one.
    again = TrainingRun(registry, "2026-11-08", "dqn", {}, {})
    live = client.search_runs([registry.experiment_id()], "tags.ds = '2026-11-08'")
    assert [r.info.run_id for r in live] == [again.run_id]


def test_processes_opening_a_fresh_sqlite_store_at_once_do_not_corrupt_it(tmp_path):
    """The nightly's training tasks run in parallel and each opens the tracking DB: its creation
    is serialised, so every process gets a working store."""
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = ("import sys; from offline_rl.registry import Registry; "
            f"r = Registry({uri!r}, 'm', 'exp', {str(tmp_path / 'a')!r}); print(r.experiment_id())")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    assert len({out.strip().splitlines()[-1] for out, _ in outs}) == 1  # one experiment, found by all
