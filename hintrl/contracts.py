"""The raw log contract of DESIGN.md: one definition, rendered as Arrow and Spark schemas."""

from __future__ import annotations

import pyarrow as pa

# (column, type, required). Types use Spark SQL names.
RAW_CONTRACT: dict[str, list[tuple[str, str, bool]]] = {
    "search_pv": [
        ("event_id", "string", True),
        ("ts", "timestamp", True),
        ("user_id", "string", True),
        ("session_id", "string", True),
        ("query_id", "string", True),
        ("page", "int", True),
        ("bucket", "string", True),
        ("candidates", "array<int>", True),
        ("hint_type", "int", False),
        ("propensity", "double", False),
        ("policy_version", "string", False),
        ("hint_clicked", "boolean", True),
        ("item_clicks", "int", True),
        ("purchased", "boolean", True),
        ("purchase_amount", "double", True),
    ],
    "user_action": [
        ("event_id", "string", True),
        ("ts", "timestamp", True),
        ("user_id", "string", True),
        ("session_id", "string", True),
        ("action_type", "string", True),
        ("item_id", "string", True),
    ],
    "user_profile": [
        ("user_id", "string", True),
        ("gender", "string", True),
        ("age", "int", False),
        ("purchase_power", "int", False),
    ],
    "item": [
        ("item_id", "string", True),
        ("price", "double", True),
        ("category_id", "int", True),
        ("conversion_rate", "double", True),
        ("sales_volume", "bigint", True),
    ],
    "hint_catalog": [
        ("hint_type", "int", True),
        ("family", "string", True),
        ("name", "string", True),
    ],
    # An extension of DESIGN.md's raw tables: the query's category (optional; query_lt's
    # `query_category` is null without it).
    "query": [
        ("query_id", "string", True),
        ("category_id", "int", True),
    ],
}

BUCKETS = ("baseline", "policy", "explore")
ACTION_TYPES = ("browse", "click", "cart", "purchase")
GENDERS = ("F", "M", "U")

_ARROW = {
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "array<int>": pa.list_(pa.int32()),
}


def arrow_schema(table: str) -> pa.Schema:
    return pa.schema([pa.field(name, _ARROW[kind], nullable=not required) for name, kind, required in RAW_CONTRACT[table]])


def spark_ddl(table: str) -> str:
    return ", ".join(f"{name} {kind}" for name, kind, _ in RAW_CONTRACT[table])


def required_columns(table: str) -> list[str]:
    return [name for name, _, required in RAW_CONTRACT[table] if required]
