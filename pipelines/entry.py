"""Entry point shared by the job files, so each runs under `spark-submit pipelines/<job>.py`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hintrl.config import HintrlConfig, SparkConfig
from hintrl.dates import parse_ds
from hintrl.errors import HintrlError

JOB_STAGE = {"ingest": "ingest", "long_term": "features", "realtime": "features", "mdp": "mdp"}


def run_job(job: str, argv: list[str] | None = None) -> None:
    from pipelines.spark import get_spark
    from pipelines.stages import STAGES

    parser = argparse.ArgumentParser(prog=f"pipelines/{job}.py", description=f"hintrl Spark job: {job}")
    parser.add_argument("--lake", required=True, help="lake root (path or Hadoop URI)")
    parser.add_argument("--ds", required=True, help="day to process, YYYY-MM-DD")
    parser.add_argument("--since", help="also process earlier days from this one whose output is missing")
    parser.add_argument("--master", default=None, help="Spark master (spark-submit's --master wins)")
    args = parser.parse_args(argv)
    try:
        for day in filter(None, (args.ds, args.since)):
            parse_ds(day)
        spark_cfg = SparkConfig(master=args.master) if args.master else SparkConfig()
        cfg = HintrlConfig(home=Path.cwd(), lake=args.lake, spark=spark_cfg)
        spark = get_spark(cfg.spark)
        report = STAGES[JOB_STAGE[job]](spark, cfg, args.ds, args.since)
        print(json.dumps(report, default=str))
    except HintrlError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
