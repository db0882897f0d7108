"""Entry point shared by the job files, so each runs under `spark-submit pipelines/<job>.py`."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

from hintrl.config import HintrlConfig, setting_arg
from hintrl.dates import parse_ds
from hintrl.errors import HintrlError


def run_job(job: str, argv: list[str] | None = None) -> None:
    from pipelines.spark import get_spark
    from pipelines.stages import features_stage, ingest_stage, mdp_stage

    jobs = {
        "ingest": ingest_stage,
        "long_term": partial(features_stage, jobs=("long_term",)),
        "realtime": partial(features_stage, jobs=("realtime",)),
        "mdp": mdp_stage,
    }

    parser = argparse.ArgumentParser(prog=f"pipelines/{job}.py", description=f"hintrl Spark job: {job}")
    parser.add_argument("--lake", required=True, help="lake root (path or Hadoop URI)")
    parser.add_argument("--ds", required=True, help="day to process, YYYY-MM-DD")
    parser.add_argument("--since", help="also process earlier days from this one whose output is missing")
    parser.add_argument("--master", default=None, help="Spark master (default: the one spark-submit was given)")
    parser.add_argument("--force", action="store_true", help="recompute every day from --since, even with output")
    parser.add_argument("--set", action="append", type=setting_arg, metavar="SECTION.KEY=VALUE",
                        help="override a setting of hintrl.config, e.g. reward.preset=guided (repeatable)")
    args = parser.parse_args(argv)
    try:
        for day in filter(None, (args.ds, args.since)):
            parse_ds(day)
        # Without --master the job keeps the master spark-submit was given.
        overrides = dict(args.set or [])
        overrides["spark.master"] = args.master or ""
        cfg = HintrlConfig(home=Path.cwd(), lake=args.lake).with_settings(overrides, "--set")
        spark = get_spark(cfg.spark)
        report = jobs[job](spark, cfg, args.ds, args.since, force=args.force)
        print(json.dumps(report, default=str))
    except HintrlError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
