"""Benchmark: off-policy estimates against closed-loop ground truth.

1. Collect fleet logs from the embedded simulator (default 400 episodes, seed 5).
2. Fit the behaviour density model on them.
3. Ground truth: closed-loop rollouts of the six example policies (default 150
   episodes each, seed 1, a different draw of starts than the logs).
4. ``roadworthy evaluate`` on the logs; per estimator: Spearman rank correlation,
   regret@1, normalized absolute error, how many 95 % intervals contain the truth,
   and whether every unsafe policy's lower bound lies below every safe policy's.

``--timing-rows 1000000`` also times evaluating five policies on a log of that many
rows (the fleet logs replicated under new episode ids).

Usage: ``python benchmarks/bench_ope.py --out benchmarks/results/ope.json``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "ope"
NAMES = ("autopilot-clone", "cautious", "fast", "tailgater", "swerve", "stochastic")


def setup(args) -> tuple[Path, Path, dict]:
    from roadworthy.data.sim.collect import collect_highway
    from roadworthy.data.sim.policies import example_policy_path
    from roadworthy.data.sim.rollout import rollout_highway
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel

    logs, model, truth_file = WORK / f"logs-{args.episodes}", WORK / f"model-{args.episodes}", WORK / "truth.json"
    if not logs.exists():
        collect_highway(logs, episodes=args.episodes, seed=5)
    if not model.exists():
        BehaviorModel.fit(logs, BehaviorConfig()).save(model)
    if truth_file.exists():
        truth = json.loads(truth_file.read_text())
    else:
        truth = rollout_highway([example_policy_path(n) for n in NAMES], episodes=args.truth_episodes, seed=1)
        truth_file.write_text(json.dumps(truth))
    return logs, model, truth


def metrics(est: dict[str, float], truth: dict[str, float], lower=None, upper=None, unsafe=()) -> dict:
    names = list(truth)
    t = np.array([truth[n] for n in names])
    e = np.array([est[n] for n in names])
    out = {
        "spearman": float(spearmanr(e, t).statistic),
        "regret_at_1": float(t.max() - t[int(np.argmax(e))]),
        "normalized_abs_error": float(np.mean(np.abs(e - t)) / (t.max() - t.min())),
    }
    if lower is not None:
        lo = np.array([lower[n] for n in names])
        hi = np.array([upper[n] for n in names])
        out["intervals_covering_truth"] = float(np.mean((lo <= t) & (t <= hi)))
        safe = [n for n in names if n not in unsafe]
        out["unsafe_below_safe"] = bool(max(lower[n] for n in unsafe) < min(lower[n] for n in safe))
    return out


def replicate(logs: Path, rows: int, out: Path) -> Path:
    """A log of about ``rows`` rows: copies of ``logs`` under new episode ids."""
    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.writer import LogWriter

    if out.exists():
        return out
    table = scan_logs(logs).read()
    copies = int(np.ceil(rows / table.num_rows))
    ids = table.column("episode_id").to_pylist()
    with LogWriter(out, table.schema) as w:
        for c in range(copies):
            w.write(table.set_column(0, "episode_id", pa.array([f"{i}-copy{c}" for i in ids])))
    return out


def timing(logs: Path, model: Path, rows: int) -> dict:
    """Wall time of evaluating five policies on a log of about ``rows`` rows."""
    from roadworthy.data.sim.policies import example_policy_path
    from roadworthy.evaluator.evaluate import EvaluateConfig, evaluate

    big = replicate(logs, rows, WORK / f"big-{rows}.parquet")
    t0 = time.perf_counter()
    rep = evaluate(big, [example_policy_path(n) for n in NAMES[:5]], model=model, config=EvaluateConfig())
    out = {
        "rows": rows,
        "policies": 5,
        "seconds": time.perf_counter() - t0,
        "estimates": {p["name"]: p["value"]["estimate"] for p in rep["policies"]},
    }
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    from roadworthy.evaluator.evaluate import EvaluateConfig, evaluate

    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=400)
    ap.add_argument("--truth-episodes", type=int, default=150)
    ap.add_argument("--timing-rows", type=int, default=0)
    ap.add_argument(
        "--timing-only", action="store_true", help="only the timing run, merged into an existing --out file"
    )
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ope.json")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    logs, model, truth_report = setup(args)
    from roadworthy.data.sim.policies import EXAMPLES_BY_NAME, example_policy_path

    if args.timing_only:
        report = json.loads(args.out.read_text())
        report["timing"] = timing(logs, model, args.timing_rows)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        return
    truth = {p["name"]: p["value"]["estimate"] for p in truth_report["policies"]}
    unsafe = [n for n in NAMES if EXAMPLES_BY_NAME[n].unsafe]
    t0 = time.perf_counter()
    rep = evaluate(logs, [example_policy_path(n) for n in NAMES], model=model, config=EvaluateConfig())
    wall = time.perf_counter() - t0
    by = {p["name"]: p for p in rep["policies"]}
    results = {
        "roadworthy (estimate, conservative bounds)": metrics(
            {n: by[n]["value"]["estimate"] for n in NAMES},
            truth,
            {n: by[n]["value"]["lower"] for n in NAMES},
            {n: by[n]["value"]["upper"] for n in NAMES},
            unsafe,
        ),
        "roadworthy lower bound as the ranking": metrics({n: by[n]["value"]["lower"] for n in NAMES}, truth),
    }
    for key, label in (("pdis", "per-decision IS"), ("wis", "weighted IS"), ("dr", "doubly robust")):
        results[label] = metrics(
            {n: by[n]["estimators"][key]["estimate"] for n in NAMES},
            truth,
            {n: by[n]["estimators"][key]["lower"] for n in NAMES},
            {n: by[n]["estimators"][key]["upper"] for n in NAMES},
            unsafe,
        )
    per_policy = {
        n: {
            "truth": truth[n],
            "truth_stderr": next(p["value"]["stderr"] for p in truth_report["policies"] if p["name"] == n),
            "estimate": by[n]["value"]["estimate"],
            "lower": by[n]["value"]["lower"],
            "upper": by[n]["value"]["upper"],
            "coverage": by[n]["coverage"],
            "collision_truth": next(
                p["costs"]["collision"]["estimate"] for p in truth_report["policies"] if p["name"] == n
            ),
            "collision_estimate": by[n]["costs"]["collision"]["estimate"],
            "collision_upper": by[n]["costs"]["collision"]["upper"],
            **{k: by[n]["estimators"][k]["estimate"] for k in ("pdis", "wis", "dr")},
        }
        for n in NAMES
    }
    for n, r in per_policy.items():
        print(
            json.dumps({"policy": n, **{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}}),
            flush=True,
        )
    for k, v in results.items():
        print(k, json.dumps(v), flush=True)
    report = {
        "benchmark": "off-policy evaluation against closed-loop ground truth",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "logged_episodes": args.episodes,
        "truth_episodes": args.truth_episodes,
        "gamma": rep["gamma"],
        "evaluate_seconds": wall,
        "seconds_per_policy": wall / len(NAMES),
        "per_policy": per_policy,
        "metrics": results,
    }
    if args.timing_rows:
        report["timing"] = timing(logs, model, args.timing_rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
