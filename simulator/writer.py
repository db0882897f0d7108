"""Write simulated tables into the lake: one Parquet file per partition, swapped in whole."""

from __future__ import annotations

import uuid
from typing import Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from hintrl.config import SimulatorConfig
from hintrl.lake import Lake, filesystem
from simulator.logs import DayLogs


def write_partition(table: pa.Table | Iterable[pa.Table], uri: str) -> int:
    """Replace the folder `uri` with one holding `table` (or the chunks of one table, written as they
    come, so the whole never sits in memory), never showing a half-written partition. Returns rows."""
    fs, path = filesystem(uri)
    tmp = f"{path.rstrip('/')}.__tmp_{uuid.uuid4().hex}"
    fs.create_dir(tmp, recursive=True)
    chunks = [table] if isinstance(table, pa.Table) else table
    rows = 0
    writer: pq.ParquetWriter | None = None
    for chunk in chunks:
        if writer is None:
            writer = pq.ParquetWriter(f"{tmp}/part-00000.parquet", chunk.schema, filesystem=fs)
        writer.write_table(chunk)
        rows += chunk.num_rows
    if writer is not None:
        writer.close()
    with fs.open_output_stream(f"{tmp}/_SUCCESS") as marker:
        marker.write(b"")
    if fs.get_file_info(path).type != pafs.FileType.NotFound:
        fs.delete_dir(path)
    fs.move(tmp, path)
    return rows


class LakeWriter:
    def __init__(self, lake: Lake):
        self.lake = lake
        self.rows_written: dict[str, int] = {}

    def _count(self, table: str, rows: int) -> None:
        self.rows_written[table] = self.rows_written.get(table, 0) + rows

    def write_static(self, tables: dict[str, pa.Table]) -> None:
        for name, table in tables.items():
            write_partition(table, self.lake.raw(name))
            self._count(name, table.num_rows)

    def write_day(self, day: DayLogs, profiles: pa.Table) -> None:
        for name in ("search_pv", "user_action"):
            self._count(name, write_partition(day.batches(name), self.lake.raw(name, day.ds)))
        self._count("user_profile", write_partition(profiles, self.lake.raw("user_profile", day.ds)))


def simulate_to_lake(cfg: SimulatorConfig, lake: Lake, first_ds: str, n_days: int, progress: Callable[[str], None] = print) -> dict[str, int]:
    """Write the static tables and n_days of logs from `first_ds`."""
    from hintrl.dates import shift
    from simulator.logs import Simulator

    sim = Simulator(cfg)
    writer = LakeWriter(lake)
    writer.write_static(sim.static_tables())
    for i in range(n_days):
        day = sim.simulate_day(shift(first_ds, i), i)
        writer.write_day(day, sim.profile_table())
        progress(f"simulate {day.ds}: {day.n_page_views} page views, {len(day.actions['user'])} user actions")
    return writer.rows_written
