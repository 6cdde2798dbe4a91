"""Benchmark: CARLA recorder parsing speed and memory.

* Parse speed (MB/s) on the real recordings in ../shared/data/carla/recordings,
  read repeatedly until at least 200 MB have been decoded (every packet kind).
* Peak RSS while streaming synthetic recordings of growing size (default 256 MB
  and 1 GB, 0.9.16 profile, 150 actors), each in a fresh process: memory should
  not grow with the file.

Usage: ``python benchmarks/bench_carla.py --out benchmarks/results/carla.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from common import peak_rss_mib

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "carla" / "recordings"


def _child(path: str) -> None:
    from roadworthy.data.carla.recorder import RecorderReader

    t0 = time.perf_counter()
    reader = RecorderReader(path)
    records = 0
    for chunk in reader.chunks():
        records += sum(t.num_rows for t in chunk.tables.values())
    elapsed = time.perf_counter() - t0
    rss = peak_rss_mib()
    print(json.dumps({"bytes": reader.file_size, "seconds": elapsed, "records": records, "peak_rss_mib": rss}))


def real_speed(min_bytes: int) -> dict:
    from roadworthy.data.carla.recorder import RecorderReader

    files = sorted(SHARED.glob("*.log"))
    done = 0
    t0 = time.perf_counter()
    while done < min_bytes:
        for f in files:
            reader = RecorderReader(f)
            for _ in reader.chunks():
                pass
            done += reader.file_size
    elapsed = time.perf_counter() - t0
    return {"files": [f.name for f in files], "bytes": done, "seconds": elapsed, "mb_per_s": done / elapsed / 1e6}


def synthetic(path: Path, target_bytes: int) -> None:
    from roadworthy.data.carla.recorder_writer import write_synthetic

    probe = path.with_suffix(".probe")
    write_synthetic(probe, frames=50, vehicles=120, walkers=30, profile="0.9.16")
    per_frame = probe.stat().st_size / 50
    probe.unlink()
    write_synthetic(path, frames=int(target_bytes / per_frame), vehicles=120, walkers=30, profile="0.9.16")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes-mb", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--min-mb", type=int, default=200)
    ap.add_argument("--work", type=Path, default=HERE / ".work")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "carla.json")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return
    report = {
        "benchmark": "CARLA recorder parsing",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
    }
    if SHARED.is_dir():
        report["real_files"] = real_speed(args.min_mb * 10**6)
        print(json.dumps(report["real_files"]), flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    report["synthetic"] = []
    for mb in args.sizes_mb:
        path = args.work / f"synthetic-{mb}mb.log"
        if not path.exists():
            t0 = time.perf_counter()
            synthetic(path, mb * 2**20)
            print(f"wrote {path} in {time.perf_counter() - t0:.0f} s", flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["mb_per_s"] = r["bytes"] / r["seconds"] / 1e6
        r["size_mb"] = mb
        report["synthetic"].append(r)
        print(json.dumps(r), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
