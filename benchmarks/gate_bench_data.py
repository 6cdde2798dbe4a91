"""Inputs of the gate benchmark: policies, logs and closed-loop ground truth.

Everything lands in ``benchmarks/.work/gate`` and is reused when present:

* ``policies/``: the 26 policies of ``data.sim.policies.BENCHMARK`` as ONNX files;
* ``logs-s{seed}-n{episodes}/``: fleet logs (seed 101: tuning; 202, 203, 204:
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
REPORTING_SEEDS = (202, 203, 204)
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


def _add_lane_departures(rep: dict, logs: Path, gamma: float = 0.99) -> None:
    """Per-episode discounted lane departures, from the kept rollouts (truth files made before
    the channel existed)."""
    import numpy as np
    import pyarrow.parquet as pq

    from roadworthy.data.sim.highway import HighwayConfig
    from roadworthy.data.sim.rollout import lane_departures, road_geometry

    geo = road_geometry(HighwayConfig())
    t = pq.read_table(sorted(logs.glob("*.parquet")), columns=["episode_id", "step", "x", "y", "yaw", "speed"])
    ep = t["episode_id"].to_numpy(zero_copy_only=False)
    pose = np.column_stack([t[c].to_numpy() for c in ("x", "y", "yaw", "speed")]).astype(np.float64)
    step = t["step"].to_numpy()
    hit = lane_departures(geo, pose) * gamma**step
    ids, inv = np.unique(ep, return_inverse=True)
    per = dict(zip(ids, np.bincount(inv, weights=hit), strict=True))
    for p in rep["policies"]:
        n = len(p["returns"])
        vals = [float(per[f"ro-{p['name']}-s{rep['seed']}-e{i:06d}"]) for i in range(n)]
        p["episode_costs"]["lane_departure"] = vals
        p.setdefault("surrogates", {})["lane_departure"] = {"estimate": float(np.mean(vals))}


def truth(episodes: int = 300) -> dict:
    """Closed-loop truth of every benchmark policy (computed on first use)."""
    from roadworthy.data.sim.rollout import rollout_highway

    path = WORK / f"truth-{episodes}.json"
    if path.exists():
        rep = json.loads(path.read_text())
        logs = WORK / f"truth-logs-{episodes}"
        if "lane_departure" not in rep["policies"][0]["episode_costs"] and logs.is_dir():
            _add_lane_departures(rep, logs, rep["gamma"])
            path.write_text(json.dumps(rep))
        return rep
    paths = policy_paths()
    t0 = time.perf_counter()
    # The rollouts are kept as a log, so channels defined later can be recomputed from them.
    rep = rollout_highway(
        list(paths.values()), episodes=episodes, seed=TRUTH_SEED, out=WORK / f"truth-logs-{episodes}", overwrite=True
    )
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
