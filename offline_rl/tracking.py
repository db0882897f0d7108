"""Training runs in MLflow: a d3rlpy logger adapter that streams each epoch's metrics to an MLflow
run, and the run itself, which records what a trained policy came from (params, reward preset,
dataset ds range and row count, feature-spec version) and the staged model.

One run per (nightly ds, algorithm): training that day again replaces the earlier run (it is marked
deleted), so reruns leave one record. The nightly's promote run links the training runs by id.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param

TRAIN_STAGE_TAG = "hintrl.stage"


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = (value if isinstance(value, str) else json.dumps(value, default=str))[:6000]
    return out


def _log_params(client, run_id: str, params: dict[str, Any], prefix: str = "") -> None:  # type: ignore[no-untyped-def]
    items = [Param(k, v) for k, v in _flatten(params, prefix).items()]
    for start in range(0, len(items), 100):  # MLflow's batch limit
        client.log_batch(run_id, params=items[start:start + 100])


class MlflowAdapter:
    """d3rlpy `LoggerAdapter`: params once, then every epoch's metrics in one batch, at its step."""

    def __init__(self, client, run_id: str):  # type: ignore[no-untyped-def]
        self.client = client
        self.run_id = run_id
        self._pending: list[Metric] = []

    def write_params(self, params: dict[str, Any]) -> None:
        _log_params(self.client, self.run_id, params, "d3rlpy.")

    def before_write_metric(self, epoch: int, step: int) -> None:
        self._pending = []

    def write_metric(self, epoch: int, step: int, name: str, value: float) -> None:
        self._pending.append(Metric(name, float(value), int(time.time() * 1000), step))

    def after_write_metric(self, epoch: int, step: int) -> None:
        if self._pending:
            self._pending.append(Metric("epoch", float(epoch), int(time.time() * 1000), step))
            self.client.log_batch(self.run_id, metrics=self._pending)
        self._pending = []

    def save_model(self, epoch: int, algo: Any) -> None:
        # The trainer logs the final staged model (with its serving files) once, at the end.
        pass

    def watch_model(self, epoch: int, step: int) -> None:
        pass

    def close(self) -> None:
        pass


class MlflowAdapterFactory:
    def __init__(self, client, run_id: str):  # type: ignore[no-untyped-def]
        self.client = client
        self.run_id = run_id

    def create(self, algo: Any, experiment_name: str, n_steps_per_epoch: int) -> MlflowAdapter:
        return MlflowAdapter(self.client, self.run_id)


class TrainingRun:
    """The MLflow run of one algorithm's training for a nightly."""

    def __init__(self, registry, ds: str, algo: str, params: dict[str, Any], tags: dict[str, str]):  # type: ignore[no-untyped-def]
        self.client = registry.client
        experiment_id = registry.experiment_id()
        stale = self.client.search_runs(
            [experiment_id],
            f"tags.`{TRAIN_STAGE_TAG}` = 'train' and tags.ds = '{ds}' and tags.algo = '{algo}'",
        )
        for run in stale:
            self.client.delete_run(run.info.run_id)
        run = self.client.create_run(experiment_id, run_name=f"train-{algo}-{ds}",
                                     tags={TRAIN_STAGE_TAG: "train", "ds": ds, "algo": algo, **tags})
        self.run_id = run.info.run_id
        _log_params(self.client, self.run_id, params)

    def adapter_factory(self) -> MlflowAdapterFactory:
        return MlflowAdapterFactory(self.client, self.run_id)

    def finish(self, folder: Path, metrics: dict[str, float]) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        self.client.log_artifacts(self.run_id, str(folder), "model")
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self) -> None:
        self.client.set_terminated(self.run_id, "FAILED")
