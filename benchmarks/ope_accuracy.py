"""OPE accuracy against issue 6's targets, on the simulator's default world: for policies of
different quality, each estimator's estimate against the policy's true value — relative error,
interval coverage, Spearman rank correlation across policies, and the regret of picking the
top-estimated policy. Goals: the gate's estimator within 5% of truth, rank correlation >= 0.9,
intervals that cover the truth at their stated rate.

    bash scripts/dev.sh main                                   # logs 11-01..07, nightly 2026-11-08
    H=.hintrl; hintrl simulate --home $H --ds 2026-11-01 --days 9  # the same run, two days longer
    hintrl ingest --home $H --ds 2026-11-09 --since 2026-11-08 && hintrl features --home $H --ds 2026-11-09 --since 2026-11-08
    hintrl build-mdp --home $H --ds 2026-11-09 --since 2026-11-08
    .venv/bin/python benchmarks/ope_accuracy.py --home $H --ds 2026-11-08 --eval-days 2026-11-07 2026-11-08 2026-11-09

More held-out days: carry the run further the same way (`simulate --days 18`, then the three
stages with `--ds 2026-11-18 --since 2026-11-10`), evaluate 2026-11-07 … 2026-11-18 with
`--save rows.json`, and print the tables of any of its days without evaluating again with
`--from-saved rows.json --eval-days 2026-11-07 … 2026-11-12` (the first six days; each day is
evaluated on its own, with fixed seeds, so its rows do not depend on the days after it).

The simulation is deterministic, so the nine-day run rewrites days 11-01..07 as they were and
carries every user's history into the two held-out days, which training never saw (one run, so
the features in the lake and the simulator's users agree on every day's history).

Policies: benchmarks/policy_set.py (uniform, Thompson per type, per gender and per query, behaviour cloning,
CQL and DQN at their served temperature and at 0.5) and the logged behaviour itself. The value is
the mean episode return under the transitions' reward (preset `ctr`, gamma 1). The truth is what
an estimate on an eval day's logs stands for: the policy deployed to every user on that day, the
users' history being the one in the logs (`simulator.ground_truth.Deployment` replays the run that
wrote the day with its own draws, then serves the day); the day is redrawn `--truth-replicas`
times independently of the logs and the truth is the mean over all redraws, so that its own noise
is small beside the estimates' (the behaviour's truth: the logging buckets, redrawn alike).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def spearman(x: list[float], y: list[float]) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def main() -> None:
    import dataclasses

    import torch
    from policy_set import build_policies

    from hintrl.config import HintrlConfig
    from hintrl.dates import parse_ds
    from hintrl.lake import Lake
    from offline_rl.dataset import load_transitions
    from offline_rl.evaluate import evaluate_behavior, evaluate_policy
    from simulator.ground_truth import Deployment
    from simulator.logging_policy import ServedPolicy

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("HINTRL_HOME", ".hintrl"))
    parser.add_argument("--ds", default="2026-11-08", help="the nightly whose trained policies to evaluate")
    parser.add_argument("--eval-days", nargs="+", default=["2026-11-07"])
    parser.add_argument("--runs", nargs="+", default=["2026-11-01"],
                        help="first days of the `hintrl simulate` runs that wrote the eval days (users' "
                             "history builds up from there, in the logs and in the truth alike)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--fqe-steps", type=int, default=1000)
    parser.add_argument("--fqe-refits", type=int, default=None,
                        help="FQE refits on bootstrap resamples for the DM / DR / WDR intervals (default: ope.fqe_refits, "
                             "the nightly's; 0: fit held fixed)")
    parser.add_argument("--truth-replicas", type=int, default=4, help="independent redraws of each eval day for the truth")
    parser.add_argument("--save", type=Path, default=None,
                        help="also write the settings and every (day, policy, estimator) row to this JSON file, "
                             "after each day; started again with the same settings, the run skips the days saved")
    parser.add_argument("--from-saved", type=Path, default=None,
                        help="evaluate nothing: print the tables for the --eval-days of a file written by --save "
                             "(e.g. the first 6 days of a 12-day run)")
    args = parser.parse_args()
    cfg = HintrlConfig(home=Path(args.home))
    min_ess = cfg.gate.min_effective_sample_size
    if args.from_saved is not None:
        try:
            saved = json.loads(args.from_saved.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--from-saved {args.from_saved}: cannot read it ({exc})")
        held = sorted({r[0] for r in saved["rows"]})
        missing = sorted(set(args.eval_days) - set(held))
        if missing:
            parser.error(f"--from-saved {args.from_saved} has no rows for {', '.join(missing)} "
                         f"(it holds {', '.join(held) or 'none'})")
        rows = [tuple(r) for r in saved["rows"] if r[0] in args.eval_days]
        print(f"{len(args.eval_days)} of the {len(held)} days saved in {args.from_saved} "
              f"(of {len(saved['settings']['eval_days'])} asked; settings: {json.dumps(saved['settings'])})")
        report(rows, len(args.eval_days), min_ess, saved["settings"]["confidence"], saved["settings"]["bootstrap"])
        return
    torch.set_num_threads(2)
    refits = cfg.ope.fqe_refits if args.fqe_refits is None else args.fqe_refits
    ope = dataclasses.replace(cfg.ope, n_bootstrap=args.bootstrap, fqe_steps=args.fqe_steps, fqe_refits=refits)
    built = build_policies(cfg, args.ds)
    policies, spec = built["policies"], built["spec"]
    rows = []  # (day, policy, estimator, value, low, high, truth, effective sample size)
    settings = {"ds": args.ds, "eval_days": args.eval_days, "runs": args.runs, "bootstrap": ope.n_bootstrap,
                "confidence": ope.confidence, "fqe_steps": ope.fqe_steps, "fqe_refits": refits,
                "truth_replicas": args.truth_replicas}
    done: set[str] = set()
    if args.save is not None and args.save.exists():  # a run cut short: keep its days, evaluate the rest
        try:
            saved = json.loads(args.save.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--save {args.save}: cannot read the earlier run's file ({exc}); delete it or pick another")
        differ = [k for k in settings if saved["settings"].get(k) != settings[k]]
        if differ:
            parser.error(f"--save {args.save} was written with other settings ({', '.join(differ)}); "
                         "delete it or pick another file")
        rows = [tuple(r) for r in saved["rows"]]
        done = {r[0] for r in rows}
        print(f"--save {args.save}: {len(done)} of {len(args.eval_days)} days saved; evaluating the rest", flush=True)
    for day in args.eval_days:
        if day in done:
            continue
        start = max(r for r in args.runs if r <= day)
        n_days = (parse_ds(day) - parse_ds(start)).days + 1
        data = load_transitions(Lake(cfg.lake_uri), [day], spec.n_actions, with_queries=True)
        deployment = Deployment(cfg.simulator, start, n_days, spec=spec)

        def true_value(policy) -> float:  # type: ignore[no-untyped-def]
            return deployment.value(policy, cfg.reward, args.truth_replicas).returns[cfg.reward.preset].value

        truth = {"behavior": true_value("behavior")}
        evaluations = {"behavior": evaluate_behavior(data, ope)}
        for name, policy in policies.items():
            truth[name] = true_value(ServedPolicy(policy, name))
            evaluations[name] = evaluate_policy(name, policy, data, ope)
            print(f"{day} {name}: truth {truth[name]:.4f}, " + ", ".join(
                f"{e} {est.value:.4f}" for e, est in evaluations[name].estimates.items()), flush=True)
        for name, evaluation in evaluations.items():
            for estimator, est in evaluation.estimates.items():
                rows.append((day, name, estimator, est.value, est.low, est.high, truth[name], est.effective_sample_size))
        if args.save is not None:  # after every day, so that a run cut short keeps the days it finished
            save(args.save, settings, rows)

    summary = report(rows, len(args.eval_days), min_ess, ope.confidence, ope.n_bootstrap)
    if args.save is not None:
        save(args.save, settings, rows, summary)
        print(f"rows saved to {args.save}")
    print(json.dumps({"summary": summary, "rows": rows}))


def save(path: Path, settings: dict, rows: list[tuple], summary: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"settings": settings, "summary": summary, "rows": rows}))
    tmp.replace(path)  # never a half-written file


def report(rows: list[tuple], n_days: int, min_ess: float, confidence: float, n_bootstrap: int) -> dict:
    """Prints the accuracy table of these rows and returns its figures, one dict per estimator."""
    estimators = sorted({r[2] for r in rows if r[1] != "behavior"})
    summary = {}
    print(f"\nOPE against ground truth over {n_days} day(s), {len({r[1] for r in rows})} policies "
          f"({confidence:.0%} bootstrap intervals, {n_bootstrap} replicates); the last two columns keep "
          f"only the estimates the gate would act on (ESS >= {min_ess:g}):")
    print("| estimator | mean relative error | max relative error | coverage | whole interval below the truth "
          "| lower bound above the truth | Spearman | regret | estimates with ESS >= min | their mean relative error |"
          "\n|---|---|---|---|---|---|---|---|---|---|")
    for estimator in estimators:
        # The behaviour's own value stands in every estimator's list (it is on-policy).
        picked = [r for r in rows if r[2] == estimator or (r[1] == "behavior" and r[2] == "behavior")]
        errors = np.array([abs(r[3] - r[6]) / abs(r[6]) for r in picked])
        actionable = np.array([r[7] >= min_ess for r in picked])
        covered = [r[4] <= r[6] <= r[5] for r in picked]
        below = sum(r[5] < r[6] for r in picked)
        above = sum(r[4] > r[6] for r in picked)  # the gate's error: a lower bound over the truth
        names = sorted({r[1] for r in picked})
        est = [np.mean([r[3] for r in picked if r[1] == n]) for n in names]
        tru = [np.mean([r[6] for r in picked if r[1] == n]) for n in names]
        regret = max(tru) - tru[int(np.argmax(est))]
        summary[estimator] = {"policies": len(names), "mean_relative_error": round(float(errors.mean()), 4),
                              "max_relative_error": round(float(errors.max()), 4),
                              "coverage": round(float(np.mean(covered)), 3), "covered": f"{sum(covered)}/{len(picked)}",
                              "interval_below_truth": below, "lower_bound_above_truth": above, "spearman": round(spearman(est, tru), 3),
                              "regret": round(float(regret), 5), "actionable_estimates": f"{int(actionable.sum())}/{len(picked)}",
                              "actionable_mean_relative_error": round(float(errors[actionable].mean()), 4) if actionable.any() else None}
        s = summary[estimator]
        actionable_error = "-" if s["actionable_mean_relative_error"] is None else f"{s['actionable_mean_relative_error']:.1%}"
        print(f"| {estimator} | {s['mean_relative_error']:.1%} | {s['max_relative_error']:.1%} | {s['coverage']:.0%} "
              f"({s['covered']}) | {below} | {above} | {s['spearman']:.3f} | {s['regret']:.4f} | {s['actionable_estimates']} | {actionable_error} |")
    return summary


if __name__ == "__main__":
    main()
