"""Benchmark: ``roadworthy score`` on the local and the Ray engine on this machine.

The synthetic logs of ``bench_density.py speed`` (30 features, 2 actions; 1M and
10M rows) and its behaviour model. Each run in a fresh process: wall time, rows/s,
and the peak memory of every Ray worker process (sampled every 0.2 s from /proc):
resident (RSS, which also counts the pages of the shared object store a worker has
mapped) and private (USS: what the worker itself holds), which should stay flat as
the log grows: workers hold a batch, not the log.

Usage: ``python benchmarks/bench_ray.py --rows 1000000 10000000 --out benchmarks/results/ray.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"


def _private_bytes(pid: str) -> int:
    """Unique set size: private pages only (RSS also counts the shared object store a worker maps)."""
    total = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1]) * 1024
    return total


def _rss_by_process(prefix: str = "ray::") -> dict[int, tuple[str, int, int]]:
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not cmd.startswith(prefix):
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out[int(pid)] = (cmd.strip()[:60], int(line.split()[1]) * 1024, _private_bytes(pid))
        except OSError:
            continue
    return out


def run(cmd: list[str]) -> tuple[float, dict[int, tuple[str, int, int]]]:
    peaks: dict[int, tuple[str, int, int]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid, (name, rss, uss) in _rss_by_process().items():
                old = peaks.get(pid, ("", 0, 0))
                peaks[pid] = (name, max(rss, old[1]), max(uss, old[2]))
            time.sleep(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    return wall, peaks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ray.json")
    ap.add_argument("--engines", nargs="+", default=["local", "ray"])
    args = ap.parse_args()
    model = WORK / "density-speed-model"
    if not model.exists():
        raise SystemExit("run `python benchmarks/bench_density.py speed` first (it writes the logs and the model)")
    exe = str(Path(sys.executable).parent / "roadworthy")
    results = []
    for rows in args.rows:
        log = WORK / f"density-score-{rows}.parquet"
        if not log.exists():
            raise SystemExit(f"{log} is missing: run bench_density.py speed --score-rows {rows}")
        for engine in args.engines:
            out = WORK / f"ray-bench-flags-{engine}-{rows}"
            shutil.rmtree(out, ignore_errors=True)
            if out.with_suffix(".parquet").exists():
                out.with_suffix(".parquet").unlink()
            target = out if engine == "ray" else out.with_suffix(".parquet")
            wall, peaks = run([exe, "score", str(log), "--model", str(model), "-o", str(target), "--engine", engine])
            workers = sorted((rss for _, rss, _ in peaks.values()), reverse=True)
            private = sorted((uss for _, _, uss in peaks.values()), reverse=True)
            row = {
                "engine": engine,
                "rows": rows,
                "seconds": wall,
                "rows_per_second": rows / wall,
                "ray_worker_processes": len(workers),
                "peak_rss_per_worker_mib_max": workers[0] / 2**20 if workers else None,
                "peak_rss_workers_mib": [w / 2**20 for w in workers[:6]],
                "peak_private_per_worker_mib_max": private[0] / 2**20 if private else None,
                "peak_private_workers_mib": [w / 2**20 for w in private[:6]],
                "top_workers": [
                    {"process": name, "rss_mib": rss / 2**20, "private_mib": uss / 2**20}
                    for name, rss, uss in sorted(peaks.values(), key=lambda p: -p[2])[:3]
                ],
            }
            print(json.dumps(row), flush=True)
            results.append(row)
            shutil.rmtree(out, ignore_errors=True)
            out.with_suffix(".parquet").unlink(missing_ok=True)
    report = {
        "benchmark": "score on the local and the Ray engine",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "note": "Ray: a local cluster of all cores started by the command; one scoring actor (CPUs - 1)",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
