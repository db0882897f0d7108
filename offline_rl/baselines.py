"""Baseline policies with probabilities over the candidates, fitted on the same transitions as the
Q-learners: Thompson sampling and behaviour cloning (uniform is `policies.UniformPolicy`).

Each answers pi(a | state, candidates) for candidate lists (`candidate_probabilities(states,
candidates)`, ids padded with -1), so it works on catalogs of any size, and over `[state, mask]`
observations (`action_probabilities`) for the small ones; OPE, the simulator and serving treat
them like the trained policies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from offline_rl.dataset import Transitions, mask_to_ids
from offline_rl.policies import masked_softmax

THOMPSON_PER = ("type", "segment", "query")


@dataclass
class ThompsonPolicy:
    """Beta(clicks + a, shows - clicks + b) per hint type, optionally per user segment or per
    query; π(a | s, candidates) is the probability that a's posterior draw is the largest among the
    candidates, estimated from `n_draws` joint draws (seeded, so the same state always gets the same
    answer)."""

    state_dim: int
    alpha: np.ndarray  # (n_segments, n_actions)
    beta: np.ndarray
    segment_of: Callable[[np.ndarray], np.ndarray]  # states -> segment index
    n_draws: int = 2000
    seed: int = 0
    name: str = "thompson"
    # Per query: each query id's posterior row; a query the logs never showed takes the last row.
    query_rows: dict[str, int] | None = None

    @property
    def needs_queries(self) -> bool:
        return self.query_rows is not None

    def _probabilities(self, segment: int, candidates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        valid = candidates >= 0
        actions = candidates[valid]
        draws = rng.beta(self.alpha[segment, actions], self.beta[segment, actions], size=(self.n_draws, len(actions)))
        out = np.zeros(len(candidates))
        out[valid] = np.bincount(draws.argmax(axis=1), minlength=len(actions)) / self.n_draws
        return out

    def candidate_probabilities(self, states: np.ndarray, candidates: np.ndarray,
                                queries: np.ndarray | None = None) -> np.ndarray:
        candidates = np.asarray(candidates, dtype=np.int64)
        if not (candidates >= 0).any(axis=1).all():
            raise ValueError("every row needs at least one candidate")
        if self.query_rows is not None:
            if queries is None:
                raise ValueError(f"{self.name} is per query: pass each row's query id")
            unseen = len(self.alpha) - 1
            segments = np.array([self.query_rows.get(q, unseen) for q in queries], dtype=np.int64)
        else:
            segments = self.segment_of(np.asarray(states))
        # The answer depends only on (segment, candidate list): draw once per distinct pair.
        keys = np.concatenate([segments[:, None], candidates], axis=1)
        unique, inverse = np.unique(keys, axis=0, return_inverse=True)
        rng = np.random.default_rng(self.seed)
        table = np.stack([self._probabilities(int(k[0]), k[1:], rng) for k in unique])
        return table[inverse.reshape(-1)]

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        observations = np.asarray(observations)
        masks = observations[:, self.state_dim:] > 0.5
        return _dense(self.candidate_probabilities(observations[:, : self.state_dim], mask_to_ids(masks)),
                      mask_to_ids(masks), masks.shape[1])


def _dense(probs: np.ndarray, candidates: np.ndarray, n_actions: int) -> np.ndarray:
    out = np.zeros((len(probs), n_actions))
    rows, slots = np.nonzero(candidates >= 0)
    out[rows, candidates[rows, slots]] = probs[rows, slots]
    return out


def _one_segment(states: np.ndarray) -> np.ndarray:
    return np.zeros(len(states), dtype=np.int64)


def fit_thompson(data: Transitions, per: str = "type", prior: tuple[float, float] = (1.0, 1.0),
                 segment_of: Callable[[np.ndarray], np.ndarray] | None = None, n_segments: int = 1,
                 n_draws: int = 2000, seed: int = 0, prior_strength: float = 10.0) -> ThompsonPolicy:
    """Posterior of each hint type's click rate from the logged shows and clicks (`hint_click`):
    per type (prior Beta(a, b) = `prior`), per user segment (`segment_of`, same prior), or per
    query (the transitions loaded `with_queries`). A query sees few shows of each type, so its
    prior is the type's pooled rate p with the weight of `prior_strength` shows:
    Beta(prior_strength p, prior_strength (1 - p)), which is also the posterior of an unseen query."""
    if per not in THOMPSON_PER:
        raise ValueError(f"per must be one of {', '.join(THOMPSON_PER)}, got {per!r}")
    if "hint_click" not in data.components:
        raise ValueError("Thompson sampling needs the hint_click reward component of the transitions")
    if per == "query":
        return _fit_thompson_per_query(data, prior_strength, n_draws, seed)
    if per == "type" or segment_of is None:
        segment_of, n_segments = _one_segment, 1
    segments = segment_of(data.states)
    clicks = np.zeros((n_segments, data.n_actions))
    shows = np.zeros((n_segments, data.n_actions))
    np.add.at(shows, (segments, data.actions), 1.0)
    np.add.at(clicks, (segments, data.actions), data.components["hint_click"])
    a, b = prior
    return ThompsonPolicy(data.state_dim, clicks + a, shows - clicks + b, segment_of, n_draws, seed)


def _fit_thompson_per_query(data: Transitions, prior_strength: float, n_draws: int, seed: int) -> ThompsonPolicy:
    import pandas as pd

    if data.queries is None:
        raise ValueError("Thompson sampling per query needs each step's query id: load the transitions with_queries=True")
    if prior_strength <= 0:
        raise ValueError("prior_strength must be > 0")
    codes, names = pd.factorize(np.asarray(data.queries, dtype=object))
    clicks = np.zeros((len(names), data.n_actions))
    shows = np.zeros((len(names), data.n_actions))
    np.add.at(shows, (codes, data.actions), 1.0)
    np.add.at(clicks, (codes, data.actions), data.components["hint_click"])
    pooled = (clicks.sum(axis=0) + 1.0) / (shows.sum(axis=0) + 2.0)
    a0, b0 = prior_strength * pooled, prior_strength * (1.0 - pooled)
    return ThompsonPolicy(data.state_dim, np.vstack([clicks + a0, a0]), np.vstack([shows - clicks + b0, b0]),
                          _one_segment, n_draws, seed, name="thompson_query",
                          query_rows={str(q): i for i, q in enumerate(names)})


def state_segments(spec_names: list[str], columns: tuple[str, ...]) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """A segment index from binary state elements (e.g. the gender one-hots of the feature spec):
    the segment is the bit pattern of `columns`."""
    index = [spec_names.index(c) for c in columns]

    def segment_of(states: np.ndarray) -> np.ndarray:
        bits = (np.asarray(states)[:, index] > 0.5).astype(np.int64)
        return bits @ (1 << np.arange(len(index)))

    return segment_of, 1 << len(index)


class BCPolicy:
    """Behaviour cloning: d3rlpy DiscreteBC on the state part of the observation, fitted (and
    answering) as the softmax of its logits over each step's candidates: the logged policy's
    estimate, also a propensity model. Only the candidates' logits are computed, so its cost does
    not grow with the catalog."""

    name = "bc"

    def __init__(self, algo, state_dim: int):  # type: ignore[no-untyped-def]
        self.algo = algo
        self.state_dim = state_dim
        self.n_actions = int(algo.impl.action_size)

    def action_probabilities(self, observations: np.ndarray) -> np.ndarray:
        observations = np.asarray(observations)
        masks = observations[:, self.state_dim:] > 0.5
        candidates = mask_to_ids(masks)
        return _dense(self.candidate_probabilities(observations[:, : self.state_dim], candidates), candidates, masks.shape[1])

    def candidate_probabilities(self, states: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        import torch

        candidates = np.asarray(candidates, dtype=np.int64)
        valid = candidates >= 0
        if not valid.any(axis=1).all():
            raise ValueError("every row needs at least one candidate")
        out = np.zeros(candidates.shape)
        imitator = self.algo.impl._modules.imitator
        chunk = max(1, CANDIDATE_LOGITS_PER_CHUNK // max(candidates.shape[1], 1))
        for start in range(0, len(candidates), chunk):
            rows = slice(start, start + chunk)
            # The encoder reads only the state part of an observation, so the states alone will do.
            x = torch.as_tensor(np.asarray(states[rows], dtype=np.float32)[:, : self.state_dim], device=self.algo.impl.device)
            with torch.no_grad():
                logits = candidate_logits(imitator, x, torch.as_tensor(candidates[rows], device=x.device))
            out[rows] = masked_softmax(logits.cpu().numpy().astype(np.float64), valid[rows], 1.0)
        return out


# (rows x candidate slots) scored at a time: bounds the gathered output weights' memory.
CANDIDATE_LOGITS_PER_CHUNK = 1 << 20


def candidate_logits(imitator, x, candidates):  # type: ignore[no-untyped-def]
    """The imitator's logits of the candidate ids only (padding -1 scores as id 0; mask it)."""
    import torch

    ids = candidates.clamp(min=0)
    h = imitator._encoder(x)
    return torch.einsum("bch,bh->bc", imitator._fc.weight[ids], h) + imitator._fc.bias[ids]


def observation_logits(imitator, observations, state_dim: int, candidate_ids: bool):  # type: ignore[no-untyped-def]
    """The imitator's raw scores of each observation's candidates, which entries are candidates,
    and the action each column stands for: per candidate slot for `[state, candidate ids]`
    observations (the ids), per hint type for `[state, dense mask]` ones (None: column k is action
    k). Raw, unlike a Categorical's `.logits` (normalised over the whole catalog), so that a logit
    penalty pulls on the scores themselves."""
    import torch

    from offline_rl.masked_q import split_observation

    state = observations[:, :state_dim]
    if candidate_ids:
        candidates = torch.round(observations[:, state_dim:]).long()
        return candidate_logits(imitator, state, candidates), candidates >= 0, candidates
    _, valid = split_observation(observations, state_dim)
    return imitator._fc(imitator._encoder(state)), valid, None


def _candidate_bc_impl():  # type: ignore[no-untyped-def]
    import torch
    from d3rlpy.algos.qlearning.torch.bc_impl import DiscreteBCImpl
    from d3rlpy.models.torch.imitators import DiscreteImitationLoss

    class CandidateBCImpl(DiscreteBCImpl):
        """DiscreteBCImpl whose likelihood is the softmax over the step's candidates (what the
        logging policy chose among), with the logit penalty on those logits only."""

        state_dim: int
        layout: str

        def compute_loss(self, obs_t, act_t) -> DiscreteImitationLoss:  # type: ignore[no-untyped-def]
            logits, valid, columns = observation_logits(self._modules.imitator, obs_t, self.state_dim,
                                                        self.layout == "ids")
            action = act_t.long().view(-1, 1)
            # The logged action's column: its slot among the candidate ids, or the action itself.
            slot = action if columns is None else (columns == action).float().argmax(dim=1, keepdim=True)
            log_probs = torch.log_softmax(logits.masked_fill(~valid, float("-inf")), dim=1)
            imitation = -log_probs.gather(1, slot).mean()
            regularization = self._beta * logits[valid].pow(2).mean()
            return DiscreteImitationLoss(loss=imitation + regularization, imitation_loss=imitation,
                                         regularization_loss=regularization)

    return CandidateBCImpl


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
    algo.build_with_dataset(dataset)
    algo.impl.__class__ = _candidate_bc_impl()  # same modules and optimiser, the candidates' likelihood
    algo.impl.state_dim, algo.impl.layout = data.state_dim, data.layout
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
        rows = slice(start, start + chunk_rows)
        candidates = data.padded_candidates(rows)
        probs = bc.candidate_probabilities(data.states[rows], candidates)
        out[rows] = np.where(candidates == data.actions[rows, None], probs, 0.0).sum(axis=1)
    return np.maximum(out, floor)
