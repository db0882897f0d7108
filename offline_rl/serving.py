"""The served policy as an MLflow pyfunc model: exactly the masked softmax that was evaluated.

Input: a DataFrame with `candidates` (hint types eligible on this page) and either `state` (list of
floats in feature-spec order) or the stored feature columns of the page view (user_lt, query_lt and
pv_rt columns, as the feature store holds them), from which the bundled feature spec builds the
state; hints in `shown_in_session` are removed from the candidates. Output: `hint_type` (a draw from the policy) and `probabilities`
(one per candidate, in the order given). The same probabilities are exported as TorchScript
(`policy_torchscript.pt` beside the d3rlpy model) for serving without Python dependencies.
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

TORCHSCRIPT_FILE = "policy_torchscript.pt"


class HintPolicyModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:  # type: ignore[no-untyped-def]
        import json

        from feature_store.registry import SPEC_FILE, spec_from_json
        from offline_rl.train import load_policy

        folder = Path(context.artifacts["policy_dir"])
        self.policy, self.meta = load_policy(folder)
        self.spec = spec_from_json(json.loads((folder / SPEC_FILE).read_text())) if (folder / SPEC_FILE).exists() else None

    def states(self, model_input: pd.DataFrame) -> np.ndarray:
        if "state" in model_input:
            states = np.asarray(np.stack(model_input["state"].to_numpy()), dtype=np.float32)
        elif self.spec is None:
            raise ValueError("this model has no bundled feature spec: give a `state` column")
        else:
            from feature_store.online import columns_from_rows

            states = self.spec.state_matrix(columns_from_rows(model_input))
        if states.shape[1] != self.meta["state_dim"]:
            raise ValueError(f"state has {states.shape[1]} features, the policy expects {self.meta['state_dim']}")
        return states

    def open_candidates(self, model_input: pd.DataFrame) -> list[list[int]]:
        shown = model_input["shown_in_session"] if "shown_in_session" in model_input else [None] * len(model_input)
        out = []
        for candidates, already in zip(model_input["candidates"], shown):
            taken = set(already if already is not None else [])
            open_ = [int(c) for c in candidates if int(c) not in taken]
            if not open_ or not all(0 <= c < self.meta["n_actions"] for c in open_):
                raise ValueError(f"candidates {list(candidates)} leave no valid hint type (0..{self.meta['n_actions'] - 1})")
            out.append(open_)
        return out

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        from offline_rl.policies import candidate_probabilities

        candidates = self.open_candidates(model_input)
        padded = np.full((len(candidates), max(len(c) for c in candidates)), -1, dtype=np.int64)
        for row, cands in enumerate(candidates):
            padded[row, : len(cands)] = cands
        probs = candidate_probabilities(self.policy, self.states(model_input), padded, self.meta["n_actions"])
        rng = np.random.default_rng((params or {}).get("seed"))
        return pd.DataFrame(
            {
                "hint_type": [int(cands[rng.choice(len(cands), p=p[: len(cands)] / p[: len(cands)].sum())])
                              for p, cands in zip(probs, candidates)],
                "candidates": candidates,
                "probabilities": [[float(x) for x in p[: len(cands)]] for p, cands in zip(probs, candidates)],
            }
        )


def torchscript_policy(policy, example_observations: np.ndarray):  # type: ignore[no-untyped-def]
    """A TorchScript module computing exactly the served probabilities: observations
    `[state, candidate mask]` -> softmax(masked Q / temperature) over the candidates `(n, n_actions)`
    (masked network), or `[state, candidate ids padded with -1]` -> the same softmax per candidate
    slot `(n, max_candidates)` (action-embedding network). A policy anchored to the logs carries
    its behaviour model too and adds `anchor_weight * log b(a | s)` to the logits."""
    import torch

    from offline_rl.baselines import observation_logits
    from offline_rl.embedding_q import ensemble_candidate_q

    class ServedSoftmax(torch.nn.Module):
        def __init__(self, q_functions: torch.nn.ModuleList, state_dim: int, temperature: float, candidate_ids: bool,
                     imitator: torch.nn.Module | None, anchor_weight: float):
            super().__init__()
            self.q_functions = q_functions
            self.state_dim = state_dim
            self.temperature = temperature
            self.candidate_ids = candidate_ids  # fixed when traced
            self.imitator = imitator  # the behaviour model's network, or None: fixed when traced
            self.anchor_weight = anchor_weight

        def forward(self, observations: torch.Tensor) -> torch.Tensor:
            candidates = observations[:, self.state_dim:]
            if self.candidate_ids:
                q, _ = ensemble_candidate_q(self.q_functions, observations)
                valid = candidates > -0.5
            else:
                q = torch.stack([f(observations).q_value for f in self.q_functions]).mean(dim=0)
                valid = candidates > 0.5
            logits = q / self.temperature
            if self.imitator is not None:
                behavior, _, _ = observation_logits(self.imitator, observations, self.state_dim, self.candidate_ids)
                behavior = torch.log_softmax(torch.where(valid, behavior, torch.full_like(behavior, float("-inf"))), dim=1)
                logits = logits + self.anchor_weight * torch.where(valid, behavior, torch.zeros_like(behavior))
            logits = torch.where(valid, logits, torch.full_like(q, float("-inf")))
            return torch.softmax(logits, dim=1).detach()

    imitator = None if policy.anchor is None else policy.anchor.algo.impl._modules.imitator
    module = ServedSoftmax(policy.algo.impl.q_function, policy.state_dim, policy.temperature, policy.layout == "ids",
                           imitator, policy.anchor_weight).eval()
    with torch.no_grad():
        return torch.jit.trace(module, torch.as_tensor(np.asarray(example_observations, dtype=np.float32)),
                               check_trace=False)


def export_torchscript(policy, example_observations: np.ndarray, path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Save `torchscript_policy` to `path` (load with torch.jit.load, no hintrl or d3rlpy needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torchscript_policy(policy, example_observations).save(str(path))
    return path
