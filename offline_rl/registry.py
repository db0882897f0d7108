"""MLflow tracking and model registry: one run per nightly, aliases moved only by the gate."""

from __future__ import annotations

import contextlib
import fcntl
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hintrl.errors import GateError

CHAMPION, CHALLENGER, PREVIOUS_CHAMPION = "champion", "challenger", "previous_champion"


def check_tracking_uri(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, in one line, when the tracking server cannot be reached."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as response:
                if response.status != 200:
                    raise GateError(f"MLflow tracking server {uri} answered {response.status} on /health")
        except (urllib.error.URLError, OSError) as err:
            raise GateError(f"MLflow tracking server {uri} is unreachable: {getattr(err, 'reason', err)}") from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise GateError(f"cannot create the MLflow database folder {folder}: {err}") from None
    elif not uri.startswith(("postgresql", "mysql", "databricks", "file:")):
        raise GateError(f"unsupported MLflow tracking URI {uri!r}: use sqlite:///, http(s)://, postgresql:// or mysql://")


@contextlib.contextmanager
def _first_use_lock(tracking_uri: str):  # type: ignore[no-untyped-def]
    """An exclusive file lock beside a local SQLite tracking DB (nothing for a server or other DBs)."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    db = Path(tracking_uri[len("sqlite:///"):])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Registry:
    def __init__(self, tracking_uri: str, model_name: str, experiment: str, artifact_root: str):
        import mlflow

        self.mlflow = mlflow
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.experiment = experiment
        self.artifact_root = artifact_root
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        with _first_use_lock(tracking_uri):
            # Opening a SQLite store creates or migrates its schema; the nightly's training tasks
            # open it at the same time, and two migrations at once corrupt it.
            self.client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
            self.client.search_experiments(max_results=1)
            self.client.search_registered_models(max_results=1)

    def experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        location = None if self.tracking_uri.startswith("http") else Path(self.artifact_root).resolve().as_uri()
        try:
            return self.client.create_experiment(self.experiment, artifact_location=location)
        except self.mlflow.exceptions.MlflowException:
            # Another process (the parallel training task) created it first.
            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                raise
            return found.experiment_id

    def version_by_alias(self, alias: str):  # type: ignore[no-untyped-def]
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as err:
            if "RESOURCE_DOES_NOT_EXIST" in str(err.error_code) or "not found" in str(err).lower():
                return None
            raise

    def load_policy(self, alias: str):  # type: ignore[no-untyped-def]
        """The policy object behind `models:/<name>@alias` and its metadata, or None."""
        version = self.version_by_alias(alias)
        if version is None:
            return None
        model = self.mlflow.pyfunc.load_model(f"models:/{self.model_name}@{alias}")
        python_model = model.unwrap_python_model()
        return python_model.policy, python_model.meta, version

    def log_nightly(
        self,
        ds: str,
        params: dict[str, Any],
        metrics: dict[str, float],
        tables: dict[str, str],
        policy_dirs: dict[str, Path],
        register: str,
        tags: dict[str, str],
        figures: dict[str, Any] | None = None,
    ) -> tuple[str, str, str]:
        """Log one nightly run; register policy `register`. Returns (run id, model version, model URI)."""
        from offline_rl.serving import HintPolicyModel

        mlflow = self.mlflow
        with mlflow.start_run(experiment_id=self.experiment_id(), run_name=f"nightly-{ds}") as run:
            mlflow.set_tags({"ds": ds, **tags})
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            for name, text in tables.items():
                mlflow.log_text(text, name)
            for name, figure in (figures or {}).items():
                mlflow.log_figure(figure, f"report/{name}")
            version = ""
            for algo, folder in policy_dirs.items():
                info = mlflow.pyfunc.log_model(
                    name=f"policy_{algo}",
                    python_model=HintPolicyModel(),
                    artifacts={"policy_dir": str(folder)},
                    pip_requirements=["d3rlpy==2.8.1", "torch==2.13.0", "mlflow==3.17.2", "pandas==2.3.3"],
                    registered_model_name=self.model_name if algo == register else None,
                )
                if algo == register:
                    version = str(info.registered_model_version)
            return run.info.run_id, version, f"models:/{self.model_name}/{version}"

    def apply_decision(self, version: str, promote: bool, reasons: list[str], tags: dict[str, str]) -> dict[str, str]:
        """Tag the version and move aliases; returns the aliases after the move."""
        client = self.client
        for key, value in {**tags, "gate_decision": "promote" if promote else "reject",
                           "gate_reasons": json.dumps(reasons)}.items():
            client.set_model_version_tag(self.model_name, version, key, value[:5000])
        if promote:
            current = self.version_by_alias(CHAMPION)
            if current is not None and str(current.version) != version:
                client.set_registered_model_alias(self.model_name, PREVIOUS_CHAMPION, current.version)
            client.set_registered_model_alias(self.model_name, CHAMPION, version)
        else:
            client.set_registered_model_alias(self.model_name, CHALLENGER, version)
        return self.aliases()

    def aliases(self) -> dict[str, str]:
        model = self.client.get_registered_model(self.model_name)
        return {alias: str(v) for alias, v in (model.aliases or {}).items()}

    def describe(self, version: str, markdown: str) -> None:
        """The description a reviewer reads on the version's page in the MLflow UI."""
        self.client.update_model_version(self.model_name, version, description=markdown)

    def versions(self) -> list:  # type: ignore[type-arg]
        """Every version of the model, newest first (none when the model is not registered yet)."""
        found = self.client.search_model_versions(f"name='{self.model_name}'", max_results=10_000)
        return sorted(found, key=lambda v: int(v.version), reverse=True)

    def promoted_for(self, ds: str):  # type: ignore[no-untyped-def]
        """The version a nightly of `ds` already promoted, or None."""
        return next((v for v in self.versions()
                     if v.tags.get("ds") == ds and v.tags.get("gate_decision") == "promote"), None)

    def status(self) -> dict[str, Any]:
        """The aliased versions with what a reviewer needs to know about each."""
        out: dict[str, Any] = {"model": self.model_name, "aliases": {}}
        if not self.versions():
            return out
        for alias, version in sorted(self.aliases().items()):
            v = self.client.get_model_version(self.model_name, version)
            out["aliases"][alias] = {
                "version": str(v.version), "run_id": v.run_id, "created": v.creation_timestamp,
                **{k: v.tags.get(k) for k in ("ds", "algo", "gate_decision", "data_ds_range", "feature_spec_version",
                                              "code_version", "rolled_back_by", "restored_by")},
            }
        return out

    def rollback(self, by: str, reason: str, when: str) -> dict[str, str]:
        """Make `previous_champion` the champion again; who, why and when go into both versions' tags."""
        previous = self.version_by_alias(PREVIOUS_CHAMPION)
        if previous is None:
            raise GateError(f"{self.model_name} has no {PREVIOUS_CHAMPION} to roll back to")
        current = self.version_by_alias(CHAMPION)
        client = self.client
        # The restored version becomes champion first, so there is always a champion.
        client.set_registered_model_alias(self.model_name, CHAMPION, previous.version)
        client.delete_registered_model_alias(self.model_name, PREVIOUS_CHAMPION)
        for key, value in {"restored_by": by, "restored_reason": reason, "restored_at": when}.items():
            client.set_model_version_tag(self.model_name, previous.version, key, value[:5000])
        if current is not None:
            for key, value in {"rolled_back_by": by, "rolled_back_reason": reason, "rolled_back_at": when,
                               "rolled_back_to": str(previous.version)}.items():
                client.set_model_version_tag(self.model_name, current.version, key, value[:5000])
        return self.aliases()
