"""Speed of the evaluator and the gate, with d3rlpy's FQE measured in the same run.

Three measurements, one after the other on the same machine (issue 20's goals in brackets):

1. ``roadworthy gate`` end to end, fast vs autopilot-clone, on a ~30k-row log with a model
   folder from ``roadworthy fit`` (the behaviour density and the learned driving model),
   as CI reuses one [<= 60 s]; ``roadworthy fit`` itself is timed too (once per log);
2. ``roadworthy evaluate`` of the gate benchmark's reporting policies on a 400-episode log
   (~58k rows) with its fitted model folder: seconds per policy after the shared work (the
   value and danger checks), from the evaluator's own stage marks [<= 15 s];
3. d3rlpy 2.8.1's FQE (``bench_peers.d3rlpy_fqe``: the same inputs, roadworthy FQE's number
   of gradient steps, batch and target-update interval) on the same log for a few of the same
   policies, in the peers' own environment (``benchmarks/.peer-venv``, see
   ``bench_peers.py``; roadworthy is installed there with ``pip install --no-deps -e .``);
   the ratio of seconds per policy is reported, with both estimates against the truth.

Results: ``benchmarks/results/speed.json``. Usage::

    python benchmarks/bench_speed.py [--peer-policies autopilot-clone drift]
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
ROOT = HERE.parent
WORK = HERE / ".work" / "speed"
PEER = HERE / ".peer-venv" / "bin" / "python"
sys.path.insert(0, str(HERE))

from gate_bench_data import log_path, policy_paths, truth  # noqa: E402


def roadworthy(*args: str) -> list[str]:
    exe = shutil.which("roadworthy") or str(Path(sys.executable).parent / "roadworthy")
    return [exe, *args]


def timed(cmd: list[str], ok: tuple[int, ...] = (0, 1)) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0, proc.returncode


def gate_speed() -> dict:
    """Measurement 1: fit once, then the gate with the model folder."""
    logs, pols, model = WORK / "logs", WORK / "policies", WORK / "model"
    if not logs.exists():
        subprocess.run(
            roadworthy("collect", "highway", "--episodes", "200", "--seed", "0", "--out", str(logs)), check=True
        )
    if not pols.exists():
        subprocess.run(roadworthy("example-policies", "--out", str(pols)), check=True)
    rows = json.loads(
        subprocess.run(
            roadworthy("validate", str(logs), "--json", "-"), capture_output=True, text=True, check=True
        ).stdout
    )["rows"]
    fit_s, _ = timed(roadworthy("fit", str(logs), "-o", str(model), "--seed", "0", "--overwrite"), ok=(0,))
    gate = ["gate", str(logs), "--candidate", str(pols / "fast.onnx"), "--baseline", str(pols / "autopilot-clone.onnx")]
    out = WORK / "verdict.json"
    secs, code = timed(roadworthy(*gate, "--model", str(model), "--json", str(out), "--overwrite"))
    return {"rows": rows, "seconds_fit": fit_s, "seconds_gate_with_model": secs, "exit_code": code, "goal_seconds": 60}


def evaluate_speed(seed: int, episodes: int, names: list[str]) -> dict:
    """Measurement 2: seconds per policy after the shared checks, in process."""
    from roadworthy import api
    from roadworthy.evaluator.evaluate import evaluate

    logs = log_path(seed, episodes)
    mdir = HERE / ".work" / "gate" / f"model-{logs.name}"
    if not (mdir / "driving").is_dir():
        api.fit(logs, mdir, seed=0, overwrite=True)
    paths = policy_paths()
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    report = evaluate(
        logs, [paths[n] for n in names], model=mdir, on_stage=lambda m: marks.append((m, time.perf_counter()))
    )
    total = time.perf_counter() - t0
    first = next(t for m, t in marks if m.startswith("evaluating "))
    per = (time.perf_counter() - first) / len(names)
    return {
        "log": logs.name,
        "rows": report["rows"],
        "policies": len(names),
        "seconds_total": total,
        "seconds_shared": first - t0,
        "seconds_per_policy": per,
        "driving_model": report["estimator"].get("driving_model"),
        "estimates": {p["name"]: p["value"]["estimate"] for p in report["policies"]},
        "goal_seconds_per_policy": 15,
    }


def d3rlpy_speed(seed: int, episodes: int, names: list[str]) -> dict:
    """Measurement 3, in the peers' environment (a child process)."""
    if not PEER.exists():
        return {"skipped": f"no peer environment at {PEER} (see benchmarks/bench_peers.py)"}
    code = f"""
import json, sys, time
sys.path.insert(0, {str(HERE)!r})
from bench_peers import d3rlpy_fqe
from gate_bench_data import log_path, policy_paths
from roadworthy.data.policy import OnnxPolicy
from roadworthy.evaluator.fqe import FQEConfig
from roadworthy.evaluator.logdata import load_eval_data
data = load_eval_data(log_path({seed}, {episodes}))
cfg = FQEConfig()
steps = (cfg.iterations or data.horizon + 20) * cfg.steps_per_iteration
paths = policy_paths()
out = {{}}
for n in {names!r}:
    t0 = time.perf_counter()
    v = d3rlpy_fqe(data, OnnxPolicy.load(paths[n]), steps, cfg.batch_size, cfg.steps_per_iteration, 0.99, 0)
    out[n] = {{"estimate": v, "seconds": time.perf_counter() - t0}}
print(json.dumps({{"gradient_steps": steps, "policies": out}}))
"""
    env = dict(os.environ, PYTHONPATH="")
    proc = subprocess.run([str(PEER), "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode:
        return {"failed": proc.stderr[-2000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    from roadworthy.data.sim.policies import BENCHMARK

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=202)
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--peer-policies", nargs="*", default=["autopilot-clone", "drift"])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "speed.json")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    names = [p.name for p, s in BENCHMARK if s in ("baseline", "reporting")]
    result = {
        "benchmark": "evaluator and gate speed, with d3rlpy FQE in the same run",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "gate": gate_speed(),
        "evaluate": evaluate_speed(args.seed, args.episodes, names),
        "d3rlpy_fqe": d3rlpy_speed(args.seed, args.episodes, args.peer_policies),
    }
    tv = {p["name"]: sum(p["returns"]) / len(p["returns"]) for p in truth()["policies"]}
    peer = result["d3rlpy_fqe"].get("policies", {})
    if peer:
        d_per = sum(v["seconds"] for v in peer.values()) / len(peer)
        result["ratio_roadworthy_to_d3rlpy_seconds_per_policy"] = result["evaluate"]["seconds_per_policy"] / d_per
        result["side_by_side"] = {
            n: {"truth": tv[n], "d3rlpy": v["estimate"], "roadworthy": result["evaluate"]["estimates"][n]}
            for n, v in peer.items()
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
