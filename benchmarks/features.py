"""Feature pipeline throughput and memory against issue 4's targets.

    .venv/bin/python benchmarks/features.py --page-views 100000 1000000 5000000

For each size (in a fresh process): simulate that many page views spread over `--days` days into a
temporary lake (not timed), then time every Spark job from raw to features/ on `local[2]`: the ingest stage
(validation and quarantine of all raw tables) and the features stage (the long-term job's
user_lt and query_lt beside the real-time job's pv_rt), for every day. Prints page views per second, seconds per job and the peak
resident memory of the Python driver plus its Spark JVM (sampled every 0.2 s).
Target: 1M page views end to end in under 60 s on 2 cores, cost linear in rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time

# One user-day of the default world yields about 1.64 page views.
PAGE_VIEWS_PER_USER_DAY = 1.64


class PeakMemory:
    """Peak RSS of this process and all its descendants (the Spark JVM), sampled in a thread."""

    def __init__(self, every_s: float = 0.2):
        import psutil

        self.process = psutil.Process()
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        for p in [self.process, *self.process.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except Exception:  # a child that just exited
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            time.sleep(self.every_s)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def bench(page_views: int, days: int, master: str, driver_memory: str) -> dict:
    from hintrl.config import HintrlConfig
    from hintrl.dates import shift
    from hintrl.lake import Lake
    from pipelines.spark import get_spark
    from pipelines.stages import features_stage, ingest_stage
    from simulator.writer import simulate_to_lake

    home = tempfile.mkdtemp(prefix="hintrl-bench-features-")
    try:
        cfg = HintrlConfig(home=home).replace(**{"spark.master": master, "spark.driver_memory": driver_memory})
        world = dataclasses.replace(cfg.simulator, n_users=max(1000, int(page_views / days / PAGE_VIEWS_PER_USER_DAY)))
        first, last = "2026-11-01", shift("2026-11-01", days - 1)
        start = time.perf_counter()
        rows = simulate_to_lake(world, Lake(cfg.lake_uri), first, days, progress=lambda _: None)
        simulate_s = time.perf_counter() - start
        quiet = lambda _: None  # noqa: E731
        with PeakMemory() as memory:
            start = time.perf_counter()
            spark = get_spark(cfg.spark)
            jvm_s = time.perf_counter() - start
            timings = {}
            # The features stage runs the long-term and real-time chains side by side, as a nightly does.
            for name, run in (
                ("ingest", lambda: ingest_stage(spark, cfg, last, first, quiet)),
                ("features", lambda: features_stage(spark, cfg, last, first, quiet)),
            ):
                start = time.perf_counter()
                run()
                timings[name] = round(time.perf_counter() - start, 1)
            spark.stop()
        total = sum(timings.values())
        pv = rows["search_pv"]
        return {
            "page_views": pv, "user_actions": rows["user_action"], "users": world.n_users, "days": days,
            "simulate_s": round(simulate_s, 1), "spark_start_s": round(jvm_s, 1), "jobs_s": timings,
            "total_s": round(total, 1), "page_views_per_s": round(pv / total), "seconds_per_1M": round(total * 1e6 / pv, 1),
            "ratio_to_target_60s_per_1M": round(total * 1e6 / pv / 60.0, 2), "peak_rss_mib": round(memory.peak / 2**20),
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page-views", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, default=7, help="days the page views are spread over (default 7)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--repeat", type=int, default=1,
                        help="fresh runs per size; the table shows the run with the median total (default 1)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a single size, in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(bench(args.page_views[0], args.days, args.master, args.driver_memory)))
        return
    rows = []
    for n in args.page_views:
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run([sys.executable, __file__, "--one", "--page-views", str(n), "--days", str(args.days),
                                  "--master", args.master, "--driver-memory", args.driver_memory],
                                 check=True, capture_output=True, text=True).stdout
            runs.append(json.loads(out.splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
        runs.sort(key=lambda r: r["total_s"])
        rows.append(dict(runs[len(runs) // 2], all_totals_s=[r["total_s"] for r in runs]))
    print("| page views | users | ingest s | features s (long-term ∥ real-time) | total s (all runs) | page views/s | s per 1M | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        j = r["jobs_s"]
        print(f"| {r['page_views']:,} | {r['users']:,} | {j['ingest']} | {j['features']} | {r['total_s']} ({', '.join(map(str, r['all_totals_s']))}) "
              f"| {r['page_views_per_s']:,} | {r['seconds_per_1M']} | {r['peak_rss_mib']:,} |")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        marginal = (b["total_s"] - a["total_s"]) / (b["page_views"] - a["page_views"]) * 1e6
        print(f"marginal cost: {marginal:.1f} s per extra 1M page views; time ratio {b['total_s'] / a['total_s']:.2f} "
              f"for a row ratio of {b['page_views'] / a['page_views']:.2f}")


if __name__ == "__main__":
    main()
