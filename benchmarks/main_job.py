"""Time the main job (simulate a week, run the nightly DAG for the next day) on this machine.

    .venv/bin/python benchmarks/main_job.py [--days 7] [--keep]

Prints wall-clock seconds per command and the ratio to the 10-minute target of issue 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 600.0


def timed(cmd: list[str], home: Path) -> float:
    start = time.perf_counter()
    subprocess.run([*cmd, "--home", str(home)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first-ds", default="2026-11-01")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hintrl-bench-"))
    nightly_ds = (dt.date.fromisoformat(args.first_ds) + dt.timedelta(days=args.days)).isoformat()
    cli = [sys.executable, "-m", "hintrl.cli"]
    try:
        simulate = timed([*cli, "simulate", "--ds", args.first_ds, "--days", str(args.days)], home)
        nightly = timed([*cli, "nightly", "--ds", nightly_ds], home)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    total = simulate + nightly
    print(f"simulate {args.days} days:      {simulate:7.1f} s")
    print(f"nightly ds={nightly_ds}: {nightly:7.1f} s")
    print(f"main job total:          {total:7.1f} s  ({total / TARGET_SECONDS:.2f} x the {TARGET_SECONDS:.0f} s target)")


if __name__ == "__main__":
    main()
