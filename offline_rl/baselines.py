"""Baseline policies with probabilities over the candidates, fitted on the same transitions as the
Q-learners: Thompson sampling and behaviour cloning (uniform is `policies.UniformPolicy`).

Like every policy here they answer `action_probabilities(observations) -> (n, n_actions)`, zero off
the candidate mask (observations are `[state, mask]`), so OPE, the simulator and serving treat them
like the trained ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from offline_rl.dataset import Transitions
from offline_rl.policies import masked_softmax

THOMPSON_PER = ("type", "segment")


@dataclass
class ThompsonPolicy:
    """Beta(clicks + a, shows - clicks + b) per hint type, optionally per user segment; π(a | s,
    candidates) is the probability that a's posterior draw is the largest among the candidates,
    estimated from `n_draws` joint draws (seeded, so the same state always gets the same answer)."""

    state_dim: int
    alpha: np.ndarray  # (n_segments, n_actions)
    beta: np.ndarray
    segment_of: Callable[[np.ndarray], np.ndarray]  # states -> segment index
    n_draws: int = 2000
    seed: int = 0
    name: str = "thompson"

    def _probabilities(self, segment: int, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        actions = np.flatnonzero(mask)
        draws = rng.beta(self.alpha[segment, actions], self.beta[segment, actions], size=(self.n_draws, len(actions)))
        wins = np.bincount(draws.argmax(axis=1), minlength=len(actions))
        out = np.zeros(len(mask))
        out[actions] = wins / self.n_draws
        return out

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        observations = np.asarray(observations)
        states, masks = observations[:, : self.state_dim], observations[:, self.state_dim:] > 0.5
        if not masks.any(axis=1).all():
            raise ValueError("every row needs at least one candidate")
        segments = self.segment_of(states)
        # The answer depends only on (segment, candidate set): draw once per distinct pair.
        keys = np.concatenate([segments[:, None], masks.astype(np.int64)], axis=1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        rng = np.random.default_rng(self.seed)
        table = np.stack([self._probabilities(int(k[0]), k[1:].astype(bool), rng) for k in unique])
        return table[inverse.reshape(-1)]


def fit_thompson(data: Transitions, per: str = "type", prior: tuple[float, float] = (1.0, 1.0),
                 segment_of: Callable[[np.ndarray], np.ndarray] | None = None, n_segments: int = 1,
                 n_draws: int = 2000, seed: int = 0) -> ThompsonPolicy:
    """Posterior of each hint type's click rate from the logged shows and clicks (`hint_click`)."""
    if per not in THOMPSON_PER:
        raise ValueError(f"per must be one of {', '.join(THOMPSON_PER)}, got {per!r}")
    if "hint_click" not in data.components:
        raise ValueError("Thompson sampling needs the hint_click reward component of the transitions")
    if per == "type" or segment_of is None:
        segment_of, n_segments = (lambda states: np.zeros(len(states), dtype=np.int64)), 1
    segments = segment_of(data.states)
    clicks = np.zeros((n_segments, data.n_actions))
    shows = np.zeros((n_segments, data.n_actions))
    np.add.at(shows, (segments, data.actions), 1.0)
    np.add.at(clicks, (segments, data.actions), data.components["hint_click"])
    a, b = prior
    return ThompsonPolicy(data.state_dim, clicks + a, shows - clicks + b, segment_of, n_draws, seed)


def state_segments(spec_names: list[str], columns: tuple[str, ...]) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """A segment index from binary state elements (e.g. the gender one-hots of the feature spec):
    the segment is the bit pattern of `columns`."""
    index = [spec_names.index(c) for c in columns]

    def segment_of(states: np.ndarray) -> np.ndarray:
        bits = (np.asarray(states)[:, index] > 0.5).astype(np.int64)
        return bits @ (1 << np.arange(len(index)))

    return segment_of, 1 << len(index)


class BCPolicy:
    """Behaviour cloning: d3rlpy DiscreteBC on the state part of the observation; π is the softmax
    of its logits over the candidates (the logged policy's estimate, also a propensity model)."""

    name = "bc"

    def __init__(self, algo, state_dim: int):  # type: ignore[no-untyped-def]
        self.algo = algo
        self.state_dim = state_dim

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        import torch

        x = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=self.algo.impl.device)
        with torch.no_grad():
            logits = self.algo.impl._modules.imitator(x).logits.cpu().numpy().astype(np.float64)
        return masked_softmax(logits, np.asarray(observations)[:, self.state_dim:] > 0.5, 1.0)


def fit_bc(data: Transitions, n_steps: int = 1000, batch_size: int = 256, learning_rate: float = 1e-3,
           hidden_units: tuple[int, ...] = (64, 64), seed: int = 1, logit_penalty: float = 0.5) -> BCPolicy:
    """`logit_penalty` is DiscreteBC's beta (a penalty on squared logits, pulling π towards uniform);
    0 is plain maximum likelihood, what a propensity model needs."""
    import d3rlpy

    from offline_rl.masked_q import MaskedStateEncoderFactory
    from offline_rl.replay import ArrayReplayBuffer

    d3rlpy.seed(seed)
    dataset = ArrayReplayBuffer(data)
    algo = d3rlpy.algos.DiscreteBCConfig(
        batch_size=batch_size, learning_rate=learning_rate, beta=logit_penalty,
        encoder_factory=MaskedStateEncoderFactory(state_dim=data.state_dim, hidden_units=list(hidden_units)),
    ).create(device="cpu:0")
    algo.fit(dataset, n_steps=n_steps, n_steps_per_epoch=n_steps, show_progress=False,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    return BCPolicy(algo, data.state_dim)


def estimated_propensities(data: Transitions, n_steps: int, floor: float, seed: int = 1,
                           chunk_rows: int = 65_536) -> np.ndarray:
    """Each logged action's behaviour probability estimated by behaviour cloning on `data` itself
    (for logs that lack propensities), floored at `floor` so that no importance weight explodes."""
    bc = fit_bc(data, n_steps=n_steps, seed=seed, logit_penalty=0.0)
    out = np.empty(len(data), dtype=np.float64)
    for start in range(0, len(data), chunk_rows):
        rows = np.arange(start, min(start + chunk_rows, len(data)))
        probs = bc.action_probabilities(data.observation_rows(rows))
        out[rows] = probs[np.arange(len(rows)), data.actions[rows]]
    return np.maximum(out, floor)
