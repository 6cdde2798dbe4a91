"""Benchmarks of the behaviour density models.

``quality``: on embedded-simulator logs (300 episodes) and on the two real CARLA
recordings (imported, then cut into 50-step pseudo-episodes so episodes can be held
out), with 60 % / 20 % / 20 % of episodes for training, calibration and test:

* false-alarm rate of the flags on the held-out test episodes against alpha, with
  an episode-clustered standard error;
* AUROC of the nonconformity (-log p) between clean test rows and planted
  out-of-support actions (data.planted), and the share of planted rows flagged.

``speed``: fit time of the default model on 1M rows x 30 features; scoring speed of
``roadworthy score`` end to end (validation, both models, calibration, Parquet
output); peak RSS scoring a 10M-row dataset in a fresh process.

Usage::

    python benchmarks/bench_density.py quality --out benchmarks/results/density_quality.json
    python benchmarks/bench_density.py speed --out benchmarks/results/density_speed.json
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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from common import peak_rss_mib

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
SHARED = HERE.parent.parent / "shared" / "data" / "carla"
MODELS = ("mdn", "gmm", "knn", "iforest")


def _folds(table: pa.Table, out: Path, seed: int, k: int) -> list[tuple[Path, Path]]:
    """Write ``k`` (train + calibration, test) dataset pairs, each test fold a fifth of
    the episodes; ``k=1`` is a single 80/20 split."""
    from roadworthy.data.writer import write_log

    eps = sorted(set(table.column("episode_id").to_pylist()))
    order = np.random.default_rng(seed).permutation(len(eps))
    folds = np.array_split(order, 5)[:k]
    pairs = []
    for i, fold in enumerate(folds):
        test = sorted(eps[j] for j in fold)
        is_test = pc.is_in(table.column("episode_id"), pa.array(test))
        paths = []
        for name, mask in (("trainval", pc.invert(is_test)), ("test", is_test)):
            folder = out / f"fold{i}" / name
            shutil.rmtree(folder, ignore_errors=True)
            write_log(table.filter(mask), folder / "part-0.parquet", schema=table.schema)
            paths.append(folder)
        pairs.append((paths[0], paths[1]))
    return pairs


def highway_data() -> list[tuple[Path, Path]]:
    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.sim.collect import collect_highway

    logs = WORK / "density-highway" / "logs"
    if not logs.exists():
        collect_highway(logs, episodes=300, seed=11)
    return _folds(scan_logs(logs).read(), WORK / "density-highway", seed=1, k=1)


def carla_data(block: int = 50) -> list[tuple[Path, Path]]:
    from roadworthy.data.carla.importer import import_recording
    from roadworthy.data.dataset import scan_logs

    tables = []
    for rec in sorted((SHARED / "recordings").glob("*.log")):
        out = WORK / "density-carla" / rec.stem
        if not out.exists():
            import_recording(rec, map_path=SHARED / "maps" / "Town01.xodr", out=out)
        tables.append(scan_logs(out).read())
    t = pa.concat_tables(tables)
    ep = np.array(t.column("episode_id").to_pylist(), dtype=object)
    step = t.column("step").to_numpy()
    blk = step // block
    new_ep = np.array([f"{e}#{b:03d}" for e, b in zip(ep, blk, strict=True)], dtype=object)
    new_step = (step - blk * block).astype(np.int32)
    tt = t.column("t").to_numpy()
    first_t = {}
    for e, v in zip(new_ep, tt, strict=True):
        first_t.setdefault(e, v)
    new_t = tt - np.array([first_t[e] for e in new_ep])
    done = np.r_[new_ep[1:] != new_ep[:-1], True]
    t = t.set_column(t.schema.get_field_index("episode_id"), "episode_id", pa.array(new_ep.tolist(), pa.string()))
    t = t.set_column(t.schema.get_field_index("step"), "step", pa.array(new_step))
    t = t.set_column(t.schema.get_field_index("t"), "t", pa.array(new_t))
    t = t.set_column(t.schema.get_field_index("done"), "done", pa.array(done))
    t = t.set_column(t.schema.get_field_index("terminal"), "terminal", pa.array(np.zeros(len(done), bool)))
    # Few rows: five folds, so that every pseudo-episode is tested once.
    return _folds(t, WORK / "density-carla", seed=1, k=5)


def evaluate(pairs: list[tuple[Path, Path]], model: str, alpha: float, seed: int) -> dict:
    from sklearn.metrics import roc_auc_score

    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.planted import KINDS, plant
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel

    fit_s, flags, eps, clean_nc, planted_nc, planted_flags, kinds = 0.0, [], [], [], [], [], []
    for fold, (trainval, test) in enumerate(pairs):
        t0 = time.perf_counter()
        bm = BehaviorModel.fit(trainval, BehaviorConfig(model=model, alpha=alpha, calibration_fraction=0.25, seed=seed))
        fit_s += time.perf_counter() - t0
        tab = scan_logs(test).read()
        d, a = len(bm.obs_names), len(bm.action_names)
        obs = tab.column("obs").combine_chunks().flatten().to_numpy().reshape(-1, d).astype(np.float64)
        act = tab.column("action").combine_chunks().flatten().to_numpy().reshape(-1, a).astype(np.float64)
        src = np.array(tab.column("source").to_pylist(), dtype=object)
        clean = bm.score_arrays(obs, act, source=src)
        flags.append(clean["is_ood"])
        eps.append(np.array([f"{fold}:{e}" for e in tab.column("episode_id").to_pylist()], dtype=object))
        clean_nc.append(-clean["logp"])
        po, pa_, kind = plant(obs, act, bm.obs_names, seed=seed)
        planted = bm.score_arrays(po, pa_)  # a policy's actions: no source
        planted_nc.append(-planted["logp"])
        planted_flags.append(planted["is_ood"])
        kinds.append(kind)
    flags, eps = np.concatenate(flags), np.concatenate(eps)
    clean_nc, planted_nc = np.concatenate(clean_nc), np.concatenate(planted_nc)
    planted_flags, kinds = np.concatenate(planted_flags), np.concatenate(kinds)
    _, codes = np.unique(eps, return_inverse=True)
    per_ep = np.bincount(codes, weights=flags) / np.bincount(codes)
    # AUROC pools the folds' scores (each fold scored by its own model).
    y = np.r_[np.zeros(len(clean_nc)), np.ones(len(planted_nc))]
    out = {
        "model": model,
        "folds": len(pairs),
        "fit_seconds": fit_s,
        "test_rows": len(flags),
        "test_episodes": int(codes.max() + 1),
        "false_alarm_rate": float(flags.mean()),
        "false_alarm_se": float(per_ep.std(ddof=1) / np.sqrt(len(per_ep))),
        "auroc": float(roc_auc_score(y, np.r_[clean_nc, planted_nc])),
        "planted_rows": len(planted_nc),
        "planted_flagged": float(planted_flags.mean()),
        "by_kind": {},
    }
    for k in KINDS:
        sel = kinds == k
        if sel.any():
            yk = np.r_[np.zeros(len(clean_nc)), np.ones(sel.sum())]
            out["by_kind"][k] = {
                "rows": int(sel.sum()),
                "auroc": float(roc_auc_score(yk, np.r_[clean_nc, planted_nc[sel]])),
                "flagged": float(planted_flags[sel].mean()),
            }
    return out


def quality(args) -> dict:
    report = {"alpha": args.alpha, "datasets": {}}
    sets = {"highway": highway_data}
    if (SHARED / "recordings").is_dir():
        sets["carla"] = carla_data
    for name, make in sets.items():
        pairs = make()
        rows = []
        for model in MODELS:
            r = evaluate(pairs, model, args.alpha, args.seed)
            rows.append(r)
            print(name, json.dumps({k: v for k, v in r.items() if k != "by_kind"}), flush=True)
        report["datasets"][name] = rows
    return report


# -- speed --------------------------------------------------------------------------------------


def synthetic_log(path: Path, rows: int, d: int = 30, seed: int = 0) -> Path:
    """Episodes of 200 steps, states from a smooth random walk, actions a noisy function of them."""
    from roadworthy.data.schema import LogMetadata, arrow_schema
    from roadworthy.data.writer import LogWriter

    if path.exists():
        return path
    meta = LogMetadata(tuple(f"f{i}" for i in range(d)), ("u0", "u1"), (-5.0, -1.0), (5.0, 1.0), 0.1)
    schema = arrow_schema(meta)
    rng = np.random.default_rng(seed)
    steps, chunk = 200, 2500
    with LogWriter(path, schema) as w:
        for start in range(0, rows // steps, chunk):
            k = min(chunk, rows // steps - start)
            n = k * steps
            s = np.cumsum(rng.normal(0, 0.1, (k, steps, d)), axis=1).reshape(n, d) + rng.normal(0, 1, (n, d))
            u = np.stack(
                [
                    np.tanh(s[:, 0] + s[:, 1]) + 0.1 * rng.normal(size=n),
                    0.5 * np.sin(s[:, 2]) + 0.05 * rng.normal(size=n),
                ],
                1,
            )
            step = np.tile(np.arange(steps, dtype=np.int32), k)
            w.write(
                pa.table(
                    {
                        "episode_id": np.repeat(np.array([f"e{start + i:07d}" for i in range(k)]), steps),
                        "step": step,
                        "t": step * 0.1,
                        "source": np.where(step % 2 == 0, "human", "autopilot"),
                        "obs": pa.FixedSizeListArray.from_arrays(pa.array(s.astype(np.float32).reshape(-1)), d),
                        "action": pa.FixedSizeListArray.from_arrays(pa.array(u.astype(np.float32).reshape(-1)), 2),
                        "reward": np.zeros(n, np.float32),
                        "done": step == steps - 1,
                        "terminal": np.zeros(n, bool),
                    }
                )
            )
    return path


def _score_child(model: str, logs: str) -> None:
    from roadworthy.density.behavior import BehaviorModel

    bm = BehaviorModel.load(model)
    t0 = time.perf_counter()
    rows = sum(t.num_rows for t in bm.iter_scores(logs))
    elapsed = time.perf_counter() - t0
    rss = peak_rss_mib()
    print(json.dumps({"rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed, "peak_rss_mib": rss}))


def speed(args) -> dict:
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel

    WORK.mkdir(parents=True, exist_ok=True)
    fit_log = synthetic_log(WORK / f"density-fit-{args.rows}.parquet", args.rows)
    t0 = time.perf_counter()
    bm = BehaviorModel.fit(fit_log, BehaviorConfig(max_train_rows=args.rows))
    fit_s = time.perf_counter() - t0
    model_dir = WORK / "density-speed-model"
    bm.save(model_dir)
    out = {
        "fit": {
            "rows": bm.summary_["rows"]["train"],
            "features": 30,
            "seconds": fit_s,
            "mdn_epochs": bm.model_.history_.epochs,
        }
    }
    print(json.dumps(out["fit"]), flush=True)
    results = []
    for rows in args.score_rows:
        log = synthetic_log(WORK / f"density-score-{rows}.parquet", rows, seed=1)
        res = subprocess.run(
            [sys.executable, __file__, "child", str(model_dir), str(log)], capture_output=True, text=True, check=True
        )
        r = json.loads(res.stdout.strip().splitlines()[-1])
        results.append(r)
        print(json.dumps(r), flush=True)
    out["score"] = results
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["quality", "speed", "child"])
    ap.add_argument("args", nargs="*")
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--score-rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.mode == "child":
        _score_child(*args.args)
        return
    report = quality(args) if args.mode == "quality" else speed(args)
    report = {
        "benchmark": f"density {args.mode}",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        **report,
    }
    out = args.out or HERE / "results" / f"density_{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results in {out}")


if __name__ == "__main__":
    main()
