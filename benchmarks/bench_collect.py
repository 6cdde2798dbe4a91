"""Benchmark: embedded-simulator collection speed (steps/s) with 1 and N worker processes.

Usage: ``python benchmarks/bench_collect.py --episodes 40 --out benchmarks/results/collect.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    from roadworthy.data.sim.collect import collect_highway
    from roadworthy.data.sim.highway import HighwayConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=40)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "collect.json")
    args = ap.parse_args()
    results = []
    for workers in dict.fromkeys(args.workers):
        tmp = Path(tempfile.mkdtemp())
        try:
            t0 = time.perf_counter()
            res = collect_highway(tmp / "logs", episodes=args.episodes, seed=0, workers=workers, config=HighwayConfig())
            elapsed = time.perf_counter() - t0
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        r = {
            "workers": workers,
            "episodes": args.episodes,
            "steps": res.rows,
            "seconds": elapsed,
            "steps_per_s": res.rows / elapsed,
        }
        results.append(r)
        print(json.dumps(r), flush=True)
    report = {
        "benchmark": "roadworthy collect highway (highway-env, 5 Hz, 3 lanes, 12-24 vehicles)",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
