"""Candidate masks for d3rlpy's discrete Q-learning, without patching d3rlpy.

An observation is `[state (state_dim floats), mask (n_actions floats, 1 = candidate)]`. The encoder
reads only the state; the Q-function overwrites the Q-value of every non-candidate with
`INVALID_Q`. Every d3rlpy code path reads Q-values through this forward, so an invalid action never
wins the argmax (serving, DQN and double-DQN targets) and contributes exp(INVALID_Q - max) = 0 to
DiscreteCQL's logsumexp. INVALID_Q is finite so that a terminal step's `target * (1 - terminal)`
stays 0 instead of NaN.
"""

from __future__ import annotations

import dataclasses

import torch
from d3rlpy.models.encoders import EncoderFactory, register_encoder_factory
from d3rlpy.models.q_functions import QFunctionFactory, register_q_func_factory
from d3rlpy.models.torch import DiscreteMeanQFunctionForwarder, Encoder
from d3rlpy.models.torch.q_functions.base import DiscreteQFunction, QFunctionOutput
from d3rlpy.types import Shape
from torch import nn

INVALID_Q = -1.0e9


def split_observation(x: torch.Tensor, state_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    return x[:, :state_dim], x[:, state_dim:] > 0.5


class StateEncoder(Encoder):
    """An MLP over the state part of the observation."""

    def __init__(self, state_dim: int, hidden_units: list[int]):
        super().__init__()
        self.state_dim = state_dim
        layers: list[nn.Module] = []
        width = state_dim
        for units in hidden_units:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x[:, : self.state_dim])


@dataclasses.dataclass()
class MaskedStateEncoderFactory(EncoderFactory):
    state_dim: int = 0
    hidden_units: list[int] = dataclasses.field(default_factory=lambda: [64, 64])

    def create(self, observation_shape: Shape) -> StateEncoder:
        return StateEncoder(self.state_dim, list(self.hidden_units))

    @staticmethod
    def get_type() -> str:
        return "hintrl_masked_state"


class MaskedDiscreteQFunction(DiscreteQFunction):
    def __init__(self, encoder: Encoder, hidden_size: int, action_size: int, state_dim: int):
        super().__init__()
        self._encoder = encoder
        self._fc = nn.Linear(hidden_size, action_size)
        self.state_dim = state_dim

    def forward(self, x: torch.Tensor) -> QFunctionOutput:
        _, mask = split_observation(x, self.state_dim)
        q = self._fc(self._encoder(x))
        return QFunctionOutput(q_value=torch.where(mask, q, torch.full_like(q, INVALID_Q)), quantiles=None, taus=None)

    @property
    def encoder(self) -> Encoder:
        return self._encoder


@dataclasses.dataclass()
class MaskedMeanQFunctionFactory(QFunctionFactory):
    state_dim: int = 0

    def create_discrete(self, encoder: Encoder, hidden_size: int, action_size: int):
        q_func = MaskedDiscreteQFunction(encoder, hidden_size, action_size, self.state_dim)
        return q_func, DiscreteMeanQFunctionForwarder(q_func, action_size)  # type: ignore[arg-type]

    def create_continuous(self, encoder, hidden_size):  # type: ignore[no-untyped-def]
        raise NotImplementedError("hint policies have a discrete action space")

    @staticmethod
    def get_type() -> str:
        return "hintrl_masked_mean"


register_encoder_factory(MaskedStateEncoderFactory)
register_q_func_factory(MaskedMeanQFunctionFactory)
