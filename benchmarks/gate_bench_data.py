"""Inputs of the gate benchmark: policies, logs and closed-loop ground truth.

Everything lands in ``benchmarks/.work/gate`` and is reused when present:

* ``policies/``: the 20 policies of ``data.sim.policies.BENCHMARK`` as ONNX files;
* ``logs-s{seed}-n{episodes}/``: fleet logs (seed 101: tuning; 201, 202, 203:
  reporting), 100 and 400 episodes each (the 100-episode log is the first 100
  episodes of the 400-episode one: ``collect`` draws episode i of a seed the same way
  whatever the count);
* ``truth.json``: closed-loop rollouts of every policy (seed 1, 300 episodes each,
  other traffic than any log), with per-episode returns and costs so that
  differences between two policies are paired on the same starting traffic.

Usage: ``python benchmarks/gate_bench_data.py [--truth-episodes 300]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "gate"
TUNING_SEEDS = (101,)
REPORTING_SEEDS = (201, 202, 203)
SIZES = (100, 400)
TRUTH_SEED = 1


def policy_paths() -> dict[str, Path]:
    """Every benchmark policy's ONNX file (exported on first use)."""
    from roadworthy.data.sim.policies import export_benchmark

    return export_benchmark(WORK / "policies")


def log_path(seed: int, episodes: int) -> Path:
    """The fleet log of ``seed`` with ``episodes`` episodes (collected on first use)."""
    from roadworthy.data.sim.collect import collect_highway

    path = WORK / f"logs-s{seed}-n{episodes}"
    if not path.exists():
        collect_highway(path, episodes=episodes, seed=seed)
    return path


def truth(episodes: int = 300) -> dict:
    """Closed-loop truth of every benchmark policy (computed on first use)."""
    from roadworthy.data.sim.rollout import rollout_highway

    path = WORK / f"truth-{episodes}.json"
    if path.exists():
        return json.loads(path.read_text())
    paths = policy_paths()
    t0 = time.perf_counter()
    rep = rollout_highway(list(paths.values()), episodes=episodes, seed=TRUTH_SEED)
    rep["seconds"] = time.perf_counter() - t0
    path.write_text(json.dumps(rep))
    return rep


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--truth-episodes", type=int, default=300)
    ap.add_argument("--skip-truth", action="store_true")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    policy_paths()
    for seed in (*TUNING_SEEDS, *REPORTING_SEEDS):
        for n in SIZES:
            print("log", log_path(seed, n), file=sys.stderr, flush=True)
    if not args.skip_truth:
        rep = truth(args.truth_episodes)
        for p in rep["policies"]:
            print(p["name"], round(p["value"]["estimate"], 2), round(p["value"]["stderr"], 2), flush=True)


if __name__ == "__main__":
    main()
