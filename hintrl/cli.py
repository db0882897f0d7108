"""`hintrl`: one subcommand per stage, and `nightly` to run the whole Airflow DAG.

Configuration enters here: flags, `--set section.key=value` overrides and the HINTRL_HOME
environment variable become one `HintrlConfig` that is passed down. Errors a user can fix are
printed as one line (`error: ...`) with a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from hintrl.config import ACTION_SPACES, HintrlConfig, SimulatorConfig, setting_arg
from hintrl.dates import parse_ds
from hintrl.errors import HintrlError


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_config(args: argparse.Namespace) -> HintrlConfig:
    home = Path(args.home or os.environ.get("HINTRL_HOME") or Path.home() / ".hintrl")
    # MLFLOW_TRACKING_URI is MLflow's own variable: honour it like every MLflow client does.
    cfg = HintrlConfig(home=home, lake=args.lake, mlflow_uri=args.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI"))
    # An action-space preset first, so that --set can still change any of its settings.
    overrides = SimulatorConfig.preset(args.action_space) if getattr(args, "action_space", None) else {}
    overrides.update(dict(args.set or []))
    if getattr(args, "master", None):
        overrides["spark.master"] = args.master
    return cfg.with_settings(overrides, "--set")


def _spark(cfg: HintrlConfig):  # type: ignore[no-untyped-def]
    from pipelines.spark import get_spark

    return get_spark(cfg.spark)


def cmd_simulate(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    from hintrl.lake import Lake
    from simulator.writer import simulate_to_lake

    if args.days < 1:
        raise HintrlError("--days must be >= 1")
    rows = simulate_to_lake(cfg.simulator, Lake(cfg.lake_uri), args.ds, args.days, progress)
    return {"lake": cfg.lake_uri, "first_ds": args.ds, "days": args.days, "rows": rows}


def cmd_ingest(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    from pipelines.stages import ingest_stage

    return ingest_stage(_spark(cfg), cfg, args.ds, args.since, progress, force=args.force)


def cmd_features(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    if args.action == "describe":
        return describe_features(cfg, args)
    from pipelines.stages import features_stage

    return features_stage(_spark(cfg), cfg, args.ds, args.since, progress, force=args.force)


def describe_features(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    from feature_store.registry import build_spec, slots_for, table_features
    from simulator.world import catalog_families

    world = cfg.simulator if args.types is None else dataclasses.replace(cfg.simulator, n_types=args.types)
    try:
        slots = slots_for(range(world.n_types), catalog_families(world), cfg.features.hint_slots)
    except ValueError as err:
        raise HintrlError(str(err)) from None
    spec = build_spec(slots, cfg.features.ctr_prior_clicks, cfg.features.ctr_prior_non_clicks)
    stored = [{"name": f.name, "dtype": f.dtype, "table": f.source, "sql": f.sql_file, "meaning": f.meaning}
              for f in table_features(slots, cfg.features.lt_windows_days)]
    if not args.json:
        print(f"Feature spec {spec.version}: state vector of {spec.state_dim} floats for {slots.n_types} hint types, "
              f"counted per {slots.per}")
        for row in spec.describe():
            print(f"  [{row['index']:>2}] {row['name']:<24} {row['source']:<8} {row['meaning']}")
        print("Stored feature columns:")
        for row in stored:
            print(f"  {row['table']:<8} {row['name']:<22} {row['dtype']:<11} {row['meaning']}")
    return {"feature_spec_version": spec.version, "state": spec.describe(), "stored": stored}


def cmd_build_mdp(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    from pipelines.stages import mdp_stage

    return mdp_stage(_spark(cfg), cfg, args.ds, args.since, progress, force=args.force)


def cmd_backfill(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    from hintrl.dates import day_range
    from pipelines.stages import backfill

    day_range(args.start, args.end)  # a malformed or reversed range fails before Spark starts
    return backfill(_spark(cfg), cfg, args.start, args.end, progress)


def _quiet_d3rlpy() -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def cmd_check(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    from hintrl.lake import Lake
    from hintrl.quality import run_check

    return run_check(args.stage, Lake(cfg.lake_uri), args.ds, args.since, cfg.features, cfg.quality, progress)


def cmd_train(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    from offline_rl.stages import train_stage

    _quiet_d3rlpy()
    return train_stage(cfg, args.ds, args.algo, progress)


def cmd_evaluate(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    from offline_rl.registry import check_tracking_uri
    from offline_rl.stages import evaluate_stage, format_ope_table

    _quiet_d3rlpy()
    check_tracking_uri(cfg.tracking_uri)
    report = evaluate_stage(cfg, args.ds, progress)
    if not args.json:
        print(format_ope_table(report))
    return report


def cmd_registry(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    import datetime as dt
    import getpass

    from offline_rl.registry import Registry, check_tracking_uri

    check_tracking_uri(cfg.tracking_uri)
    registry = Registry(cfg.tracking_uri, cfg.model_name, cfg.experiment, cfg.artifact_root)
    if args.action == "rollback":
        if not args.reason:
            raise HintrlError("registry rollback needs --reason (it is recorded on both versions)")
        who = args.by or getpass.getuser()
        when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        aliases = registry.rollback(who, args.reason, when)
        progress(f"rolled back: champion is version {aliases.get('champion')} again ({who}: {args.reason})")
    status = registry.status()
    if not args.json:
        if not status["aliases"]:
            print(f"{cfg.model_name}: no aliased versions yet")
        for alias, info in status["aliases"].items():
            extra = ", ".join(f"{k}={v}" for k, v in info.items() if v and k not in ("version", "run_id", "created"))
            print(f"{alias:<18} version {info['version']:<4} {extra}")
    return status


def cmd_promote(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    from offline_rl.registry import check_tracking_uri

    check_tracking_uri(cfg.tracking_uri)  # before importing the training stack: fail fast and quietly
    from offline_rl.stages import promote_stage

    result = promote_stage(cfg, args.ds, progress)
    if not args.json and result.get("already_promoted"):
        print(f"the nightly of {args.ds} already promoted version {result['model_version']} "
              f"({result['model_uri']}); nothing new registered")
    elif not args.json:
        print(result["ope_table"])
        print(("PROMOTED " if result["promoted"] else "NOT PROMOTED ") + result["model_uri"])
        for reason in result["reasons"]:
            print(f"  - {reason}")
    return result


def cmd_nightly(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    from hintrl.nightly import run_nightly_dag

    result = run_nightly_dag(cfg, args.ds, dict(args.set or []), args.master, progress)
    if not args.json:
        print(result["summary"])
    return result


OPE_COLUMNS = ("episode_id", "step", "reward", "behavior_prob", "target_prob")


def cmd_ope(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import pyarrow.parquet as pq

    from offline_rl.ope import DR_ESTIMATORS, IS_ESTIMATORS, Episodes, estimate_all

    try:
        table = pq.read_table(args.input)
    except (OSError, ValueError) as err:
        raise HintrlError(f"cannot read {args.input} as Parquet: {err}") from None
    missing = [c for c in OPE_COLUMNS if c not in table.column_names]
    if missing:
        raise HintrlError(f"{args.input} lacks column(s): {', '.join(missing)} (needs {', '.join(OPE_COLUMNS)})")
    has_models = "q_hat" in table.column_names and "v_hat" in table.column_names
    data = {c: table.column(c).to_numpy(zero_copy_only=False) for c in table.column_names}

    def numeric(name: str) -> np.ndarray:
        try:
            return np.asarray(data[name], dtype=np.float64)
        except (TypeError, ValueError):
            raise HintrlError(f"column {name} must be numeric (null is missing)") from None

    if not 0.0 <= args.gamma <= 1.0:
        raise HintrlError("--gamma must be in [0, 1]")
    ep = Episodes.from_steps(
        data["episode_id"], np.asarray(data["step"], dtype=np.int64), numeric("reward"), numeric("behavior_prob"),
        numeric("target_prob"), numeric("q_hat") if has_models else None, numeric("v_hat") if has_models else None,
    )
    names = IS_ESTIMATORS + (DR_ESTIMATORS if has_models else ())
    estimates, per_estimator = {}, {}
    for name, est in estimate_all(ep, names, args.gamma, cfg.ope.n_bootstrap, cfg.ope.confidence, cfg.ope.seed).items():
        estimates[name] = {"value": est.value, "low": est.low, "high": est.high}
        per_estimator[name] = {"effective_sample_size": est.effective_sample_size, "max_weight": est.max_weight,
                               "zero_weight_share": est.zero_weight_share,
                               "bernstein_low": est.bernstein_low}
    report = {
        "estimates": estimates,
        "diagnostics": {"n_episodes": ep.n, "n_steps": int(ep.lengths.sum()), "gamma": args.gamma,
                        "n_bootstrap": cfg.ope.n_bootstrap, "confidence": cfg.ope.confidence,
                        "estimators": per_estimator},
    }
    if not args.json:
        print(f"{ep.n} episodes, {int(ep.lengths.sum())} steps, gamma {args.gamma:g}, "
              f"{cfg.ope.confidence:.0%} bootstrap intervals ({cfg.ope.n_bootstrap} replicates)")
        print("| estimator | value | interval | ESS | max weight | zero weights |")
        print("|---|---|---|---|---|---|")
        for name in names:
            e, d = estimates[name], per_estimator[name]
            print(f"| {name} | {e['value']:.6f} | [{e['low']:.6f}, {e['high']:.6f}] | "
                  f"{d['effective_sample_size']:.1f} | {d['max_weight']:.3f} | {d['zero_weight_share']:.1%} |")
    return report


def load_registered_policy(cfg: HintrlConfig, model_uri: str):  # type: ignore[no-untyped-def]
    """The policy object and metadata of a registered hintrl model."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from offline_rl.registry import check_tracking_uri

    _quiet_d3rlpy()
    check_tracking_uri(cfg.tracking_uri)
    mlflow.set_tracking_uri(cfg.tracking_uri)
    try:
        python_model = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    except MlflowException as err:
        raise HintrlError(f"cannot load {model_uri} from {cfg.tracking_uri}: {err.message}") from None
    if not hasattr(python_model, "policy"):
        raise HintrlError(f"{model_uri} is not a hintrl policy model")
    return python_model.policy, python_model.meta


def cmd_ground_truth(cfg: HintrlConfig, args: argparse.Namespace) -> dict[str, Any]:
    from feature_store.registry import build_spec
    from simulator.ground_truth import rollout
    from simulator.logging_policy import ServedPolicy
    from simulator.world import world_slots

    if args.days < 1:
        raise HintrlError("--days must be >= 1")
    if bool(args.model_uri) == bool(args.policy):
        raise HintrlError("give exactly one of --model-uri and --policy")
    spec = build_spec(world_slots(cfg.simulator), cfg.features.ctr_prior_clicks, cfg.features.ctr_prior_non_clicks)
    policies: list[Any] = []
    if args.model_uri:
        policy, meta = load_registered_policy(cfg, args.model_uri)
        if meta["feature_spec_version"] != spec.version:
            raise HintrlError(f"{args.model_uri} uses feature spec {meta['feature_spec_version']}, the simulator {spec.version}")
        policies.append(ServedPolicy(policy, f"{args.model_uri} ({meta['algo']})"))
    else:
        policies.append(args.policy)
    if not args.no_reference:
        policies += [p for p in ("baseline", "oracle") if p != args.policy]
    results = []
    for policy in policies:
        progress(f"ground-truth: rolling out {getattr(policy, 'name', policy)} over {args.days} day(s) from {args.ds}")
        results.append(rollout(policy, cfg.simulator, args.ds, args.days, cfg.reward, spec))
    # The seed states its headline as a ratio to the baseline bucket's hint CTR.
    baseline = next((r for r, p in zip(results, policies) if p == "baseline"), None)
    ratios = [r.ratio_to(baseline) if baseline else (None, None) for r in results]
    if not args.json:
        presets = list(results[0].returns)
        print("True values in the simulated world (95% intervals over episodes; ratios to the baseline's hint CTR):")
        print("| policy | episodes | hint CTR | expected hint CTR | ratio (drawn, expected) | "
              + " | ".join(f"return ({p})" for p in presets) + " |")
        print("|---|---|---|---|---|" + "---|" * len(presets))
        for r, ratio in zip(results, ratios):
            cells = [f"{x.value:.4f} [{x.low:.4f}, {x.high:.4f}]" if x else "n/a" for x in (r.hint_ctr, r.expected_hint_ctr)]
            cells.append(", ".join("n/a" if x is None else f"{x:.3f}" for x in ratio))
            cells += [f"{r.returns[p].value:.4f} [{r.returns[p].low:.4f}, {r.returns[p].high:.4f}]" for p in presets]
            print(f"| {r.policy} | {r.n_episodes} | " + " | ".join(cells) + " |")
    return {"ds": args.ds, "days": args.days,
            "results": [r.to_json() | {"ratio_to_baseline": {"hint_ctr": drawn, "expected_hint_ctr": expected}}
                        for r, (drawn, expected) in zip(results, ratios)]}


COMMANDS: dict[str, tuple[Callable[[HintrlConfig, argparse.Namespace], dict[str, Any]], str]] = {
    "simulate": (cmd_simulate, "simulate days of search traffic and write the raw tables"),
    "ingest": (cmd_ingest, "validate raw logs of a day: clean rows to validated/, bad rows to quarantine/"),
    "features": (cmd_features, "build long-term and real-time features of a day (or `describe` the registry)"),
    "build-mdp": (cmd_build_mdp, "build the transitions table of a day"),
    "backfill": (cmd_backfill, "recompute validation, features and transitions for a date range (idempotent)"),
    "check": (cmd_check, "data-quality check of a stage's output (ingest, features, transitions) for --ds"),
    "train": (cmd_train, "train a masked d3rlpy policy for the nightly of --ds"),
    "evaluate": (cmd_evaluate, "off-policy evaluation of the trained policies, behaviour and champion"),
    "promote": (cmd_promote, "log the nightly to MLflow, register the challenger and apply the gate"),
    "nightly": (cmd_nightly, "run the hintrl_nightly Airflow DAG for --ds with dag.test()"),
    "ope": (cmd_ope, "off-policy evaluation of any logged data (episode_id, step, reward, behavior_prob, target_prob)"),
    "ground-truth": (cmd_ground_truth, "roll a policy out in the simulated world and report its true value"),
    "registry": (cmd_registry, "show the model's aliases (status) or restore the previous champion (rollback)"),
}

DS_HELP = {
    "simulate": "first day to simulate (YYYY-MM-DD)",
    "ingest": "day whose raw logs to ingest (YYYY-MM-DD)",
    "features": "day whose features to build (YYYY-MM-DD)",
    "build-mdp": "day whose transitions to build (YYYY-MM-DD)",
    "check": "day whose output to check (YYYY-MM-DD)",
    "ground-truth": "first simulated day of the rollout (YYYY-MM-DD)",
}
NIGHTLY_DS_HELP = "the nightly's day (YYYY-MM-DD): trains on the days before ds-1, evaluates on ds-1, serves ds"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hintrl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == "features":
            p.add_argument("action", nargs="?", choices=["build", "describe"], default="build",
                           help="build (default) or describe the feature registry")
            p.add_argument("--types", type=int, help="describe: number of hint types (default: the simulator's)")
        if name == "registry":
            p.add_argument("action", choices=["status", "rollback"], help="status, or rollback to previous_champion")
            p.add_argument("--reason", help="rollback: why (recorded in the versions' tags)")
            p.add_argument("--by", help="rollback: who (default: the current user)")
        if name == "backfill":
            p.add_argument("--start", required=True, help="first day to recompute (YYYY-MM-DD)")
            p.add_argument("--end", required=True, help="last day to recompute (YYYY-MM-DD)")
        elif name == "registry":
            pass
        elif name == "ope":
            p.add_argument("--input", required=True, help="Parquet file of logged steps; optional q_hat, v_hat columns add dr, wdr")
            p.add_argument("--gamma", type=float, default=1.0, help="discount (default 1.0)")
        else:
            p.add_argument("--ds", required=name != "features", help=DS_HELP.get(name, NIGHTLY_DS_HELP))
        p.add_argument("--home", help="hintrl home folder (default $HINTRL_HOME or ~/.hintrl)")
        p.add_argument("--lake", help="lake root, a path or Hadoop URI (default <home>/lake)")
        p.add_argument("--mlflow-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else sqlite:///<home>/mlflow.db)")
        p.add_argument("--set", action="append", type=setting_arg, metavar="SECTION.KEY=VALUE",
                       help="override a setting of hintrl.config, e.g. train.n_steps=500 (repeatable)")
        p.add_argument("--json", action="store_true", help="print the stage's report as JSON on the last line")
        if name in ("ingest", "features", "build-mdp"):
            p.add_argument("--since", help="also process earlier days from this one whose output is missing")
            p.add_argument("--force", action="store_true", help="recompute every day from --since, even with output")
        if name in ("ingest", "features", "build-mdp", "backfill", "nightly"):
            p.add_argument("--master", help="Spark master URL (default local[*])")
        if name in ("simulate", "ground-truth"):
            p.add_argument("--days", type=int, default=7, help="number of days to simulate (default 7)")
        if name in ("simulate", "ground-truth", "features"):
            p.add_argument("--action-space", choices=list(ACTION_SPACES),
                           help="simulated world: small (8 hint types) or large (20,000 hint ids in 16 families)")
        if name == "ground-truth":
            p.add_argument("--model-uri", help="a registered hintrl model, e.g. models:/hintrl_hint_policy@champion")
            p.add_argument("--policy", choices=["baseline", "uniform", "oracle"], help="or a built-in policy")
            p.add_argument("--no-reference", action="store_true", help="skip the baseline and oracle rollouts")
        if name == "check":
            p.add_argument("stage", choices=["ingest", "features", "transitions"], help="whose output to check")
            p.add_argument("--since", help="also check earlier days from this one that have raw logs")
        if name == "train":
            p.add_argument("--algo", choices=["cql", "dqn"], required=True, help="algorithm to train")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler, _ = COMMANDS[args.command]
    if args.command == "features" and args.action == "build" and not args.ds:  # describe needs no day
        print("error: features build needs --ds", file=sys.stderr)
        return 2
    try:
        for day in (getattr(args, "ds", None), getattr(args, "since", None)):
            if day is not None:
                parse_ds(day)
        cfg = build_config(args)
        report = handler(cfg, args)
    except HintrlError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
