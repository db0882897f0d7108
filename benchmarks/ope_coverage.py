"""Interval coverage of the importance-sampling estimators over many independent redraws of one day.

`ope_accuracy.py` checks each estimate against the truth on held-out days of the lake, but every
estimate of a day reads the same logged draws, so its coverage over a dozen days is a dozen
correlated trials. Here the simulator draws the held-out day again and again under the logging
buckets (`Deployment.logged_redraw`: the users' history is the logs', the day's draws are new), and
each redraw is estimated with the nightly's estimators and bootstrap (`offline_rl.ope.estimate_all`)
for every policy of `policy_set.py`. Against each policy's truth on that day (the policy serving
everyone, `--truth-replicas` redraws), it reports per estimator and policy:

- coverage of the two-sided interval, and on which side it misses: `low miss` (the whole
  interval under the truth: the policy undersold) and `high miss` (the lower bound above the
  truth: what the gate, which promotes on the lower bound, must not do more often than
  (1 - confidence) / 2);
- for the estimators with an empirical-Bernstein lower bound (is, pdis: the gate's `bound =
  "bernstein"`), how often that bound lies above the truth (at most 1 - confidence, by its
  guarantee for independent episodes);
- the mean error of the estimate (relative to the truth) and the spread of the estimates across
  redraws beside the bootstrap's standard error ((high - low) / 3.92, averaged): a ratio above 1
  means the bootstrap sees less of the variance than there is.

`--fqe` also runs the nightly's whole evaluation (`offline_rl.evaluate.evaluate_policy`: FQE fitted
on the redraw, with its refits for the intervals) for the policies that have a Q-network, adding the
model-based estimators dm, dr and wdr to the table: each redraw then becomes transitions with the
states the policies saw (`logged_redraw(..., with_states=True)`, `redraw_transitions`), and costs
(1 + ope.fqe_refits) FQE fits per such policy (about 3 s each on 2 cores).

`--recency-boost 0` switches off the world's one channel by which a user's clicks on one episode
raise the click rate of the next ones (in the logs and the truth alike). Importance weights are
per episode, so that carry-over is the one part of a deployment no estimate on logged episodes sees.

    .venv/bin/python benchmarks/ope_coverage.py --home .hintrl --ds 2026-11-08 --day 2026-11-13 --redraws 200
    .venv/bin/python benchmarks/ope_coverage.py --home .hintrl --redraws 40 --fqe --policies cql dqn

`--save FILE.jsonl` keeps each finished redraw (and the truths) in FILE, so that a long run
(`--fqe` on 200 redraws takes hours) can be stopped and started again with the same command: it
picks up after the last redraw saved, with the saved truths, and refuses a FILE written with
other settings. Every redraw is seeded by its own index, so a run in pieces gives the rows of a
run in one go. `--report-only` prints the tables of the redraws saved so far.

(the lake of `ope_accuracy.py`'s set-up: the nightly of 2026-11-08 and a simulation run from
2026-11-01 carried past the held-out day; only the nightly's policies and the simulator are read).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ESS_BANDS = (0.0, 50.0, 100.0, 200.0, 400.0, float("inf"))


def load_saved(path: Path, settings: dict) -> tuple[dict | None, dict[int, dict]]:
    """The saved truths and redraws of `path` (none if it does not exist); exits on other settings.

    A last line cut short (the run killed while writing it) is dropped, and the file rewritten
    without it, so that the redraw is run again.
    """
    if not path.exists():
        return None, {}
    lines = path.read_text().splitlines()
    try:
        header = json.loads(lines[0])["header"]
    except (IndexError, ValueError, KeyError, TypeError):
        sys.exit(f"--save {path}: not a file this benchmark wrote (no header line); choose another path")
    differs = {k: (header["settings"].get(k), v) for k, v in settings.items() if header["settings"].get(k) != v}
    if differs:
        sys.exit(f"--save {path} was written with other settings ("
                 + "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in differs.items())
                 + "): run with those, or choose another path")
    redraws = {}
    for i, line in enumerate(lines[1:], start=2):
        try:
            record = json.loads(line)
        except ValueError:
            if i != len(lines):
                sys.exit(f"--save {path}: line {i} is not JSON; the file is damaged")
            print(f"--save {path}: the last line was cut short; its redraw runs again", flush=True)
            path.write_text("\n".join(lines[:-1]) + "\n")
            break
        redraws[record["redraw"]] = record
    return header, redraws


def main() -> None:
    import dataclasses

    import pandas as pd
    import torch
    from policy_set import build_policies
    from redraw_gate import RedrawGate

    from hintrl.config import BERNSTEIN_ESTIMATORS, HintrlConfig
    from hintrl.dates import parse_ds
    from offline_rl.evaluate import evaluate_policy
    from offline_rl.ope import IS_ESTIMATORS, Episodes, estimate_all
    from simulator.ground_truth import (
        REDRAW_DAY_INDEX,
        Deployment,
        Interval,
        redraw_transitions,
        step_components,
    )
    from simulator.logging_policy import ServedPolicy

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("HINTRL_HOME", ".hintrl"))
    parser.add_argument("--ds", default="2026-11-08", help="the nightly whose trained policies to evaluate")
    parser.add_argument("--day", default="2026-11-13", help="the day to redraw")
    parser.add_argument("--run", default="2026-11-01", help="first day of the simulation run that wrote the day")
    parser.add_argument("--redraws", type=int, default=100)
    parser.add_argument("--truth-replicas", type=int, default=40)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--policies", nargs="+", default=None, help="names from policy_set.py (default: all)")
    parser.add_argument("--recency-boost", type=float, default=None, help="override the world's recency boost")
    parser.add_argument("--fqe", action="store_true",
                        help="also the FQE-based estimators (dm, dr, wdr) of the policies with a Q-network, as the nightly evaluates them")
    parser.add_argument("--save", type=Path, default=None,
                        help="JSON-lines file that keeps each finished redraw; a run with the same settings resumes from it")
    parser.add_argument("--report-only", action="store_true", help="print the tables of the redraws saved in --save, run none")
    args = parser.parse_args()
    if args.redraws < 2:
        parser.error("--redraws must be at least 2 (a spread needs two)")
    torch.set_num_threads(2)
    cfg = HintrlConfig(home=Path(args.home))
    built = build_policies(cfg, args.ds)
    chosen = args.policies or list(built["policies"])
    unknown = sorted(set(chosen) - set(built["policies"]))
    if unknown:
        parser.error(f"unknown policies {unknown}: choose from {sorted(built['policies'])}")
    targets = {name: ServedPolicy(built["policies"][name], name) for name in chosen}
    with_fqe = {name for name in targets if args.fqe and hasattr(built["policies"][name], "algo")}
    if args.fqe and not with_fqe:
        parser.error("--fqe: none of the chosen policies has a Q-network to fit FQE for")
    n_days = (parse_ds(args.day) - parse_ds(args.run)).days + 1
    if n_days < 1:
        parser.error("--day must not be before --run")
    deployment = Deployment(cfg.simulator, args.run, n_days, spec=built["spec"])
    if args.recency_boost is not None:
        deployment.retune(recency_boost=args.recency_boost)
    settings = {"ds": args.ds, "day": args.day, "run": args.run, "redraws": args.redraws,
                "truth_replicas": args.truth_replicas, "bootstrap": args.bootstrap, "policies": chosen,
                "recency_boost": args.recency_boost, "fqe": args.fqe}
    header, saved = load_saved(args.save, settings) if args.save else (None, {})
    if args.report_only and not saved:
        parser.error("--report-only needs a --save file with at least one redraw in it")
    started = time.time()
    if header is not None:
        truth = {k: Interval(**v) for k, v in header["truth"].items()}
        print(f"--save {args.save}: {len(saved)} of {args.redraws} redraws saved; truths read from it", flush=True)
    else:
        # Truth draws start well after the redraws' day indexes, so that the two never share a draw.
        truth_draw = REDRAW_DAY_INDEX + args.redraws + 1
        truth = {"behavior": deployment.value("behavior", cfg.reward, args.truth_replicas, truth_draw).returns[cfg.reward.preset]}
        for name, target in targets.items():
            truth[name] = deployment.value(target, cfg.reward, args.truth_replicas, truth_draw).returns[cfg.reward.preset]
        if args.save:
            args.save.parent.mkdir(parents=True, exist_ok=True)
            args.save.write_text(json.dumps({"header": {"settings": settings, "truth": {
                k: dataclasses.asdict(v) for k, v in truth.items()}}}) + "\n")
    source = "read from --save" if header is not None else f"{time.time() - started:.0f} s"
    print(f"truths over {args.truth_replicas} redraws of {args.day} ({source}): "
          + ", ".join(f"{k} {v.value:.4f} ± {(v.high - v.low) / 2:.4f}" for k, v in truth.items()), flush=True)

    rows = []  # (redraw, policy, estimator, value, low, high, bernstein_low, ess)
    verdicts = []  # (redraw, policy, the gate promotes it: against behaviour, no champion)
    for r in range(args.redraws):
        if r in saved:
            rows.extend(tuple(row) for row in saved[r]["rows"])
            verdicts.extend(tuple(v) for v in saved[r]["verdicts"])
            continue
        if args.report_only:
            continue
        redraw_rows, redraw_verdicts = [], []
        frame = deployment.logged_redraw(targets, REDRAW_DAY_INDEX + r, with_states=bool(with_fqe))
        steps, components = step_components(frame)
        gate = RedrawGate(steps, components, cfg, args.bootstrap, seed=r)
        logged = (steps["episode"].to_numpy(), steps["page"].to_numpy(), gate.rewards, gate.propensities)
        behavior = gate.behavior
        redraw_rows.append((r, "behavior", "behavior", behavior.value, behavior.low, behavior.high,
                            behavior.bernstein_low, behavior.effective_sample_size))
        if with_fqe:
            data = redraw_transitions(frame, deployment.ds, cfg.reward, built["spec"].n_actions, built["spec"].version)
            ope = dataclasses.replace(cfg.ope, n_bootstrap=args.bootstrap, seed=r)
        for name in targets:
            if name in with_fqe:
                estimates = evaluate_policy(name, built["policies"][name], data, ope).estimates
            else:
                ep = Episodes.from_steps(*logged, steps[f"target_{name}"].to_numpy())
                estimates = estimate_all(ep, IS_ESTIMATORS[1:], cfg.ope.gamma, args.bootstrap, cfg.ope.confidence, seed=r)
            for estimator, est in estimates.items():
                redraw_rows.append((r, name, estimator, est.value, est.low, est.high, est.bernstein_low,
                                    est.effective_sample_size))
            decision = gate.decide(steps[f"target_{name}"].to_numpy(), estimates[cfg.gate.estimator])
            redraw_verdicts.append((r, name, bool(decision.promote)))
        rows.extend(redraw_rows)
        verdicts.extend(redraw_verdicts)
        if args.save:
            with args.save.open("a") as f:
                f.write(json.dumps({"redraw": r, "rows": redraw_rows, "verdicts": redraw_verdicts}) + "\n")
        if (r + 1) % 10 == 0 or r + 1 == args.redraws or args.save:
            print(f"redraw {r + 1}/{args.redraws} ({time.time() - started:.0f} s)", flush=True)
    n_redraws = len({row[0] for row in rows})
    if n_redraws < 2:
        sys.exit(f"only {n_redraws} redraw to report on: a spread needs two")

    df = pd.DataFrame(rows, columns=["redraw", "policy", "estimator", "value", "low", "high", "bernstein_low", "ess"])
    df["truth"] = df["policy"].map({k: v.value for k, v in truth.items()})
    df["covered"] = (df["low"] <= df["truth"]) & (df["truth"] <= df["high"])
    df["low_miss"] = df["high"] < df["truth"]
    df["high_miss"] = df["low"] > df["truth"]
    # NaN where the gate cannot use a Bernstein bound (gate.bound="bernstein"), so the mean skips it.
    df["bernstein_high_miss"] = (df["bernstein_low"] > df["truth"]).where(df["estimator"].isin(BERNSTEIN_ESTIMATORS))
    df["error"] = (df["value"] - df["truth"]) / df["truth"].abs()
    df["boot_se"] = (df["high"] - df["low"]) / 3.92
    misses = {"coverage": ("covered", "mean"), "low_miss": ("low_miss", "mean"), "high_miss": ("high_miss", "mean"),
              "bernstein_high_miss": ("bernstein_high_miss", "mean")}

    def bernstein_cell(rate: float) -> str:
        return "–" if pd.isna(rate) else f"{rate:.1%}"

    table = df.groupby(["estimator", "policy"], sort=False).agg(
        **misses, mean_error=("error", "mean"), spread=("value", "std"), boot_se=("boot_se", "mean"),
        ess=("ess", "mean")).reset_index()
    table["spread_over_se"] = table["spread"] / table["boot_se"]
    confidence = cfg.ope.confidence
    print(f"\n{n_redraws} redraws of {args.day}" + ("" if n_redraws == args.redraws else f" (of {args.redraws})")
          + f", {confidence:.0%} bootstrap intervals ({args.bootstrap} replicates)"
          + ("" if args.recency_boost is None else f", recency boost {args.recency_boost:g}") + ":")
    print("| estimator | policy | mean ESS | coverage | low miss | high miss | Bernstein high miss | mean error "
          "| spread / bootstrap SE |\n|---|---|---|---|---|---|---|---|---|")
    for t in table.itertuples():
        print(f"| {t.estimator} | {t.policy} | {t.ess:.0f} | {t.coverage:.1%} | {t.low_miss:.1%} | {t.high_miss:.1%} "
              f"| {bernstein_cell(t.bernstein_high_miss)} | {t.mean_error:+.1%} | {t.spread_over_se:.2f} |")
    targets_only = df[df["policy"] != "behavior"]
    min_ess = cfg.gate.min_effective_sample_size
    print(f"\nPooled over the {len(targets)} policies (a one-sided miss should be at most {(1 - confidence) / 2:.1%});"
          f" 'gate acts' keeps the estimates whose ESS reaches the gate's minimum ({min_ess:g}):")
    print("| estimator | estimates | coverage | low miss | high miss | Bernstein high miss |\n|---|---|---|---|---|---|")
    for subset, label in ((targets_only, "all"), (targets_only[targets_only["ess"] >= min_ess], "gate acts")):
        pooled = subset.groupby("estimator", sort=False).agg(n=("covered", "size"), **misses)
        for estimator, p in pooled.iterrows():
            print(f"| {estimator} | {label}: {p.n} | {p.coverage:.1%} | {p.low_miss:.1%} | {p.high_miss:.1%} "
                  f"| {bernstein_cell(p.bernstein_high_miss)} |")
    # Whether the gate's minimum ESS is what keeps its lower bound honest: the misses per ESS band.
    bands = pd.cut(targets_only["ess"], ESS_BANDS, right=False, labels=[
        f"{lo:g}–{hi:g}" if hi != float("inf") else f"≥ {lo:g}" for lo, hi in zip(ESS_BANDS[:-1], ESS_BANDS[1:])])
    by_band = targets_only.groupby(["estimator", bands], observed=True).agg(
        n=("covered", "size"), **misses).reset_index()
    print("\nBy the estimate's ESS, pooled over the policies:")
    print("| estimator | ESS | estimates | coverage | low miss | high miss | Bernstein high miss |\n|---|---|---|---|---|---|---|")
    for b in by_band.itertuples():
        print(f"| {b.estimator} | {b.ess} | {b.n} | {b.coverage:.1%} | {b.low_miss:.1%} | {b.high_miss:.1%} "
              f"| {bernstein_cell(b.bernstein_high_miss)} |")
    # The gate's power and its errors: how often it would promote each policy on one such day.
    bar = truth["behavior"].value + cfg.gate.min_margin_over_behavior
    verdicts_df = pd.DataFrame(verdicts, columns=["redraw", "policy", "promoted"])
    promotes = verdicts_df.groupby("policy", sort=False)["promoted"].mean()
    print(f"\nThe gate ({cfg.gate.estimator} {cfg.gate.bound} lower bound, guardrails, no champion) on each redraw; "
          f"'truly better' compares the truths with the behaviour's {truth['behavior'].value:.4f} + margin:")
    print("| policy | truth | truly better | gate promotes |\n|---|---|---|---|")
    for name, share in promotes.items():
        print(f"| {name} | {truth[name].value:.4f} | {'yes' if truth[name].value > bar else 'no'} | {share:.1%} |")
    nightly = [a for a in cfg.train.algos if a in targets]
    if nightly:
        # The nightly promotes the best of its trained policies that pass: one passing is enough.
        any_passes = verdicts_df[verdicts_df["policy"].isin(nightly)].groupby("redraw")["promoted"].any().mean()
        print(f"The nightly ({', '.join(nightly)}) promotes one of them on {any_passes:.1%} of the redraws.")
    print(json.dumps({"truth": {k: dataclasses.asdict(v) for k, v in truth.items()},
                      "gate_promotes": promotes.round(5).to_dict(),
                      "table": table.round(5).to_dict(orient="records"),
                      "by_ess": by_band.astype({"ess": str}).round(5).to_dict(orient="records")}))


if __name__ == "__main__":
    main()
