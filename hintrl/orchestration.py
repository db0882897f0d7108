"""What the DAGs call: plans of a run from its params, Spark job submissions, data-quality checks,
the failure callback, and one pipeline stage as its own `hintrl` process (Spark JVMs and d3rlpy stay
out of the scheduler); then the stage reports turned into the summary a person reads."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from hintrl.config import HintrlConfig, OrchestrationConfig
from hintrl.dates import day_range, parse_ds
from hintrl.errors import HintrlError
from hintrl.lake import Lake, raw_day_complete

JOBS_DIR = Path(__file__).resolve().parent.parent / "pipelines"
# The Spark jobs a stage is made of (each a file in pipelines/ run by spark-submit).
SPARK_JOBS = {"ingest": ("ingest",), "features": ("long_term", "realtime"), "mdp": ("mdp",)}


def config_of(conf: dict[str, Any]) -> HintrlConfig:
    """The run's configuration from the `conf` a plan carries (home, lake, MLflow URI, settings)."""
    cfg = HintrlConfig(home=Path(conf["home"]), lake=conf.get("lake"), mlflow_uri=conf.get("mlflow_uri"))
    return cfg.with_settings(conf.get("settings") or {}, "settings")


def run_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The `settings` param with the DAG's explicit params (reward preset, algos, train days, gate) on top."""
    settings = dict(params.get("settings") or {})
    if params.get("reward_preset"):
        settings["reward.preset"] = params["reward_preset"]
    if params.get("algos"):
        settings["train.algos"] = list(params["algos"])
    if params.get("train_days"):
        settings["train.train_days"] = int(params["train_days"])
    for key, value in (params.get("gate") or {}).items():
        settings[f"gate.{key}"] = value
    return settings


def spark_job_args(job_conf: dict[str, Any], ds: str, since: str | None = None, force: bool = False) -> list[str]:
    """Arguments of a `pipelines/<job>.py` run (the master comes from the Spark connection)."""
    cfg = config_of(job_conf)
    args = ["--lake", cfg.lake_uri, "--ds", ds]
    if since and since != ds:
        args += ["--since", since]
    if force:
        args.append("--force")
    return args + settings_flags(job_conf)


def settings_flags(conf: dict[str, Any]) -> list[str]:
    """The plan's settings as `--set section.key=<json>` flags (the CLI and the job files parse them)."""
    return [arg for key, value in sorted((conf.get("settings") or {}).items())
            for arg in ("--set", f"{key}={json.dumps(value)}")]


def spark_submit_conf(cfg: HintrlConfig) -> dict[str, str]:
    return {**cfg.spark.session_conf(), "spark.log.level": "WARN"}


def spark_submit_env() -> dict[str, str]:
    """The worker's own Python drives the job (and finds `spark-submit` beside it)."""
    bin_dir = str(Path(sys.executable).parent)
    return {"PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def _conf(params: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    return {"home": params["home"], "lake": params.get("lake"), "mlflow_uri": params.get("mlflow_uri"), "settings": settings}


def nightly_plan(params: dict[str, Any], logical_date: dt.datetime) -> dict[str, Any]:
    """Everything the nightly's tasks need, decided once: days, settings, each Spark job's arguments."""
    ds = params.get("ds") or logical_date.strftime("%Y-%m-%d")
    parse_ds(ds)
    settings = run_settings(params)
    conf = _conf(params, settings)
    cfg = config_of(conf)
    window = cfg.nightly_window(ds)
    spark_args = {f"{job}_args": spark_job_args(conf, window.eval_day, window.first_day)
                  for jobs in SPARK_JOBS.values() for job in jobs}
    return {"ds": ds, "eval_day": window.eval_day, "since": window.first_day, "algos": list(cfg.train.algos),
            "conf": conf, **spark_args, "spark_conf": spark_submit_conf(cfg), "spark_env": spark_submit_env()}


def backfill_plan(params: dict[str, Any]) -> dict[str, Any]:
    start, end = params["start"], params["end"]
    days = day_range(start, end)
    conf = _conf(params, dict(params.get("settings") or {}))
    cfg = config_of(conf)
    day_args = [spark_job_args(conf, d, force=True) for d in days]
    return {"start": start, "end": end, "days": days, "conf": conf, "ingest_args": day_args, "mdp_args": day_args,
            **{f"{job}_args": spark_job_args(conf, end, start, force=True) for job in SPARK_JOBS["features"]},
            "spark_conf": spark_submit_conf(cfg), "spark_env": spark_submit_env()}


def raw_logs_ready(conf: dict[str, Any], day: str) -> bool:
    return raw_day_complete(Lake(config_of(conf).lake_uri), day)


def quality_check(stage: str, conf: dict[str, Any], ds: str, since: str | None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run a data-quality check; bad data fails the task for good (retrying cannot fix it)."""
    from airflow.exceptions import AirflowFailException

    from hintrl.quality import DataQualityError, run_check

    cfg = config_of(conf)
    try:
        return run_check(stage, Lake(cfg.lake_uri), ds, since, cfg.features, cfg.quality, log)
    except DataQualityError as err:
        raise AirflowFailException(str(err)) from None


def spark_job(task_id: str, job: str, plan: Any, orch: OrchestrationConfig, per_day: Any = None, **kwargs: Any):  # type: ignore[no-untyped-def]
    """A `SparkSubmitOperator` running `pipelines/<job>.py` on the `spark_default` connection's master,
    in the Spark pool. `plan` is the plan task's output: its `<job>_args`, `spark_conf` and
    `spark_env` fill the templated fields (XComArgs of the plan's top-level keys: a nested lookup
    would read another XCom key). With `per_day` (a task's list of argument lists) the job is
    mapped, one task instance per day."""
    from airflow.providers.apache.spark.operators.spark_submit import (
        SparkSubmitOperator,
    )

    common = dict(task_id=task_id, application=str(JOBS_DIR / f"{job}.py"), conn_id=orch.spark_conn_id,
                  conf=plan["spark_conf"], env_vars=plan["spark_env"], name=f"hintrl-{job}", pool=orch.spark_pool, **kwargs)
    if per_day is not None:
        return SparkSubmitOperator.partial(**common).expand(application_args=per_day)
    return SparkSubmitOperator(application_args=plan[f"{job}_args"], **common)


def task_defaults(orch: OrchestrationConfig) -> dict[str, Any]:
    return {"retries": orch.retries, "retry_delay": dt.timedelta(seconds=orch.retry_delay_s),
            "retry_exponential_backoff": True, "max_retry_delay": dt.timedelta(seconds=orch.max_retry_delay_s),
            "on_failure_callback": record_failure}


def failures_path(home: str | Path) -> Path:
    return Path(home) / "alerts" / "failures.jsonl"


def record_failure(context: dict[str, Any]) -> None:
    """On-failure callback: one JSON line per failed task in `<home>/alerts/failures.jsonl` (what an
    alerting hook or a person tails), and the same line in the task log."""
    ti = context.get("ti") or context.get("task_instance")
    params = context.get("params") or {}
    entry = {
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dag_id": getattr(ti, "dag_id", None), "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None), "try_number": getattr(ti, "try_number", None),
        "map_index": getattr(ti, "map_index", None), "error": str(context.get("exception") or "")[:2000],
    }
    print("hintrl task failed: " + json.dumps(entry))
    home = params.get("home")
    if home:
        path = failures_path(home)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(json.dumps(entry) + "\n")


def stage_command(stage: list[str], ds: str, conf: dict[str, Any]) -> list[str]:
    cmd = [sys.executable, "-m", "hintrl.cli", *stage, "--ds", ds, "--json"]
    for flag in ("home", "lake", "mlflow_uri"):
        if conf.get(flag):
            cmd += [f"--{flag.replace('_', '-')}", str(conf[flag])]
    return cmd + settings_flags(conf)


def run_stage(stage: list[str], ds: str, conf: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run `hintrl <stage> --json`, relaying its progress; returns its report or raises with its error."""
    cmd = stage_command(stage, ds, conf)
    log("running: " + " ".join(cmd))
    start = time.perf_counter()
    code, out, last_error = relay(cmd, log)
    if code != 0:
        raise HintrlError(f"hintrl {' '.join(stage)} failed (exit {code}): {last_error or 'see the log above'}")
    lines = [l for l in out.splitlines() if l.strip()]
    if not lines:
        raise HintrlError(f"hintrl {' '.join(stage)} printed no report")
    report = json.loads(lines[-1])
    report["stage_seconds"] = round(time.perf_counter() - start, 1)
    return report


def relay(cmd: list[str], log: Callable[[str], None]) -> tuple[int, str, str]:
    """Run `cmd`, relaying its stderr (progress) line by line while its stdout (the report) is read
    on another thread, so that neither pipe fills up and blocks it. Returns the exit code, stdout
    and the last `error: ` line's message."""
    import threading

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    last_error = ""
    for line in proc.stderr:
        line = line.rstrip()
        if line:
            log(line)
            if line.startswith("error: "):
                last_error = line[len("error: "):]
    reader.join()
    return proc.wait(), "".join(chunks), last_error


def format_summary(ds: str, reports: dict[str, Any]) -> str:
    """What the main command ends with: rows per stage, the OPE table, the decision, the model URI."""
    out = [f"hintrl nightly ds={ds}", "", "Rows per stage:"]
    ingest = reports.get("ingest", {}).get("days", {})
    for day, tables in sorted(ingest.items()):
        pv = tables["search_pv"]
        out.append(f"  ingest   {day}: search_pv {pv['in']} in -> {pv['clean']} clean, {pv['quarantined']} quarantined"
                   + (f" {pv['reasons']}" if pv["reasons"] else ""))
    for day, entry in sorted(reports.get("features", {}).get("days", {}).items()):
        out.append(f"  features {day}: " + ", ".join(f"{k} {v}" for k, v in entry.items()))
    for day, r in sorted(reports.get("mdp", {}).get("days", {}).items()):
        out.append(f"  mdp      {day}: {r['page_views']} page views -> {r['transitions']} transitions, "
                   f"{r['episodes']} episodes, {r['quarantined_episodes']} episodes quarantined")
    for algo, t in sorted(reports.get("train", {}).items()):
        out.append(f"  train    {algo}: {t['transitions']} transitions / {t['episodes']} episodes of "
                   f"{t['train_days'][0]}..{t['train_days'][-1]}, {t['n_steps']} steps in {t['seconds']}s")
    ev = reports.get("evaluate", {})
    if ev:
        out.append(f"  evaluate {ev.get('eval_label', ev['eval_day'])}: {ev['eval_transitions']} transitions / {ev['eval_episodes']} held-out episodes")
    timings = [f"{name} {reports[name]['stage_seconds']}s" for name in ("ingest", "features", "mdp", "evaluate", "promote")
               if "stage_seconds" in reports.get(name, {})]
    timings += [f"train {algo} {t['stage_seconds']}s" for algo, t in sorted(reports.get("train", {}).items()) if "stage_seconds" in t]
    if timings:
        out.append("  seconds  " + ", ".join(timings))
    promote = reports.get("promote", {})
    if promote:
        out += ["", "Off-policy evaluation on the held-out day (95% bootstrap intervals):", promote["ope_table"], "",
                "Gate: " + ("already PROMOTED by an earlier run of this nightly (nothing new registered)"
                            if promote.get("already_promoted") else
                            "PROMOTED to champion" if promote["promoted"] else "NOT PROMOTED (alias challenger)")]
        out += [f"  - {reason}" for reason in promote["reasons"]]
        out += [f"Model: {promote['model_uri']} (algo {promote['challenger']}, run {promote['run_id']})",
                f"Aliases: {promote['aliases']}"]
    return "\n".join(out)


def summary_path(home: str | Path, ds: str) -> Path:
    return Path(home) / "staging" / f"ds={ds}" / "summary.txt"


def publish_summary(home: str | Path, ds: str, reports: dict[str, Any]) -> str:
    """Format the summary and keep it beside the staged models, where `hintrl nightly` reads it."""
    text = format_summary(ds, reports)
    path = summary_path(home, ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return text
