"""The action-embedding Q-function for large hint catalogs (the seed's design: an embedding per
hint id, scored against the state).

An observation is `[state (state_dim floats), candidate ids (max_candidates floats, -1 = padding)]`:
the ids of the hints eligible on the page, not a dense mask over the catalog, so an observation
costs the same for 8 or 20,000 hint ids (float32 holds every id below 2**24 exactly). The network
scores only the candidates:

    Q(s, a) = <W h(s), e_a> + b_a        for a in the page's candidates

and d3rlpy reads Q-values through `forward`, which scatters those scores into a
`(batch, n_actions)` tensor filled with `INVALID_Q`. So, exactly as with the masked network, a
non-candidate never wins the max in a Q-learning target and adds exp(INVALID_Q - max) = 0 to
DiscreteCQL's logsumexp. Padding scatters into an extra column that is dropped, so a padded slot
never overwrites a real candidate's score and receives no gradient.

That dense tensor is what d3rlpy's generic code reads; on 20,000 ids it makes an update ~10x
slower than scoring the candidates. So the hot paths read the candidates' scores directly, with the
same results: the forwarder's TD error and target pick the action among the candidates,
`use_candidate_updates` gives a built DoubleDQN / DiscreteCQL implementation the candidate argmax
(double-DQN target, predict) and a logsumexp over the candidates (CQL), and serving, OPE and FQE
call `candidate_q`. A test checks each against d3rlpy's dense path.
"""

from __future__ import annotations

import dataclasses

import torch
from d3rlpy.models.q_functions import QFunctionFactory, register_q_func_factory
from d3rlpy.models.torch import DiscreteMeanQFunctionForwarder, Encoder
from d3rlpy.models.torch.q_functions.base import DiscreteQFunction, QFunctionOutput
from d3rlpy.models.torch.q_functions.utility import compute_huber_loss, compute_reduce
from torch import nn

from offline_rl.masked_q import INVALID_Q

MAX_EXACT_ID = 2**24  # float32 represents every integer up to here exactly


def candidate_ids(x: torch.Tensor, state_dim: int) -> torch.Tensor:
    """The candidate ids of id-layout observations, int64, -1 for padding."""
    return torch.round(x[:, state_dim:]).long()


def pick_candidate(q: torch.Tensor, index: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The slot values `(batch, 1)` of `q` whose ids in `index` are `actions` (0 where absent), and
    whether each action was found among the slots."""
    picked = index == actions.long().view(-1, 1)
    return torch.where(picked, q, torch.zeros_like(q)).sum(dim=1, keepdim=True), picked.any(dim=1, keepdim=True)


class CandidateEmbeddingQFunction(DiscreteQFunction):
    def __init__(self, encoder: Encoder, hidden_size: int, action_size: int, state_dim: int, embedding_dim: int):
        super().__init__()
        if action_size >= MAX_EXACT_ID:
            raise ValueError(f"{action_size} hint ids do not fit exactly in float32 observations")
        self._encoder = encoder
        self.state_dim = state_dim
        self.action_size = action_size
        self._project = nn.Linear(hidden_size, embedding_dim)
        # Row `action_size` is the padding slot's (never read for a real candidate).
        self._embedding = nn.Embedding(action_size + 1, embedding_dim)
        self._bias = nn.Embedding(action_size + 1, 1)
        nn.init.normal_(self._embedding.weight, std=embedding_dim ** -0.5)
        nn.init.zeros_(self._bias.weight)

    def candidate_q(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q of each candidate slot `(batch, max_candidates)`, INVALID_Q on padding, and the slots'
        ids with padding mapped to the extra column `action_size`."""
        ids = candidate_ids(x, self.state_dim)
        valid = ids >= 0
        index = torch.where(valid, ids, torch.full_like(ids, self.action_size))
        h = self._project(self._encoder(x))
        q = (self._embedding(index) * h[:, None, :]).sum(dim=2) + self._bias(index).squeeze(2)
        return torch.where(valid, q, torch.full_like(q, INVALID_Q)), index

    def q_of_actions(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q(s, a) `(batch, 1)` of the given actions; INVALID_Q for an action outside the candidates
        (as the dense output would give)."""
        q, index = self.candidate_q(x)
        value, found = pick_candidate(q, index, actions)
        return torch.where(found, value, torch.full_like(value, INVALID_Q))

    def forward(self, x: torch.Tensor) -> QFunctionOutput:
        q, index = self.candidate_q(x)
        full = torch.full((x.shape[0], self.action_size + 1), INVALID_Q, dtype=q.dtype, device=q.device)
        full = full.scatter(1, index, q)
        return QFunctionOutput(q_value=full[:, : self.action_size], quantiles=None, taus=None)

    @property
    def encoder(self) -> Encoder:
        return self._encoder


class CandidateQFunctionForwarder(DiscreteMeanQFunctionForwarder):
    """d3rlpy's mean forwarder, reading Q of a given action from the candidates' scores."""

    _q_func: CandidateEmbeddingQFunction  # type: ignore[assignment]

    def compute_error(self, observations, actions, rewards, target, terminals, gamma=0.99, reduction="mean"):  # type: ignore[no-untyped-def, override]
        value = self._q_func.q_of_actions(observations, actions)
        y = rewards + gamma * target * (1 - terminals)
        return compute_reduce(compute_huber_loss(value, y), reduction)

    def compute_target(self, x, action=None):  # type: ignore[no-untyped-def, override]
        if action is None:
            return self._q_func(x).q_value
        return self._q_func.q_of_actions(x, action)


def ensemble_candidate_q(q_functions: nn.ModuleList, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ensemble's mean Q of each candidate slot, and the slots' ids (padding: `action_size`)."""
    outputs = [q_func.candidate_q(x) for q_func in q_functions]
    return torch.stack([q for q, _ in outputs]).mean(dim=0), outputs[0][1]


class _CandidateUpdates:
    """Overrides for a built DoubleDQNImpl / DiscreteCQLImpl whose Q-functions score candidates."""

    def inner_predict_best_action(self, x: torch.Tensor) -> torch.Tensor:
        q, index = ensemble_candidate_q(self.q_function, x)  # type: ignore[attr-defined]
        return index.gather(1, q.argmax(dim=1, keepdim=True)).squeeze(1)

    def _compute_conservative_loss(self, obs_t: torch.Tensor, act_t: torch.Tensor) -> torch.Tensor:
        q, index = ensemble_candidate_q(self.q_function, obs_t)  # type: ignore[attr-defined]
        logsumexp = torch.logsumexp(q, dim=1, keepdim=True)  # padding is INVALID_Q: exp(.) = 0
        data_values, _ = pick_candidate(q, index, act_t)
        return (logsumexp - data_values).mean()


def use_candidate_updates(algo) -> None:  # type: ignore[no-untyped-def]
    """Give a built d3rlpy DoubleDQN or DiscreteCQL with this Q-function the candidate-only argmax
    and logsumexp (same values as the dense ones, without the dense tensor)."""
    impl = algo.impl
    if not isinstance(impl.q_function[0], CandidateEmbeddingQFunction):
        raise TypeError("use_candidate_updates needs the action-embedding Q-function")
    base = type(impl)
    impl.__class__ = type(f"Candidate{base.__name__}", (_CandidateUpdates, base), {})


@dataclasses.dataclass()
class CandidateEmbeddingQFunctionFactory(QFunctionFactory):
    state_dim: int = 0
    embedding_dim: int = 32

    def create_discrete(self, encoder: Encoder, hidden_size: int, action_size: int):
        q_func = CandidateEmbeddingQFunction(encoder, hidden_size, action_size, self.state_dim, self.embedding_dim)
        return q_func, CandidateQFunctionForwarder(q_func, action_size)  # type: ignore[arg-type]

    def create_continuous(self, encoder, hidden_size):  # type: ignore[no-untyped-def]
        raise NotImplementedError("hint policies have a discrete action space")

    @staticmethod
    def get_type() -> str:
        return "hintrl_candidate_embedding"


register_q_func_factory(CandidateEmbeddingQFunctionFactory)
