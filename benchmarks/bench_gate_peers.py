"""Peer on the gate benchmark: d3rlpy's FQE, same log and policies as ``bench_gate.py``.

Runs in the peers' own environment (see ``bench_peers.py`` for how to make it)::

    PYTHONPATH=. benchmarks/.peer-venv/bin/python benchmarks/bench_gate_peers.py --seed 201 --episodes 400

d3rlpy FQE is set up exactly as in ``bench_peers.py`` (observations plus steps to go,
standardized; terminals and timeouts told apart; the mean action of each policy), with
roadworthy's FQE's number of gradient steps, batch size and target-update interval.
Its estimates are scored with the same metrics as roadworthy's in
``benchmarks/results/gate-reporting.json`` (same log, same truth), and both are written
side by side to ``benchmarks/results/gate-peers.json``; wall time per policy is measured
in the same run for d3rlpy and read from the reporting run for roadworthy (which also
fits every cost channel, ten heads and the importance-sampling cross-checks).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

from bench_peers import d3rlpy_fqe  # noqa: E402
from gate_bench_data import log_path, policy_paths, truth  # noqa: E402

BASELINE = "autopilot-clone"


def scores(est: dict[str, float], tv: dict[str, float]) -> dict:
    names = sorted(est)
    e = np.array([est[n] for n in names])
    t = np.array([tv[n] for n in names])
    ok = bool(np.isfinite(e).all())
    return {
        "spearman": float(spearmanr(e, t).statistic) if ok else None,
        "normalized_mae": float(np.mean(np.abs(e - t)) / (t.max() - t.min())) if ok else None,
    }


def main() -> None:
    import d3rlpy

    from roadworthy.data.policy import OnnxPolicy
    from roadworthy.evaluator.fqe import FQEConfig
    from roadworthy.evaluator.logdata import load_eval_data

    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=201)
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--ours", type=Path, default=HERE / "results" / "gate-reporting.json")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "gate-peers.json")
    ap.add_argument("--policies", nargs="*", default=None, help="a subset (d3rlpy takes about 4 min per policy)")
    args = ap.parse_args()
    ours = json.loads(args.ours.read_text())
    run = next(r for r in ours["runs"] if r["seed"] == args.seed and r["episodes"] == args.episodes)
    names = [n for n in ours["policies"] if not args.policies or n in args.policies]
    tv = {p["name"]: float(np.mean(p["returns"])) for p in truth()["policies"] if p["name"] in names}
    data = load_eval_data(log_path(args.seed, args.episodes))
    fcfg = FQEConfig()
    steps = (fcfg.iterations or data.horizon + 20) * fcfg.steps_per_iteration
    paths = policy_paths()
    est, secs = {}, {}
    for n in names:
        t0 = time.perf_counter()
        est[n] = d3rlpy_fqe(data, OnnxPolicy.load(paths[n]), steps, fcfg.batch_size, fcfg.steps_per_iteration, 0.99, 0)
        secs[n] = time.perf_counter() - t0
        print(json.dumps({"policy": n, "d3rlpy": est[n], "truth": tv[n], "seconds": secs[n]}), flush=True)
    mine = {n: run["report"][n]["value"]["estimate"] for n in names}
    result = {
        "benchmark": "d3rlpy FQE beside roadworthy on the gate benchmark's reporting policies",
        "log": run["log"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"d3rlpy": d3rlpy.__version__},
        "date": time.strftime("%Y-%m-%d"),
        "gradient_steps": steps,
        "truth": tv,
        "d3rlpy_fqe": {"estimates": est, "seconds_per_policy": float(np.mean(list(secs.values())))} | scores(est, tv),
        "roadworthy": {
            "estimates": mine,
            "seconds_per_policy": run["seconds"]["evaluate"] / len(ours["policies"]),
            "estimator": run["estimator"]["chosen"],
        }
        | scores(mine, tv),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("truth",)}, indent=1))


if __name__ == "__main__":
    main()
