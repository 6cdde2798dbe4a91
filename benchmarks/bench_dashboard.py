"""Benchmark: risk-map aggregation and time to first render on a large log.

1. A log of ``--rows`` rows (default 10M): the simulator fleet logs of the OPE
   benchmark (``benchmarks/.work/ope``) replicated under new episode ids, with
   their road geometry.
2. Aggregation: :func:`roadworthy.dashboards.aggregates.compute_cell_aggregates` (DuckDB,
   cold, both cores), wall time and peak RSS.
3. Time to first render of the risk map after the aggregate is cached: the app's
   script run for the risk-map page through ``streamlit.testing`` (loading the
   cached aggregate, combining sources, building the figure), median of 5 runs in
   a fresh process each time the cache is warm.

Usage: ``python benchmarks/bench_dashboard.py --rows 10000000 --out benchmarks/results/dashboard.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "dashboard"

RENDER = """
import os, sys, time
from streamlit.testing.v1 import AppTest
from roadworthy.cli.dashboard_commands import app_path
at = AppTest.from_file(str(app_path()), default_timeout=600)
t0 = time.perf_counter()
at.run()
assert not at.exception, at.exception
assert at.get("plotly_chart"), "no figure"
print(time.perf_counter() - t0)
"""


def big_log(rows: int) -> Path:
    sys.path.insert(0, str(HERE))
    from bench_ope import WORK as OPE_WORK
    from bench_ope import replicate

    src = OPE_WORK / "logs-400"
    if not src.exists():
        raise SystemExit("run benchmarks/bench_ope.py first (it writes the fleet logs this benchmark replicates)")
    folder = WORK / f"log-{rows}"
    if not (folder / "part-0.parquet").exists():
        folder.mkdir(parents=True, exist_ok=True)
        replicate(src, rows, folder / "part-0.parquet")
    if (src / "_maps").exists() and not (folder / "_maps").exists():
        shutil.copytree(src / "_maps", folder / "_maps")
    return folder


def main() -> None:
    from roadworthy.dashboards.aggregates import cell_aggregates, compute_cell_aggregates
    from roadworthy.dashboards.inputs import dashboard_env
    from roadworthy.data.dataset import scan_logs

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "dashboard.json")
    args = ap.parse_args()
    logs = big_log(args.rows)
    n = scan_logs(logs).num_rows
    t0 = time.perf_counter()
    frame = compute_cell_aggregates(logs, 10.0)
    agg_s = time.perf_counter() - t0
    agg_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cache = WORK / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["ROADWORTHY_CACHE"] = str(cache)
    t0 = time.perf_counter()
    cell_aggregates(logs, 10.0)
    cached_s = time.perf_counter() - t0
    env = {**os.environ, **dashboard_env([logs]), "ROADWORTHY_CACHE": str(cache)}
    renders = []
    for _ in range(5):
        out = subprocess.run([sys.executable, "-c", RENDER], env=env, capture_output=True, text=True, check=True)
        renders.append(float(out.stdout.strip().splitlines()[-1]))
    renders.sort()
    report = {
        "benchmark": "dashboard risk map on a large log",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "rows": n,
        "cells": len(frame),
        "aggregation_seconds": agg_s,
        "aggregation_rows_per_second": n / agg_s,
        "aggregation_peak_rss_mib": agg_rss,
        "aggregate_and_cache_seconds": cached_s,
        "first_render_seconds_median": renders[len(renders) // 2],
        "first_render_seconds": renders,
        "goal_first_render_seconds": 3.0,
    }
    print(json.dumps(report, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
