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
