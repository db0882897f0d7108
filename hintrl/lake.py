"""The lake layout of DESIGN.md, in one place.

Paths are URIs: a local folder by default, any Hadoop-readable URI (hdfs://, s3a://) on a cluster.
"""

from __future__ import annotations

from pyarrow import fs as pafs

RAW_DAILY_TABLES = ("search_pv", "user_action", "user_profile")
RAW_STATIC_TABLES = ("item", "hint_catalog", "query")
FEATURE_TABLES = ("user_lt", "query_lt", "pv_rt")


def _join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts)


class Lake:
    def __init__(self, root: str):
        self.root = root.rstrip("/")

    def raw(self, table: str, ds: str | None = None) -> str:
        base = _join(self.root, "raw", table)
        return _join(base, f"ds={ds}") if ds else base

    def validated_table(self, table: str) -> str:
        """Rows of a raw daily table that passed ingest (an extension of DESIGN.md's layout)."""
        return _join(self.root, "validated", table)

    def validated(self, table: str, ds: str) -> str:
        return _join(self.validated_table(table), f"ds={ds}")

    def features_table(self, table: str) -> str:
        return _join(self.root, "features", table)

    def quarantine(self, table: str, ds: str) -> str:
        return _join(self.root, "quarantine", table, f"ds={ds}")

    def features(self, table: str, ds: str) -> str:
        return _join(self.features_table(table), f"ds={ds}")

    def transitions_table(self) -> str:
        return _join(self.root, "mdp", "transitions")

    def transitions(self, ds: str) -> str:
        return _join(self.transitions_table(), f"ds={ds}")


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and path of a lake URI (a plain path is local)."""
    return pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)


def raw_day_complete(lake: "Lake", ds: str) -> bool:
    """True when every raw daily table of `ds` is completely written."""
    return all(partition_complete(lake.raw(t, ds)) for t in RAW_DAILY_TABLES)


def partition_complete(uri: str) -> bool:
    """True when the partition folder holds a completed write (its _SUCCESS marker)."""
    fs, path = filesystem(uri)
    return fs.get_file_info(f"{path.rstrip('/')}/_SUCCESS").type != pafs.FileType.NotFound
