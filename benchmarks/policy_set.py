"""The policies the quality and OPE-accuracy benchmarks compare, built from a nightly's home: the
trained CQL and DQN staged by `hintrl nightly` (at their served temperature and a softer one),
Thompson sampling (per hint type, per gender segment and per query) and behaviour cloning fitted on
the same training days, and uniform random. Each answers pi(a | state, candidates); Thompson per
query also reads the query id (transitions loaded `with_queries`, the simulator's own).
"""

from __future__ import annotations

import copy
from pathlib import Path

from hintrl.config import HintrlConfig
from hintrl.lake import Lake


def build_policies(cfg: HintrlConfig, ds: str, soft_temperature: float = 0.5) -> dict:
    from feature_store.catalog import catalog_spec
    from offline_rl.baselines import fit_bc, fit_thompson, state_segments
    from offline_rl.dataset import load_transitions
    from offline_rl.policies import UniformPolicy
    from offline_rl.train import load_policy

    window = cfg.nightly_window(ds)
    spec = catalog_spec(Lake(cfg.lake_uri), cfg.features)
    layout = cfg.train.candidate_layout(spec.n_actions)  # candidate ids, not a dense mask, on large catalogs
    train = load_transitions(Lake(cfg.lake_uri), window.train_days, spec.n_actions, ("hint_click",), layout, with_queries=True)
    names = [f.name for f in spec.state]
    gender = tuple(n for n in names if n.startswith("gender_"))[:2]
    segment_of, n_segments = state_segments(names, gender)
    policies = {
        "uniform": UniformPolicy(spec.state_dim),
        "thompson": fit_thompson(train, "type"),
        "thompson_gender": fit_thompson(train, "segment", segment_of=segment_of, n_segments=n_segments),
        "thompson_query": fit_thompson(train, "query"),
        "bc": fit_bc(train, n_steps=2000),
    }
    for algo in cfg.train.algos:
        policy, _ = load_policy(Path(cfg.staging_dir) / f"ds={ds}" / algo)
        policies[algo] = policy
        soft = copy.copy(policy)
        soft.temperature = soft_temperature
        soft.name = f"{algo}_t{soft_temperature:g}"
        policies[soft.name] = soft
    for name, policy in policies.items():
        policy.name = name
    return {"policies": policies, "spec": spec, "window": window, "train_rows": len(train)}
