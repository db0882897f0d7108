"""Reward presets: the one place where a step's reward is defined.

Each preset is written once against a tiny backend (`where`, `lit`) so that the same formula runs
in Spark (the transitions job) and in numpy (the simulator's ground truth and unit tests).

Step components (all doubles):
  hint_click              1 if the shown hint was clicked
  page                    1-based page number
  item_clicks             result items clicked on the page
  turned_page             1 if the user went on to another page of this query
  purchased               1 if the page led to a purchase
  purchase_amount         amount paid, 0 without purchase
  left_without_purchase   1 on the last page of an episode that never purchased on it

With `reward.baseline_correction` the transitions job subtracts from each step's reward the mean
reward of the baseline bucket in the same hour (pipelines/mdp.py) and keeps that mean as the
component `baseline_hour_mean`.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np

from hintrl.config import RewardConfig
from hintrl.errors import HintrlError

COMPONENTS = (
    "hint_click",
    "page",
    "item_clicks",
    "turned_page",
    "purchased",
    "purchase_amount",
    "left_without_purchase",
)


class Backend(Protocol):
    def where(self, cond: Any, yes: Any, no: Any) -> Any: ...
    def lit(self, value: float) -> Any: ...
    def pow(self, base: float, exponent: Any) -> Any: ...


class NumpyBackend:
    def where(self, cond: Any, yes: Any, no: Any) -> Any:
        return np.where(np.asarray(cond) > 0, yes, no)

    def lit(self, value: float) -> Any:
        return np.float64(value)

    def pow(self, base: float, exponent: Any) -> Any:
        return np.power(base, np.asarray(exponent, dtype=np.float64))


class SparkBackend:
    def __init__(self) -> None:
        from pyspark.sql import functions as F

        self._F = F

    def where(self, cond: Any, yes: Any, no: Any) -> Any:
        F = self._F
        return F.when(cond > 0, yes).otherwise(no)

    def lit(self, value: float) -> Any:
        return self._F.lit(float(value))

    def pow(self, base: float, exponent: Any) -> Any:
        return self._F.pow(self._F.lit(float(base)), exponent)


def _ctr(c: dict[str, Any], cfg: RewardConfig, b: Backend) -> Any:
    return c["hint_click"] * b.pow(cfg.page_decay, c["page"] - 1)


def _guided(c: dict[str, Any], cfg: RewardConfig, b: Backend) -> Any:
    return (
        c["hint_click"] * cfg.guided_hint_click
        + c["item_clicks"] * cfg.guided_item_click
        + c["turned_page"] * cfg.guided_page_turn
        + c["purchased"] * cfg.guided_purchase
    )


def _ma_rdpg(c: dict[str, Any], cfg: RewardConfig, b: Backend) -> Any:
    # MA-RDPG: purchase -> amount; click -> 1; leave without purchase -> -5; otherwise -1.
    clicked = c["hint_click"] + c["item_clicks"]
    return b.where(
        c["purchased"],
        c["purchase_amount"],
        b.where(clicked, b.lit(1.0), b.where(c["left_without_purchase"], b.lit(-5.0), b.lit(-1.0))),
    )


PRESETS: dict[str, Callable[[dict[str, Any], RewardConfig, Backend], Any]] = {
    "ctr": _ctr,
    "guided": _guided,
    "ma_rdpg": _ma_rdpg,
}


def check_preset(name: str) -> None:
    if name not in PRESETS:
        raise HintrlError(f"unknown reward preset {name!r}: choose one of {', '.join(PRESETS)}")


def reward(components: dict[str, Any], cfg: RewardConfig, backend: Backend | None = None) -> Any:
    """The reward of `cfg.preset` from step components (numpy arrays unless a backend is given)."""
    check_preset(cfg.preset)
    missing = [name for name in COMPONENTS if name not in components]
    if missing:
        raise HintrlError(f"reward components missing: {', '.join(missing)}")
    return PRESETS[cfg.preset](components, cfg, backend or NumpyBackend())
