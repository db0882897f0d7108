"""Run one pipeline stage as its own `hintrl` process (Spark JVMs and d3rlpy stay out of the
scheduler), and turn the stage reports into the summary a person reads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from hintrl.errors import HintrlError


def stage_command(stage: list[str], ds: str, conf: dict[str, Any]) -> list[str]:
    cmd = [sys.executable, "-m", "hintrl.cli", *stage, "--ds", ds, "--json"]
    for flag in ("home", "lake", "mlflow_uri", "master"):
        if conf.get(flag):
            cmd += [f"--{flag.replace('_', '-')}", str(conf[flag])]
    for key, value in sorted((conf.get("settings") or {}).items()):
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    return cmd


def run_stage(stage: list[str], ds: str, conf: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run `hintrl <stage> --json`, relaying its progress; returns its report or raises with its error."""
    cmd = stage_command(stage, ds, conf)
    log("running: " + " ".join(cmd))
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # stderr carries progress; stdout's last line is the JSON report.
    last_error = ""
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:
        line = line.rstrip()
        if line:
            log(line)
            if line.startswith("error: "):
                last_error = line[len("error: "):]
    out = proc.stdout.read()
    code = proc.wait()
    if code != 0:
        raise HintrlError(f"hintrl {' '.join(stage)} failed (exit {code}): {last_error or 'see the log above'}")
    lines = [l for l in out.splitlines() if l.strip()]
    if not lines:
        raise HintrlError(f"hintrl {' '.join(stage)} printed no report")
    report = json.loads(lines[-1])
    report["stage_seconds"] = round(time.perf_counter() - start, 1)
    return report


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
        out.append(f"  evaluate {ev['eval_day']}: {ev['eval_transitions']} transitions / {ev['eval_episodes']} held-out episodes")
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
