"""Speed of `roadworthy import dmv` on the four real 2023 files (goal: under 10 s on 2 cores).

Runs the command in a fresh process (interpreter start-up and imports included), best of
three, and the import function in this process; writes ``benchmarks/results/dmv.json``.

Usage: ``python benchmarks/bench_dmv.py``
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DMV = HERE.parent.parent / "shared" / "data" / "dmv"
DIS = [DMV / f"2023-Autonomous-Vehicle-Disengagement-Reports-CSV{s}.csv" for s in ("", "-driverless")]
MIL = [DMV / f"2023-Autonomous-Mileage-Reports-CSV{s}.csv" for s in ("", "-driverless")]


def main() -> None:
    from roadworthy.data.dmv.importer import import_dmv

    exe = shutil.which("roadworthy") or str(Path(sys.executable).parent / "roadworthy")
    cli, inproc = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(3):
            out = Path(tmp) / f"cli{k}"
            args = [
                exe,
                "import",
                "dmv",
                *map(str, DIS),
                *(a for m in MIL for a in ("--mileage", str(m))),
                "--out",
                str(out),
            ]
            t0 = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            cli.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = import_dmv(DIS, MIL, Path(tmp) / f"api{k}")
            inproc.append(time.perf_counter() - t0)
    res = {
        "benchmark": "roadworthy import dmv, the four 2023 files",
        "bytes": sum(p.stat().st_size for p in (*DIS, *MIL)),
        "events": result["events"],
        "vehicles": result["vehicles"],
        "seconds_command_best_of_3": min(cli),
        "seconds_in_process_best_of_3": min(inproc),
        "goal_seconds": 10,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
    }
    (HERE / "results" / "dmv.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
