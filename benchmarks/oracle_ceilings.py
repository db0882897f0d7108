"""How much of the oracle's lift each kind of knowledge buys: greedy policies that know the world's
true click model, but only through some of what drives it, rolled out for every user like the
policies in `policy_quality.py`. It bounds what a policy that learns from some features can reach:
a policy of gender alone (Thompson sampling per gender) cannot beat the gender-only ceiling however
much data it sees.

    .venv/bin/python benchmarks/oracle_ceilings.py --ds 2026-11-08 --days 10

Each ceiling ranks the open candidates by the click logit of a copy of the world in which what it
does not know is replaced by its population mean:
- gender: the type's base rate and the gender's preference (age and purchasing power at their
  mean, no individual taste, no query affinity, no recency);
- demographics: gender, age and purchasing power (the users' individual taste left out);
- demographics, query and recency: also the query's affinity to each hint and the user's recent
  clicks in the hint's slot (what the state's query CTRs and recent clicks proxy);
- the same with the query's affinity only as the training days' logs tell it: each (query, hint)
  affinity's posterior mean under the world's own prior, given every logged show of that hint on
  that query, its click and the rest of its true logit. The state's smoothed query CTRs are a
  cruder estimate of the same thing, so this bounds what they can carry; a hint the logs seldom
  showed on a query keeps the prior's mean, 0;
- and with the demographic preference too as those logs tell it: per hint type, the logistic fit
  of a weight per gender, one for age and one for purchasing power to the same shows, each show's
  click given the rest of its true logit (known, so the logs' selection biases nothing). With
  everything else known, the two together bound what six days of logs can teach a learner;
- the oracle: everything, individual taste included.

`--anchored T [T ...]` also serves each ceiling the way hintrl serves its Q-networks, as a softmax
anchored to the logs, pi(a) ∝ b(a) exp(p_click(a) / T) with b the logging buckets' mixture, and
asks what the nightly gate would make of it: over `--redraws` independent redraws of the held-out
day `--eval-day` (`Deployment.logged_redraw`, the run that wrote the logs starting on `--run`), the
gate's estimator, its effective sample size, and how often `offline_rl.gate.decide` (against the
logged behaviour, guardrails included, no champion) would promote it. Whether a learner that knew
a ceiling's click model exactly could beat a baseline at settings the one-day gate certifies:

    .venv/bin/python benchmarks/oracle_ceilings.py --ds 2026-11-08 --days 10 --anchored 0.02 0.05 0.1 --redraws 20
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import numpy as np
    from redraw_gate import RedrawGate

    from hintrl.config import HintrlConfig, setting_arg
    from hintrl.dates import parse_ds
    from simulator.ground_truth import (
        REDRAW_DAY_INDEX,
        Deployment,
        rollout,
        step_components,
    )
    from simulator.logging_policy import (
        BaselinePolicy,
        OraclePolicy,
        StepBatch,
        UniformPolicy,
    )
    from simulator.world import QUERY_AFFINITY_SD, World, build_world

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("HINTRL_HOME", ".hintrl"))
    parser.add_argument("--ds", default="2026-11-08", help="first day of the rollouts")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--set", action="append", type=setting_arg, metavar="SECTION.KEY=VALUE", default=[],
                        help="a setting of hintrl/config.py (e.g. a simulator.* setting of the world)")
    parser.add_argument("--anchored", type=float, nargs="+", default=[], metavar="T",
                        help="also serve each ceiling as a softmax anchored to the logs at these temperatures")
    parser.add_argument("--eval-day", default="2026-11-07", help="the held-out day the gate reads (with --anchored)")
    parser.add_argument("--run", default="2026-11-01", help="first day of the run that wrote the logs (with --anchored)")
    parser.add_argument("--redraws", type=int, default=20, help="redraws of --eval-day per anchored policy")
    args = parser.parse_args()
    if any(t <= 0 for t in args.anchored):
        parser.error("--anchored temperatures must be > 0")
    if args.anchored and args.redraws < 1:
        parser.error("--redraws must be at least 1")
    n_days = (parse_ds(args.eval_day) - parse_ds(args.run)).days + 1
    if n_days < 2:
        parser.error("--eval-day must be after --run (the days between are the logs the policies learn from)")
    cfg = HintrlConfig(home=Path(args.home)).with_settings(dict(args.set), "--set")
    if cfg.simulator.action_space != "small":
        parser.error("the ceilings are defined for the small action space (per-type individual taste)")
    world = build_world(cfg.simulator)

    def knowing(demographics: bool, context: bool) -> World:
        """The world as a policy knowing only gender (plus age and purchasing power with
        `demographics`, plus query affinity and recency with `context`) sees it."""
        columns = [np.eye(3)[world.gender]] + ([world.age_z[:, None], world.power_z[:, None]] if demographics else [])
        design = np.concatenate(columns, axis=1)
        # The family preference's demographic part: its least-squares fit on what is known.
        coef, *_ = np.linalg.lstsq(design, world.family_pref, rcond=None)
        seen = dataclasses.replace(world, family_pref=design @ coef, type_noise=np.zeros_like(world.type_noise))
        if not demographics:
            seen.type_age_w = np.zeros_like(world.type_age_w)
            seen.type_power_w = np.zeros_like(world.type_power_w)
        if not context:
            seen.query_affinity = np.zeros_like(world.query_affinity)
            seen.recency_boost = 0.0
        return seen

    def logged_shows(deployment: Deployment) -> dict[str, np.ndarray]:
        """Every hint the logging buckets showed on the days before the deployed one: user, query,
        hint, click, and the click's true logit."""
        shows = {column: np.concatenate([day.pv[column] for day in deployment.history])
                 for column in ("user", "query", "hint", "clicked", "p_click")}
        keep = shows["hint"] >= 0
        shows = {column: x[keep] for column, x in shows.items()}
        p = shows.pop("p_click")
        shows["logit"] = np.log(p) - np.log1p(-p)
        return shows

    def affinity_as_logged(shows: dict[str, np.ndarray]) -> np.ndarray:
        """`query_affinity` as the logged `shows` tell it: the posterior mean of each (query, hint)
        affinity under the world's N(0, QUERY_AFFINITY_SD²) prior, on a grid, given each show's
        click and the rest of its true logit."""
        queries, hints, clicked = shows["query"].astype(np.int64), shows["hint"].astype(np.int64), shows["clicked"]
        dense = np.zeros((len(world.query_candidates), world.n_types))
        q_of, j_of = np.nonzero(world.query_candidates >= 0)
        dense[q_of, world.query_candidates[q_of, j_of]] = world.query_affinity[q_of, j_of]
        rest = shows["logit"] - dense[queries, hints]
        grid = np.linspace(-4 * QUERY_AFFINITY_SD, 4 * QUERY_AFFINITY_SD, 161)
        logit = rest[:, None] + grid[None, :]
        # log sigmoid(logit) for a click, log(1 - sigmoid(logit)) for none, without overflow
        loglik = -np.logaddexp(0.0, np.where(clicked[:, None], -logit, logit))
        pair = queries * world.n_types + hints  # the row of `dense`, flattened
        log_post = np.zeros((dense.size, len(grid)))
        np.add.at(log_post, pair, loglik)
        log_post -= grid**2 / (2 * QUERY_AFFINITY_SD**2)
        weight = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        estimate = (weight @ grid / weight.sum(axis=1)).reshape(dense.shape)
        aligned = np.where(world.query_candidates >= 0,
                           np.take_along_axis(estimate, np.maximum(world.query_candidates, 0), axis=1), 0.0)
        truth, told = world.query_affinity[q_of, j_of], aligned[q_of, j_of]
        n_shows = np.bincount(pair, minlength=dense.size).reshape(dense.shape)[q_of, world.query_candidates[q_of, j_of]]
        print(f"query affinity as the logs tell it: {len(rest)} shows of {np.count_nonzero(n_shows)} "
              f"of the {len(q_of)} (query, hint) pairs; share of the affinities' variance explained "
              f"{1 - np.mean((truth - told) ** 2) / np.mean(truth ** 2):.3f}, weighted by shows "
              f"{1 - np.average((truth - told) ** 2, weights=n_shows) / np.average(truth ** 2, weights=n_shows):.3f}; "
              "correlation with the truth by shows: " + ", ".join(
                  f"{lo}-{hi - 1}: {np.corrcoef(told[band], truth[band])[0, 1]:.2f} ({band.sum()} pairs)"
                  for lo, hi in ((1, 10), (10, 100), (100, 1000)) if (band := (n_shows >= lo) & (n_shows < hi)).sum() > 2),
              flush=True)
        return aligned

    def demographics_as_logged(shows: dict[str, np.ndarray], seen: World) -> World:
        """`seen` with its demographic preference (gender, age and purchasing power, per hint type)
        replaced by the logistic fit of the logged `shows` given the rest of each show's true logit:
        with the rest known, the logs' selection (on the candidates) biases nothing."""
        users, hints = shows["user"], shows["hint"].astype(np.int64)
        design = np.concatenate([np.eye(3)[world.gender], world.age_z[:, None], world.power_z[:, None]], axis=1)
        rest = shows["logit"] - seen.pref(users, hints)
        theta = np.zeros((world.n_types, design.shape[1]))
        for k in range(world.n_types):
            rows = hints == k
            x, y, offset = design[users[rows]], shows["clicked"][rows], rest[rows]
            for _ in range(25):  # Newton's method on the log-likelihood (a 1e-6 ridge keeps it definite)
                p = 1.0 / (1.0 + np.exp(-(offset + x @ theta[k])))
                hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(x.shape[1])
                theta[k] += np.linalg.solve(hessian, x.T @ (y - p) - 1e-6 * theta[k])
        told = dataclasses.replace(seen, family_pref=np.zeros_like(seen.family_pref), type_gender_w=theta[:, :3].T.copy(),
                                   type_age_w=theta[:, 3].copy(), type_power_w=theta[:, 4].copy())
        every = np.arange(world.n_types)[None, :]
        truth, fit = seen.pref(np.arange(len(world.gender))[:, None], every), told.pref(np.arange(len(world.gender))[:, None], every)
        print(f"demographic preference as the logs tell it: {len(hints)} shows; correlation with the truth over "
              f"users x hint types {np.corrcoef(truth.ravel(), fit.ravel())[0, 1]:.3f}, mean absolute error "
              f"{np.abs(truth - fit).mean():.3f} (the truth's mean absolute value {np.abs(truth).mean():.3f})", flush=True)
        return told

    # The run that wrote the logs, replayed up to the held-out day: its logs for the ceilings that
    # learn from them, its held-out day for the gate's redraws.
    deployment = Deployment(cfg.simulator, args.run, n_days, world=world)
    shows = logged_shows(deployment)
    as_logged = knowing(True, True)
    as_logged.query_affinity = affinity_as_logged(shows)
    all_as_logged = demographics_as_logged(shows, as_logged)

    baseline = rollout("baseline", cfg.simulator, args.ds, args.days, world=world)
    base = baseline.hint_ctr.value
    ceilings = [("gender", knowing(False, False)), ("demographics", knowing(True, False)),
                ("demographics, query and recency", knowing(True, True)),
                ("demographics, recency and the query as the logs tell it", as_logged),
                ("recency, and the demographics and the query as the logs tell them", all_as_logged),
                ("oracle (everything)", world)]
    print(f"Greedy on the true click model, rolled out for every user over {args.days} days from {args.ds}; "
          f"baseline hint CTR {base:.4f}")
    print("| knows | true hint CTR | ratio to baseline | expected hint CTR | ratio to baseline's expected |\n"
          "|---|---|---|---|---|")
    for name, seen in ceilings:
        policy = OraclePolicy(seen)
        policy.name = f"oracle knowing {name}"
        truth = rollout(policy, cfg.simulator, args.ds, args.days, world=world)
        ratio, expected_ratio = truth.ratio_to(baseline)
        print(f"| {name} | {truth.hint_ctr.value:.4f} | {ratio:.3f} | {truth.expected_hint_ctr.value:.4f} "
              f"| {expected_ratio:.3f} |", flush=True)
    if not args.anchored:
        return

    # The logs' users are in the baseline or the explore bucket, which the state does not tell
    # apart: the anchor is their mixture, as the behaviour model hintrl anchors to learns it.
    explore = cfg.simulator.explore_share
    logging = [(1.0 - explore, BaselinePolicy(world, cfg.simulator.baseline_epsilon)), (explore, UniformPolicy())]

    class AnchoredCeiling:
        """pi(a) ∝ b(a) exp(p_click(a) / T) over the open candidates, p_click as `seen` has it."""

        def __init__(self, seen: World, temperature: float, name: str):
            self.seen, self.temperature, self.name = seen, temperature, name

        def probabilities(self, batch: StepBatch) -> np.ndarray:
            positions = np.arange(batch.candidates.shape[1])[None, :]
            p_click = self.seen.click_probability(
                batch.users[:, None], batch.queries[:, None], positions, batch.pages[:, None],
                batch.clicks_in_episode[:, None], batch.recent_clicks, batch.hours[:, None])
            behavior = sum(share * p.probabilities(batch) for share, p in logging)
            logits = np.where(batch.open, np.log(np.maximum(behavior, 1e-300)) + p_click / self.temperature, -np.inf)
            logits -= logits.max(axis=1, keepdims=True)
            probs = np.exp(logits)
            return probs / probs.sum(axis=1, keepdims=True)

    targets = {f"{name} at {t:g}": AnchoredCeiling(seen, t, f"{name} at {t:g}") for name, seen in ceilings for t in args.anchored}
    gate_runs: dict[str, list[tuple[float, float, bool]]] = {n: [] for n in targets}
    for r in range(args.redraws):
        steps, components = step_components(deployment.logged_redraw(targets, REDRAW_DAY_INDEX + r))
        gate = RedrawGate(steps, components, cfg, cfg.ope.n_bootstrap, seed=r)
        for name in targets:
            target = steps[f"target_{name}"].to_numpy()
            est = gate.estimate(cfg.gate.estimator, target)
            gate_runs[name].append((est.effective_sample_size, est.low - gate.behavior.value, gate.decide(target, est).promote))
        print(f"redraw {r + 1}/{args.redraws} of {args.eval_day}", flush=True)
    print(f"\nServed anchored to the logs; true CTR over {args.days} days from {args.ds}; the gate ({cfg.gate.estimator}, "
          f"minimum ESS {cfg.gate.min_effective_sample_size:g}) over {args.redraws} redraws of {args.eval_day}:")
    print("| knows | temperature | true hint CTR | ratio to baseline | expected ratio | gate's ESS (median, 10%) "
          "| lower bound - behaviour (median) | gate promotes |\n|---|---|---|---|---|---|---|---|")
    for name, policy in targets.items():
        truth = rollout(policy, cfg.simulator, args.ds, args.days, world=world)
        ratio, expected_ratio = truth.ratio_to(baseline)
        ess, margin, promoted = (np.array(x) for x in zip(*gate_runs[name]))
        print(f"| {name.rsplit(' at ', 1)[0]} | {policy.temperature:g} | {truth.hint_ctr.value:.4f} | {ratio:.3f} "
              f"| {expected_ratio:.3f} "
              f"| {np.median(ess):.0f}, {np.quantile(ess, 0.1):.0f} | {np.median(margin):+.4f} "
              f"| {promoted.mean():.0%} |", flush=True)


if __name__ == "__main__":
    main()
