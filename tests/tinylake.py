"""Tiny hand-made lakes for the Spark tests: every value is written out so expectations can be too."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from hintrl.contracts import arrow_schema
from hintrl.lake import Lake
from simulator.writer import write_partition

UTC = dt.timezone.utc


def ts(day: str, hms: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=UTC)


def pv_row(event_id, when, user, session, query, page, hint, clicked, candidates=(0, 1, 2, 3), propensity=0.25,
           bucket="baseline", item_clicks=0, purchased=False, amount=0.0):
    return dict(event_id=event_id, ts=when, user_id=user, session_id=session, query_id=query, page=page,
                bucket=bucket, candidates=list(candidates), hint_type=hint,
                propensity=propensity if hint is not None else None, policy_version="test",
                hint_clicked=clicked, item_clicks=item_clicks, purchased=purchased, purchase_amount=amount)


def table(name: str, rows: list[dict]) -> pa.Table:
    schema = arrow_schema(name)
    # Tests write rows that break the contract on purpose: relax nullability.
    schema = pa.schema([f.with_nullable(True) for f in schema])
    return pa.Table.from_pylist(rows, schema=schema)


def write_catalog(lake: Lake, n_types: int = 4) -> None:
    rows = [dict(hint_type=k, family=f"f{k // 2}", name=f"hint{k}") for k in range(n_types)]
    write_partition(table("hint_catalog", rows), lake.raw("hint_catalog"))


def profile_rows() -> list[dict]:
    return [dict(user_id="u1", gender="F", age=30, purchase_power=4),
            dict(user_id="u2", gender="M", age=17, purchase_power=2)]


# Two days; u1's session s1 ends just before midnight, s2 starts just after it.
DAY1 = [
    pv_row("e1", ts("2026-11-01", "23:59:00"), "u1", "s1", "q1", 1, 0, True),
    pv_row("e2", ts("2026-11-01", "23:59:30"), "u1", "s1", "q1", 2, 1, False),
]
DAY2 = [
    pv_row("e3", ts("2026-11-02", "00:00:10"), "u1", "s2", "q2", 1, 0, True, item_clicks=2),
    # same timestamp as e3: ordered after it by event_id
    pv_row("e4", ts("2026-11-02", "00:00:10"), "u1", "s2", "q2", 2, 2, True, purchased=True, amount=30.0),
    pv_row("e5", ts("2026-11-02", "00:05:00"), "u2", "s3", "q1", 1, 1, False),  # u2's first event
    # a hint shown twice in one episode: the episode cannot be learned from under the mask
    pv_row("e6", ts("2026-11-02", "01:00:00"), "u2", "s4", "q3", 1, 3, False),
    pv_row("e7", ts("2026-11-02", "01:00:30"), "u2", "s4", "q3", 2, 3, False),
]


def action(event_id, when, user, kind, item):
    return dict(event_id=event_id, ts=when, user_id=user, session_id="s", action_type=kind, item_id=item)


ITEMS = [dict(item_id="i1", price=10.0, category_id=3, conversion_rate=0.1, sales_volume=5),
         dict(item_id="i2", price=20.0, category_id=4, conversion_rate=0.2, sales_volume=7)]
ACTIONS1 = [
    action("a1", ts("2026-11-01", "23:59:05"), "u1", "click", "i1"),
    action("a2", ts("2026-11-01", "23:59:40"), "u1", "browse", "i2"),
]
ACTIONS2 = [
    action("a3", ts("2026-11-02", "00:00:10"), "u1", "cart", "i1"),  # same ts as e3 and e4: not before them
    action("a4", ts("2026-11-02", "00:01:00"), "u1", "click", "i2"),
] + [action(f"b{i}", ts("2026-11-02", f"00:1{i}:00"), "u2", "click", "i1" if i % 2 else "i2") for i in range(1, 7)]


def write_validated_days(lake: Lake) -> None:
    """Two days already through ingest: validated search_pv, user_action and user_profile, and items."""
    write_partition(table("item", ITEMS), lake.raw("item"))
    # q3 has no row: its category is unknown
    write_partition(table("query", [dict(query_id="q1", category_id=5), dict(query_id="q2", category_id=6)]), lake.raw("query"))
    for day, rows, actions in (("2026-11-01", DAY1, ACTIONS1), ("2026-11-02", DAY2, ACTIONS2)):
        write_partition(table("search_pv", rows), lake.validated("search_pv", day))
        write_partition(table("user_action", actions), lake.validated("user_action", day))
        write_partition(table("user_profile", profile_rows()), lake.validated("user_profile", day))
