"""The served policy as an MLflow pyfunc model: exactly the masked softmax that was evaluated.

Input: a DataFrame with `state` (list of floats in feature-spec order) and `candidates` (list of
hint types open on this page). Output: `hint_type` (a draw from the policy) and `probabilities`
(one per candidate, in the order given).
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd


class HintPolicyModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:  # type: ignore[no-untyped-def]
        from offline_rl.train import load_policy

        self.policy, self.meta = load_policy(Path(context.artifacts["policy_dir"]))

    def observations(self, model_input: pd.DataFrame) -> np.ndarray:
        states = np.asarray(np.stack(model_input["state"].to_numpy()), dtype=np.float32)
        if states.shape[1] != self.meta["state_dim"]:
            raise ValueError(f"state has {states.shape[1]} features, the policy expects {self.meta['state_dim']}")
        masks = np.zeros((len(model_input), self.meta["n_actions"]), dtype=np.float32)
        for row, candidates in enumerate(model_input["candidates"]):
            masks[row, np.asarray(candidates, dtype=np.int64)] = 1.0
        return np.concatenate([states, masks], axis=1)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        probs = self.policy.action_probabilities(self.observations(model_input))
        rng = np.random.default_rng((params or {}).get("seed"))
        chosen = [int(rng.choice(len(p), p=p)) for p in probs]
        return pd.DataFrame(
            {
                "hint_type": chosen,
                "probabilities": [
                    [float(p[c]) for c in cands] for p, cands in zip(probs, model_input["candidates"])
                ],
            }
        )
