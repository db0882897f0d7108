"""The learning stages of a nightly run for `ds`: train, evaluate, promote.

Trained policies and the OPE table are staged under `<home>/staging/ds=<ds>/` between stages, so
each stage runs in its own process (training never runs inside the Airflow scheduler).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from feature_store.registry import SPEC_FILE
from hintrl import code_version
from hintrl.config import HintrlConfig
from hintrl.errors import HintrlError
from hintrl.lake import Lake
from offline_rl.dataset import load_transitions
from offline_rl.evaluate import (
    GATE_ESTIMATOR,
    evaluate_behavior,
    evaluate_policy,
    with_behavior_propensities,
)
from offline_rl.gate import GateDecision, decide
from offline_rl.ope import Estimate
from offline_rl.report import figures

Progress = Callable[[str], None]


def staging(cfg: HintrlConfig, ds: str) -> Path:
    return Path(cfg.staging_dir) / f"ds={ds}"


def _actions_and_layout(cfg: HintrlConfig, spec=None) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """The catalog's number of hint types and the candidate layout of the configured Q-network."""
    from hintrl.errors import DataContractError

    n_actions = (spec or _catalog_spec(cfg)).n_actions
    try:
        return n_actions, cfg.train.candidate_layout(n_actions)
    except ValueError as err:
        raise DataContractError(str(err)) from None


def train_stage(cfg: HintrlConfig, ds: str, algo: str, progress: Progress = print) -> dict[str, Any]:
    from offline_rl.train import train_policy

    window = cfg.nightly_window(ds)
    spec = _catalog_spec(cfg)
    n_actions, layout = _actions_and_layout(cfg, spec)
    data = load_transitions(Lake(cfg.lake_uri), window.train_days, n_actions, layout=layout)
    if spec.version != data.feature_spec_version:
        raise HintrlError(f"transitions of {data.days[0]}..{data.days[-1]} use feature spec {data.feature_spec_version}, "
                          f"the catalog and settings give {spec.version}: rebuild them (hintrl backfill)")
    from offline_rl.registry import Registry
    from offline_rl.tracking import TrainingRun

    ds_range = f"{data.days[0]}..{data.days[-1]}"
    registry = Registry(cfg.tracking_uri, cfg.model_name, cfg.experiment, cfg.artifact_root)
    run = TrainingRun(
        registry, ds, algo,
        params={"algo": algo, "train": cfg.to_dict()["train"], "reward": cfg.to_dict()["reward"],
                "reward_preset": cfg.reward.preset, "data_ds_range": ds_range, "rows": len(data),
                "episodes": data.n_episodes, "feature_spec_version": data.feature_spec_version},
        tags={"reward_preset": cfg.reward.preset, "data_ds_range": ds_range, "rows": str(len(data)),
              "feature_spec_version": data.feature_spec_version, "code_version": code_version()},
    )
    folder = staging(cfg, ds) / algo
    try:
        trained = train_policy(algo, data, cfg.train, folder, progress, run.adapter_factory(), run.run_id)
        # The served model rebuilds states from feature rows with exactly this spec.
        (folder / SPEC_FILE).write_text(json.dumps(spec.to_json(), indent=2))
        run.finish(folder, {"seconds": trained.seconds, "steps_per_second": trained.n_steps / max(trained.seconds, 1e-9)})
    except BaseException:
        run.fail()
        raise
    progress(f"train {algo}: MLflow run {run.run_id}")
    return trained.to_json()


def _catalog_spec(cfg: HintrlConfig):  # type: ignore[no-untyped-def]
    from feature_store.catalog import catalog_spec

    return catalog_spec(Lake(cfg.lake_uri), cfg.features)


def _estimate(data: dict[str, Any]) -> Estimate:
    return Estimate(**data)


def evaluate_stage(cfg: HintrlConfig, ds: str, progress: Progress = print) -> dict[str, Any]:
    from offline_rl.registry import Registry
    from offline_rl.train import load_policy

    window = cfg.nightly_window(ds)
    n_actions, layout = _actions_and_layout(cfg)
    data = load_transitions(Lake(cfg.lake_uri), window.eval_days, n_actions, tuple(sorted(cfg.gate.guardrails)), layout)
    data = with_behavior_propensities(data, cfg.ope)
    if cfg.ope.behavior_propensity == "estimated":
        progress(f"evaluate: behaviour propensities estimated by behaviour cloning on {len(data)} held-out steps")
    evaluations = [evaluate_behavior(data, cfg.ope)]
    estimator = cfg.gate.estimator
    trained = {}
    for algo in cfg.train.algos:
        folder = staging(cfg, ds) / algo
        if not (folder / "policy.json").exists():
            raise HintrlError(f"no trained {algo} policy for ds={ds} in {folder}: run `hintrl train --algo {algo}` first")
        policy, meta = load_policy(folder)
        if meta["feature_spec_version"] != data.feature_spec_version:
            raise HintrlError(f"{algo} was trained on feature spec {meta['feature_spec_version']}, held-out data has {data.feature_spec_version}")
        evaluations.append(evaluate_policy(algo, policy, data, cfg.ope, estimator))
        trained[algo] = meta
        progress(f"evaluate {algo}: {estimator} {evaluations[-1].estimates[estimator].value:.4f}")
    registry = Registry(cfg.tracking_uri, cfg.model_name, cfg.experiment, cfg.artifact_root)
    champion_error = None
    champion_version = None
    loaded = registry.load_policy("champion")
    if loaded is not None:
        policy, meta, version = loaded
        champion_version = str(version.version)
        if meta["feature_spec_version"] != data.feature_spec_version:
            champion_error = f"champion v{champion_version} uses feature spec {meta['feature_spec_version']}, data has {data.feature_spec_version}"
        else:
            evaluations.append(evaluate_policy("champion", policy, data, cfg.ope, estimator))
    report = {
        "ds": ds,
        "eval_day": window.eval_day,
        "eval_days": window.eval_days,
        "eval_label": window.eval_label,
        "train_days": window.train_days,
        "gate_estimator": estimator,
        "behavior_propensity": cfg.ope.behavior_propensity,
        # How the DM / DR / WDR intervals were drawn (ope.fqe_refits): "fit held fixed" ones
        # understate the uncertainty of those estimators.
        "model_based_intervals": f"{cfg.ope.fqe_refits} FQE refits and the fit held fixed" if cfg.ope.fqe_refits else "fit held fixed",
        "eval_transitions": len(data),
        "eval_episodes": data.n_episodes,
        "feature_spec_version": data.feature_spec_version,
        "evaluations": [e.to_json() for e in evaluations],
        "champion_version": champion_version,
        "champion_error": champion_error,
        "trained": trained,
    }
    out = staging(cfg, ds) / "ope.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return report


def ope_table_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for evaluation in report["evaluations"]:
        name = evaluation["policy"]
        estimator = "behavior" if name == "behavior" else report.get("gate_estimator", GATE_ESTIMATOR)
        est = evaluation["estimates"][estimator]
        rows.append({"policy": name, "estimator": estimator, "value": est["value"], "low": est["low"],
                     "high": est["high"], "ess": est["effective_sample_size"], "max_weight": est["max_weight"]})
    return rows


def format_ope_table(report: dict[str, Any]) -> str:
    lines = ["| policy | estimator | value | 95% interval | ESS | max weight |", "|---|---|---|---|---|---|"]
    for r in ope_table_rows(report):
        lines.append(f"| {r['policy']} | {r['estimator']} | {r['value']:.4f} | [{r['low']:.4f}, {r['high']:.4f}] | {r['ess']:.0f} | {r['max_weight']:.2f} |")
    return "\n".join(lines)


def _estimate_tags(report: dict[str, Any], challenger: str, estimator: str) -> dict[str, str]:
    """Estimates, intervals and diagnostics of the challenger, behaviour and champion as version tags."""
    tags = {}
    for evaluation in report["evaluations"]:
        name = evaluation["policy"]
        if name not in (challenger, "behavior", "champion"):
            continue
        est = evaluation["estimates"]["behavior" if name == "behavior" else estimator]
        tags[f"ope.{name}"] = (f"{est['name']} {est['value']:.4f} [{est['low']:.4f}, {est['high']:.4f}] "
                               f"ess={est['effective_sample_size']:.0f} max_weight={est['max_weight']:.2f} "
                               f"zero_weights={est['zero_weight_share']:.3f} episodes={est['n_episodes']}")
        for component, g in evaluation.get("guardrails", {}).items():
            tags[f"guardrail.{name}.{component}"] = f"{g['value']:.4f} [{g['low']:.4f}, {g['high']:.4f}]"
    return tags


def review_markdown(report: dict[str, Any], ds: str, challenger: str, decision: GateDecision, cfg: HintrlConfig) -> str:
    """The model version's description: what a reviewer needs, in Markdown."""
    lines = [
        f"**Nightly {ds}** — challenger `{challenger}`: **{'PROMOTED to champion' if decision.promote else 'not promoted'}**",
        "",
        f"Trained on {report['train_days'][0]}..{report['train_days'][-1]}, evaluated on {report.get('eval_label', report['eval_day'])} "
        f"({report['eval_transitions']} transitions, {report['eval_episodes']} episodes), feature spec "
        f"`{report['feature_spec_version']}`, reward preset `{cfg.reward.preset}`.",
        "",
        format_ope_table(report),
        "",
        "Gate:",
        *[f"- {r}" for r in decision.reasons],
    ]
    guard = [(e["policy"], c, g) for e in report["evaluations"] for c, g in e.get("guardrails", {}).items()]
    if guard:
        lines += ["", "| guardrail | policy | value | 95% interval |", "|---|---|---|---|"]
        lines += [f"| {c} | {p} | {g['value']:.4f} | [{g['low']:.4f}, {g['high']:.4f}] |" for p, c, g in guard]
    return "\n".join(lines)


def promote_stage(cfg: HintrlConfig, ds: str, progress: Progress = print) -> dict[str, Any]:
    from offline_rl.registry import Registry

    path = staging(cfg, ds) / "ope.json"
    if not path.exists():
        raise HintrlError(f"no OPE report for ds={ds} at {path}: run `hintrl evaluate` first")
    report = json.loads(path.read_text())
    registry = Registry(cfg.tracking_uri, cfg.model_name, cfg.experiment, cfg.artifact_root)
    done = registry.promoted_for(ds)
    if done is not None:  # a rerun of a nightly that already promoted: nothing new is registered
        progress(f"promote: the nightly of {ds} already promoted version {done.version}; nothing to do")
        return {"ds": ds, "run_id": done.run_id, "model_version": str(done.version),
                "model_uri": f"models:/{cfg.model_name}/{done.version}", "challenger": done.tags.get("algo"),
                "promoted": True, "already_promoted": True, "reasons": json.loads(done.tags.get("gate_reasons", "[]")),
                "aliases": registry.aliases(), "ope_table": format_ope_table(report)}
    by_policy = {e["policy"]: e["estimates"] for e in report["evaluations"]}
    candidates = [a for a in cfg.train.algos if a in by_policy]
    if not candidates:
        raise HintrlError(f"the OPE report for ds={ds} holds no trained policy")
    estimator = cfg.gate.estimator
    if report.get("gate_estimator", GATE_ESTIMATOR) != estimator:
        raise HintrlError(f"the OPE report for ds={ds} was made for estimator {report.get('gate_estimator')}, "
                          f"the gate uses {estimator}: run `hintrl evaluate` again")
    champion = by_policy.get("champion", {}).get(estimator)
    guardrails = {e["policy"]: e.get("guardrails", {}) for e in report["evaluations"]}

    def gate(algo: str) -> GateDecision:
        pairs = {c: (_estimate(guardrails[algo][c]), _estimate(guardrails["behavior"][c]))
                 for c in cfg.gate.guardrails if c in guardrails[algo] and c in guardrails["behavior"]}
        return decide(
            _estimate(by_policy[algo][estimator]),
            _estimate(by_policy["behavior"]["behavior"]),
            _estimate(champion) if champion else None,
            cfg.gate,
            report.get("champion_error"),
            pairs,
        )

    # The challenger is the trained policy with the best lower bound among those the gate passes,
    # or the best lower bound overall when none passes.
    bound_key = "low" if cfg.gate.bound == "bootstrap" else "bernstein_low"
    def lower_bound(algo: str) -> float:
        bound = by_policy[algo][estimator].get(bound_key)
        return float("-inf") if bound is None else float(bound)

    ranked = sorted(candidates, key=lower_bound, reverse=True)
    decisions = {algo: gate(algo) for algo in ranked}
    challenger = next((a for a in ranked if decisions[a].promote), ranked[0])
    decision = decisions[challenger]
    progress(f"gate: {decision.summary}")
    metrics = {}
    for policy, estimates in by_policy.items():
        for est_name, est in estimates.items():
            for key in ("value", "low", "high", "effective_sample_size", "max_weight", "bernstein_low"):
                if isinstance(est.get(key), (int, float)):  # None (no Bernstein bound) is not logged
                    metrics[f"ope.{policy}.{est_name}.{key}"] = float(est[key])
    for evaluation in report["evaluations"]:
        for component, est in evaluation.get("guardrails", {}).items():
            metrics[f"guardrail.{evaluation['policy']}.{component}"] = float(est["value"])
    for algo, meta in report["trained"].items():
        for key, value in meta["final_metrics"].items():
            metrics[f"train.{algo}.{key}"] = float(value)
        metrics[f"train.{algo}.seconds"] = float(meta["seconds"])
    params = {
        "ds": ds, "eval_day": report["eval_day"], "eval_days": ",".join(report.get("eval_days", [report["eval_day"]])),
        "train_days": ",".join(report["train_days"]),
        "reward_preset": cfg.reward.preset, "feature_spec_version": report["feature_spec_version"],
        "challenger_algo": challenger, "gate_estimator": estimator,
        **{f"train.{k}": v for k, v in cfg.to_dict()["train"].items()},
        **{f"reward.{k}": v for k, v in cfg.to_dict()["reward"].items()},
        **{f"ope.{k}": v for k, v in cfg.to_dict()["ope"].items()},
        **{f"gate.{k}": v for k, v in cfg.to_dict()["gate"].items()},
    }
    table = format_ope_table(report)
    tags = {"feature_spec_version": report["feature_spec_version"], "reward_preset": cfg.reward.preset,
            "data_ds_range": f"{report['train_days'][0]}..{report['eval_day']}", "algo": challenger,
            "code_version": code_version(), "gate_estimator": estimator,
            **{f"train_run.{algo}": meta["mlflow_run_id"] for algo, meta in report["trained"].items()
               if meta.get("mlflow_run_id")}}
    run_id, version, model_uri = registry.log_nightly(
        ds, params, metrics, {"ope_table.md": table, "ope_report.json": json.dumps(report, indent=2)},
        {algo: staging(cfg, ds) / algo for algo in candidates}, challenger, tags, figures(report),
    )
    version_tags = {"ds": ds, **tags, **_estimate_tags(report, challenger, estimator)}
    aliases = registry.apply_decision(version, decision.promote, decision.reasons, version_tags)
    registry.describe(version, review_markdown(report, ds, challenger, decision, cfg))
    return {
        "ds": ds, "run_id": run_id, "model_version": version, "model_uri": model_uri, "challenger": challenger,
        "promoted": decision.promote, "reasons": decision.reasons, "aliases": aliases, "ope_table": table,
    }
