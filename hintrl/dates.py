"""`ds` strings (YYYY-MM-DD) and day arithmetic."""

from __future__ import annotations

import datetime as dt

from hintrl.errors import HintrlError


def parse_ds(value: str) -> dt.date:
    try:
        if len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise HintrlError(f"malformed ds {value!r}: expected a date as YYYY-MM-DD") from None


def shift(ds: str, days: int) -> str:
    return (parse_ds(ds) + dt.timedelta(days=days)).isoformat()


def day_range(first: str, last: str) -> list[str]:
    """Every ds from first to last, inclusive."""
    start, end = parse_ds(first), parse_ds(last)
    if end < start:
        raise HintrlError(f"empty date range: {first} is after {last}")
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


class NightlyWindow:
    """The days a nightly run for `ds` reads: logs are complete through ds-1.

    The newest `eval_days` days (ds-1 by default) are held out for off-policy evaluation of every
    policy; the `train_days` days before them are the training set. The policy promoted by the run
    serves on day ds.
    """

    def __init__(self, ds: str, train_days: int, eval_days: int = 1):
        parse_ds(ds)
        if train_days < 1:
            raise HintrlError("train.train_days must be >= 1")
        if eval_days < 1:
            raise HintrlError("ope.eval_days must be >= 1")
        self.ds = ds
        self.eval_day = shift(ds, -1)  # the newest held-out day: the one the nightly waits for
        self.eval_days = day_range(shift(ds, -eval_days), self.eval_day)
        self.train_days = day_range(shift(ds, -eval_days - train_days), shift(ds, -1 - eval_days))

    @property
    def first_day(self) -> str:
        return self.train_days[0]

    @property
    def all_days(self) -> list[str]:
        return [*self.train_days, *self.eval_days]

    @property
    def eval_label(self) -> str:
        """The held-out day, or `first..last` of several."""
        return self.eval_day if len(self.eval_days) == 1 else f"{self.eval_days[0]}..{self.eval_day}"
