"""Train d3rlpy DiscreteCQL and double DQN on transitions, with candidate masks.

A trained policy is staged as a folder: `model.d3` (d3rlpy's own format), `policy.json` (what is
needed to serve it as the evaluated masked softmax policy, plus training facts for the run) and,
when the served softmax is anchored to the logs (`train.behavior_anchor`), `behavior.d3`: the
behaviour-cloning model of the logging policy it is tilted towards.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from hintrl.config import TrainConfig
from hintrl.errors import HintrlError
from offline_rl.dataset import Transitions

ALGOS = ("cql", "dqn")
BEHAVIOR_MODEL_FILE = "behavior.d3"


@dataclass
class TrainedPolicy:
    algo: str
    path: Path
    feature_spec_version: str
    state_dim: int
    n_actions: int
    temperature: float
    train_days: tuple[str, ...]
    transitions: int
    episodes: int
    n_steps: int
    seconds: float
    final_metrics: dict[str, float]
    stratum_mix: dict[str, float]
    mlflow_run_id: str | None = None
    layout: str = "mask"  # the candidate layout of its observations (offline_rl/dataset.py)
    behavior_anchor: float = 0.0  # the weight of log b(a|s) in the served logits; 0: no anchor

    def to_json(self) -> dict:
        out = asdict(self)
        out["path"] = str(self.path)
        return out


def q_function_factory(layout: str, state_dim: int, embedding_dim: int):  # type: ignore[no-untyped-def]
    """The Q-network for a candidate layout: masked (dense mask) or action-embedding (candidate ids)."""
    from offline_rl.embedding_q import CandidateEmbeddingQFunctionFactory
    from offline_rl.masked_q import MaskedMeanQFunctionFactory

    if layout == "ids":
        return CandidateEmbeddingQFunctionFactory(state_dim=state_dim, embedding_dim=embedding_dim)
    return MaskedMeanQFunctionFactory(state_dim=state_dim)


def _algo_config(name: str, cfg: TrainConfig, state_dim: int, layout: str = "mask"):  # type: ignore[no-untyped-def]
    import d3rlpy

    from offline_rl.masked_q import MaskedStateEncoderFactory

    common = dict(
        learning_rate=cfg.learning_rate,
        batch_size=cfg.batch_size,
        gamma=cfg.gamma,
        target_update_interval=cfg.target_update_interval,
        encoder_factory=MaskedStateEncoderFactory(state_dim=state_dim, hidden_units=list(cfg.hidden_units)),
        q_func_factory=q_function_factory(layout, state_dim, cfg.embedding_dim),
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(cfg.reward_scale),
    )
    if name == "cql":
        return d3rlpy.algos.DiscreteCQLConfig(alpha=cfg.cql_alpha, **common)
    if name == "dqn":
        return d3rlpy.algos.DoubleDQNConfig(**common)
    raise HintrlError(f"unknown algorithm {name!r}: choose from {', '.join(ALGOS)}")


def train_policy(
    name: str,
    data: Transitions,
    cfg: TrainConfig,
    out_dir: Path,
    progress: Callable[[str], None] = print,
    logger_adapter=None,  # type: ignore[no-untyped-def]
    mlflow_run_id: str | None = None,
) -> TrainedPolicy:
    """Train `name` on `data` (mini-batches drawn to `cfg.stratum_mix` when one is set), stage it in
    `out_dir`; `logger_adapter` (a d3rlpy LoggerAdapterFactory) receives every epoch's metrics."""
    import d3rlpy
    import torch

    torch.set_num_threads(cfg.torch_threads)
    d3rlpy.seed(cfg.seed)
    if cfg.n_steps < cfg.n_steps_per_epoch:
        # d3rlpy trains nothing when n_steps < n_steps_per_epoch.
        raise HintrlError(f"train.n_steps ({cfg.n_steps}) must be >= train.n_steps_per_epoch ({cfg.n_steps_per_epoch})")
    from offline_rl.replay import ArrayReplayBuffer

    sampler = None
    if cfg.stratum_mix:
        from offline_rl.sampling import StratumSampler

        sampler = StratumSampler(data.strata, cfg.stratum_mix)
        mix = ", ".join(f"{k} {v:.3f}" for k, v in sorted(sampler.weights.items()) if v > 0)
        progress(f"train {name}: stratified batches, stratum shares {mix}")
    dataset = ArrayReplayBuffer(data, sampler)
    algo = _algo_config(name, cfg, data.state_dim, data.layout).create(device="cpu:0")
    algo.build_with_dataset(dataset)
    if data.layout == "ids":
        from offline_rl.embedding_q import use_candidate_updates

        use_candidate_updates(algo)
    network = "action-embedding" if data.layout == "ids" else "masked"
    progress(f"train {name}: {len(data)} transitions, {data.n_episodes} episodes, {data.n_actions} hint types "
             f"({network} Q-network), {cfg.n_steps} steps")
    start = time.perf_counter()
    history = algo.fit(
        dataset,
        n_steps=cfg.n_steps,
        n_steps_per_epoch=cfg.n_steps_per_epoch,
        show_progress=False,
        logger_adapter=logger_adapter or d3rlpy.logging.NoopAdapterFactory(),
        epoch_callback=lambda _algo, epoch, step: progress(f"train {name}: epoch {epoch} done at step {step}"),
    )
    seconds = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    algo.save(str(out_dir / "model.d3"))
    anchor = None
    if cfg.behavior_anchor > 0:
        from offline_rl.baselines import fit_bc

        progress(f"train {name}: behaviour model for the served policy's anchor ({cfg.behavior_anchor_steps} steps)")
        # Plain maximum likelihood (no logit penalty): the anchor stands for the logging policy itself.
        anchor = fit_bc(data, n_steps=cfg.behavior_anchor_steps, batch_size=cfg.batch_size,
                        hidden_units=cfg.hidden_units, seed=cfg.seed, logit_penalty=0.0)
        anchor.algo.save(str(out_dir / BEHAVIOR_MODEL_FILE))
    final = {k: float(v) for k, v in (history[-1][1] if history else {}).items()}
    trained = TrainedPolicy(
        algo=name, path=out_dir, feature_spec_version=data.feature_spec_version, state_dim=data.state_dim,
        n_actions=data.n_actions, temperature=cfg.temperature, train_days=data.days, transitions=len(data),
        episodes=data.n_episodes, n_steps=cfg.n_steps, seconds=round(seconds, 2), final_metrics=final,
        stratum_mix=dict(cfg.stratum_mix), mlflow_run_id=mlflow_run_id, layout=data.layout,
        behavior_anchor=cfg.behavior_anchor,
    )
    (out_dir / "policy.json").write_text(json.dumps(trained.to_json(), indent=2))
    from offline_rl.policies import QSoftmaxPolicy
    from offline_rl.serving import TORCHSCRIPT_FILE, export_torchscript

    served = QSoftmaxPolicy(algo, data.state_dim, cfg.temperature, name, anchor, cfg.behavior_anchor)
    export_torchscript(served, data.observation_rows(64), out_dir / TORCHSCRIPT_FILE)
    progress(f"train {name}: {cfg.n_steps} steps in {seconds:.1f}s ({cfg.n_steps / max(seconds, 1e-9):.0f} steps/s), {final}")
    return trained


def load_policy(path: Path):  # type: ignore[no-untyped-def]
    """The staged policy at `path` as a `QSoftmaxPolicy` (with its behaviour anchor, if it was
    trained with one), plus its metadata."""
    import d3rlpy

    import offline_rl.embedding_q  # noqa: F401  (registers the factories d3rlpy must rebuild)
    import offline_rl.masked_q  # noqa: F401
    from offline_rl.policies import QSoftmaxPolicy

    meta = json.loads((Path(path) / "policy.json").read_text())
    algo = d3rlpy.load_learnable(str(Path(path) / "model.d3"), device="cpu:0")
    anchor, weight = None, float(meta.get("behavior_anchor", 0.0))
    if weight > 0:
        from offline_rl.baselines import BCPolicy

        anchor = BCPolicy(d3rlpy.load_learnable(str(Path(path) / BEHAVIOR_MODEL_FILE), device="cpu:0"), meta["state_dim"])
    return QSoftmaxPolicy(algo, meta["state_dim"], meta["temperature"], meta["algo"], anchor, weight), meta
