"""Benchmark: validate-and-read a large log against a plain ``pyarrow.parquet.read_table``.

Writes a synthetic contract-v1 log (42-float obs, 2 actions, 150-step episodes,
sorted as the writer produces them) of each requested size, then times in fresh
subprocesses, so each has its own peak RSS:

* ``read_table``: ``pyarrow.parquet.read_table`` of the same file (all columns);
* ``validate``: ``data.validate.validate_logs`` (every row-level check);
* ``episodes``: ``data.transitions.iter_episodes`` (validate and assemble episodes);
* ``transitions``: ``data.transitions.iter_transitions`` (validate, episodes, (s, a, r, s')).

Usage: ``python benchmarks/bench_read.py --rows 1000000 5000000 --out benchmarks/results/read.json``
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from common import peak_rss_mib

HERE = Path(__file__).resolve().parent
D, A, STEPS = 42, 2, 150


def make_log(path: Path, rows: int, seed: int = 0) -> None:
    from roadworthy.data.schema import LogMetadata, arrow_schema
    from roadworthy.data.writer import LogWriter

    meta = LogMetadata(tuple(f"f{i}" for i in range(D)), ("accel", "steer"), (-6.0, -0.25), (4.0, 0.25), 0.2)
    schema = arrow_schema(meta, optional=("collision", "speed"))
    rng = np.random.default_rng(seed)
    episodes = rows // STEPS
    chunk = 2000  # episodes per write
    with LogWriter(path, schema) as w:
        for start in range(0, episodes, chunk):
            k = min(chunk, episodes - start)
            n = k * STEPS
            step = np.tile(np.arange(STEPS, dtype=np.int32), k)
            done = step == STEPS - 1
            ids = np.repeat(np.array([f"ep-{i:08d}" for i in range(start, start + k)]), STEPS)
            t = pa.table(
                {
                    "episode_id": ids,
                    "step": step,
                    "t": step * 0.2,
                    "source": np.where(rng.uniform(size=n) < 0.5, "human", "autopilot"),
                    "obs": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * D).astype(np.float32)), D),
                    "action": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * A).astype(np.float32)), A),
                    "reward": rng.normal(size=n).astype(np.float32),
                    "done": done,
                    "terminal": np.zeros(n, dtype=bool),
                    "collision": np.zeros(n, dtype=bool),
                    "speed": rng.uniform(0, 30, n).astype(np.float32),
                }
            )
            w.write(t)


def _child(mode: str, path: str) -> None:
    t0 = time.perf_counter()
    rows = 0
    if mode == "read_table":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).num_rows
    elif mode == "validate":
        from roadworthy.data.validate import validate_logs

        rows = validate_logs(path).rows
    elif mode == "episodes":
        from roadworthy.data.transitions import iter_episodes

        rows = sum(len(e) for e in iter_episodes(path))
    elif mode == "transitions":
        from roadworthy.data.transitions import iter_transitions

        rows = sum(len(b) for b in iter_transitions(path))
    elapsed = time.perf_counter() - t0
    rss = peak_rss_mib()
    print(json.dumps({"mode": mode, "rows": rows, "seconds": elapsed, "peak_rss_mib": rss}))


def measure(mode: str, path: Path, repeats: int) -> dict:
    best = None
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True, check=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    best["rows_per_s"] = best["rows"] / best["seconds"]
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", type=Path, default=HERE / ".work")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "read.json")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"))
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for rows in args.rows:
        path = args.work / f"log-{rows}.parquet"
        if not path.exists():
            t0 = time.perf_counter()
            make_log(path, rows)
            print(
                f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s", flush=True
            )
        for mode in ("read_table", "validate", "episodes", "transitions"):
            r = measure(mode, path, args.repeats)
            r["dataset_rows"] = rows
            r["file_mib"] = path.stat().st_size / 2**20
            results.append(r)
            print(json.dumps(r), flush=True)
    report = {
        "benchmark": "validate-and-read vs pyarrow.parquet.read_table",
        "obs_dim": D,
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "pyarrow": pa.__version__,
        },
        "date": time.strftime("%Y-%m-%d"),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results in {args.out}")


if __name__ == "__main__":
    main()
