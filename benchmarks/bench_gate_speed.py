"""Speed of the gate, end to end: `roadworthy gate` on a ~30k-row log, from fitting to verdict.

Runs the real command in a fresh process (no behaviour model given, so it fits one),
candidate ``fast`` against the baseline ``autopilot-clone`` (example policies), with
the default gate settings, and times it; then the same with a fitted behaviour model
passed in (``--model``), which is how CI reuses one. The log is the demo's
(``roadworthy collect highway --episodes 200 --seed 0``), collected once into
``benchmarks/.work/speed/logs`` when missing. Goal (issue 12): 90 s on 2 cores.

Usage: ``python benchmarks/bench_gate_speed.py [--logs DIR] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "speed"


def roadworthy(*args: str) -> list[str]:
    exe = shutil.which("roadworthy") or str(Path(sys.executable).parent / "roadworthy")
    return [exe, *args]


def timed(cmd: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=Path, default=WORK / "logs")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "gate-speed.json")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    if not args.logs.exists():
        subprocess.run(
            roadworthy("collect", "highway", "--episodes", "200", "--seed", "0", "--out", str(args.logs)), check=True
        )
    pols = WORK / "policies"
    if not pols.exists():
        subprocess.run(roadworthy("example-policies", "--out", str(pols)), check=True)
    rows = json.loads(
        subprocess.run(
            roadworthy("validate", str(args.logs), "--json", "-"), capture_output=True, text=True, check=True
        ).stdout
    )["rows"]
    gate = [
        "gate",
        str(args.logs),
        "--candidate",
        str(pols / "fast.onnx"),
        "--baseline",
        str(pols / "autopilot-clone.onnx"),
    ]
    full, code = timed(roadworthy(*gate, "--json", str(WORK / "verdict-full.json")))
    model = WORK / "model"
    fit_s, _ = timed(roadworthy("fit", str(args.logs), "-o", str(model), "--seed", "0"))
    reuse, code2 = timed(roadworthy(*gate, "--model", str(model), "--json", str(WORK / "verdict-model.json")))
    result = {
        "benchmark": "roadworthy gate end to end (fast vs autopilot-clone, default settings)",
        "rows": rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "seconds_fit_to_verdict": full,
        "verdict_exit_code": code,
        "seconds_fit_behaviour_model": fit_s,
        "seconds_with_model_given": reuse,
        "verdict_exit_code_with_model": code2,
        "goal_seconds": 90,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
