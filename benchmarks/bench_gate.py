"""Benchmark: the gate's verdicts and the evaluator's accuracy against closed-loop truth.

Inputs from ``gate_bench_data.py`` (20 policies, fleet logs of 100 and 400 episodes
per log seed, closed-loop truth of 300 episodes per policy). For every log:

1. ``roadworthy evaluate`` of the baseline (``autopilot-clone``) and the split's
   candidates, from the logs alone (behaviour model fitted on the log);
2. the gate of every candidate against the baseline, of the baseline against itself
   (A/A) and of the baseline against the logged behaviour, with the default
   ``gate.toml`` settings;
3. the truth of the same checks from the closed-loop rollouts: the true value
   difference within the value margin, every gated cost channel's true difference
   within its margin (differences are paired: rollouts with one seed start from the
   same traffic); a candidate is *acceptable* when every check holds in truth;
4. accuracy: value Spearman and normalized mean absolute error, how many 95 %
   intervals contain the truth, whether cost upper bounds hold and rank every unsafe
   policy above every safe one, and interval widths of fully covered policies.

``--split tuning`` (log seed 101, the tuning policies) is what settings were chosen
on; ``--split reporting`` (log seeds 202-204, the reporting policies) gives the
reported figures. Results: ``benchmarks/results/gate-<split>.json``.

Usage: ``python benchmarks/bench_gate.py --split reporting``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gate_bench_data import REPORTING_SEEDS, SIZES, TUNING_SEEDS, WORK, log_path, policy_paths, truth  # noqa: E402

BASELINE = "autopilot-clone"
CRASH = ("collision", "off_road")
#: Channels on which unsafe policies must be estimated above every safe one.
CHANNELS_RANKED = ("collision", "off_road", "ttc", "headway", "lane_departure")


def behaviour_truth() -> dict:
    """The logged fleet's own value and costs, Monte Carlo over every collected 400-episode log."""
    from roadworthy.evaluator.logdata import load_eval_data
    from roadworthy.evaluator.model_eval import episode_returns

    rets = []
    for seed in (*TUNING_SEEDS, *REPORTING_SEEDS):
        data = load_eval_data(log_path(seed, 400))
        rets.append(episode_returns(data, 0.99))
        names = data.cost_names
    r = np.concatenate(rets)
    se = r.std(axis=0, ddof=1) / np.sqrt(len(r))
    return {"value": (float(r[:, 0].mean()), float(se[0]))} | {
        c: (float(r[:, j].mean()), float(se[j])) for j, c in enumerate(names, start=1)
    }


def truth_table(rep: dict) -> dict:
    """name -> per-episode arrays of value and every cost/surrogate channel."""
    out = {}
    for p in rep["policies"]:
        arr = {"value": np.asarray(p["returns"])}
        arr.update({c: np.asarray(v) for c, v in p["episode_costs"].items()})
        out[p["name"]] = arr
    return out


def acceptable(tt: dict, cand: str, base: str, cfg, channels: list[str]) -> dict:
    """The truth of the gate's checks for one candidate: paired true differences against the margins."""
    d_val = tt[cand]["value"] - tt[base]["value"]
    base_val = float(tt[base]["value"].mean())
    thr_v = -(cfg.value.margin + cfg.value.relative_margin * abs(base_val))
    checks = {"value": bool(d_val.mean() >= thr_v)}
    for ch in channels:
        if ch not in tt[cand]:
            continue
        d = tt[cand][ch] - tt[base][ch]
        thr = cfg.costs.margin_for(ch) + cfg.costs.relative_margin * abs(float(tt[base][ch].mean()))
        checks[ch] = bool(d.mean() <= thr)
    return {
        "acceptable": all(checks.values()),
        "crash_acceptable": all(checks.get(c, True) for c in CRASH),
        "checks": checks,
        "value_difference": float(d_val.mean()),
        "value_difference_se": float(d_val.std(ddof=1) / np.sqrt(len(d_val))),
    }


def danger_seen(cand: dict, truth_c: dict) -> dict:
    """For a candidate unacceptable in truth: does the gate fail it on a channel where it is
    unacceptable, with the mean difference itself beyond the margin (not only through the
    heads' spread)?"""
    bad = [c for c, ok in truth_c["checks"].items() if not ok and c != "value"]
    seen = [c for c in bad if c in cand["checks"] and cand["checks"][c]["failed"] and cand["checks"][c]["mean_beyond"]]
    return {"unsafe_channels": bad, "failed_on": seen, "seen": bool(seen) if bad else None}


def accuracy(report: dict, tt: dict, names: list[str], unsafe: set[str]) -> dict:
    """Accuracy of the report's estimates against the truth, over ``names``."""
    by = {p["name"]: p for p in report["policies"]}
    t = np.array([tt[n]["value"].mean() for n in names])
    e = np.array([by[n]["value"]["estimate"] for n in names])
    lo = np.array([by[n]["value"]["lower"] for n in names])
    hi = np.array([by[n]["value"]["upper"] for n in names])
    spread = float(t.max() - t.min())
    cov = {n: by[n]["coverage"] for n in names}
    full = [i for i, n in enumerate(names) if cov[n] >= 0.999]
    crash_up = {n: sum(by[n]["costs"][c]["upper"] for c in CRASH if c in by[n]["costs"]) for n in names}
    holds = {}
    for n in names:
        for c, v in by[n]["costs"].items():
            if c in tt[n]:
                holds[f"{n}:{c}"] = bool(
                    v["upper"] >= tt[n][c].mean() - 2 * tt[n][c].std(ddof=1) / np.sqrt(len(tt[n][c]))
                )
    safe = [n for n in names if n not in unsafe]
    bad = [n for n in names if n in unsafe]
    off_ratio = {
        n: by[n]["costs"]["off_road"]["estimate"] / float(tt[n]["off_road"].mean())
        for n in names
        if "off_road" in by[n]["costs"] and "off_road" in tt[n] and float(tt[n]["off_road"].mean()) > 0.02
    }
    safe_rel = {
        n: (by[n]["value"]["estimate"] - float(tt[n]["value"].mean())) / abs(float(tt[n]["value"].mean())) for n in safe
    }
    return {
        "spearman": float(spearmanr(e, t).statistic),
        "normalized_mae": float(np.mean(np.abs(e - t)) / spread),
        "intervals_containing_truth": float(np.mean((lo <= t) & (t <= hi))),
        "cost_upper_bounds_hold": float(np.mean(list(holds.values()))),
        "cost_upper_bounds_failing": [k for k, v in holds.items() if not v],
        "unsafe_crash_upper_above_every_safe": bool(min(crash_up[n] for n in bad) > max(crash_up[n] for n in safe))
        if bad and safe
        else None,
        "max_interval_width_share_fully_covered": float(max((hi - lo)[full]) / spread) if full else None,
        "off_road_estimate_over_truth": off_ratio,
        "off_road_within_factor_2": bool(all(0.5 <= r <= 2.0 for r in off_ratio.values())) if off_ratio else None,
        "safe_value_relative_error": safe_rel,
        "safe_within_3_percent": bool(all(abs(r) <= 0.03 for r in safe_rel.values())) if safe_rel else None,
        "fully_covered": [names[i] for i in full],
        "true_value_spread": spread,
    }


def ranks_by_channel(run: dict) -> dict:
    """Per cost channel: is every candidate unsafe *on that channel* (its true difference from the
    baseline beyond the gate's margin) estimated above every acceptable candidate?"""
    cands = run["candidates"]
    safe = [c for c, x in cands.items() if x["truth"]["acceptable"]]
    out = {}
    for ch in CHANNELS_RANKED:
        bad = [c for c, x in cands.items() if x["truth"]["checks"].get(ch) is False]
        if not bad or not safe or not all(ch in x["costs"] for x in cands.values()):
            continue
        est = {c: x["costs"][ch]["estimate"] for c, x in cands.items()}
        out[ch] = {
            "unsafe": bad,
            "above_every_safe": bool(min(est[c] for c in bad) > max(est[c] for c in safe)),
            "lowest_unsafe": min(est[c] for c in bad),
            "highest_safe": max(est[c] for c in safe),
        }
    return out


def run_log(seed: int, n: int, names: list[str], paths: dict, config, gate_cfg, tt: dict, unsafe: set[str]) -> dict:
    from roadworthy import api
    from roadworthy.evaluator.evaluate import evaluate
    from roadworthy.evaluator.gate import verdict

    logs = log_path(seed, n)
    mdir = WORK / f"model-{logs.name}"
    t0 = time.perf_counter()
    # The behaviour model and the driving model, as `roadworthy fit` saves them (reused when the
    # evaluation's settings match; evaluate refits and says so otherwise).
    if not (mdir / "driving").is_dir():
        api.fit(logs, mdir, seed=config.seed, overwrite=True)
    t_fit = time.perf_counter() - t0
    marks: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    report = evaluate(
        logs,
        [paths[x] for x in [BASELINE, *names]],
        model=mdir,
        config=config,
        on_stage=lambda msg: marks.append((msg, time.perf_counter())),
    )
    t_eval = time.perf_counter() - t0
    first = next((t for m, t in marks if m.startswith("evaluating ")), t0)
    t_policies = time.perf_counter() - first
    channels = gate_cfg.costs.gated(sorted(report["policies"][0]["costs"]))
    out = {
        "log": logs.name,
        "seed": seed,
        "episodes": n,
        "rows": report["rows"],
        "seconds": {"fit": t_fit, "evaluate": t_eval, "policies": t_policies},
    }
    out["estimator"] = report["estimator"]
    out["channels"] = report.get("channels", {})
    out["seconds"]["evaluate_per_policy"] = t_policies / len(report["policies"])
    out["candidates"] = {}
    for cand in names:
        v = verdict(report, cand, BASELINE, gate_cfg)
        truth_c = acceptable(tt, cand, BASELINE, gate_cfg, channels)
        p = next(q for q in report["policies"] if q["name"] == cand)
        out["candidates"][cand] = {
            "passed": v["passed"],
            "failed_checks": v["failed_checks"],
            "truth": truth_c,
            "unsafe": cand in unsafe,
            "estimate": p["value"],
            "truth_value": float(tt[cand]["value"].mean()),
            "coverage": p["coverage"],
            "costs": {
                c: {
                    "estimate": x["estimate"],
                    "upper": x["upper"],
                    "truth": float(tt[cand][c].mean()) if c in tt[cand] else None,
                }
                for c, x in p["costs"].items()
            },
            "checks": {
                c["id"]: {"observed": c["observed"], "threshold": c["threshold"], "mean": c.get("mean_difference")}
                for c in v["checks"]
            },
        }
        by_channel = {
            c["id"].split(".", 1)[1]: {"failed": not c["passed"], "mean_beyond": bool(c.get("mean_beyond_margin"))}
            for c in v["checks"]
            if c["id"].startswith("cost_non_inferiority.")
        }
        out["candidates"][cand]["danger"] = danger_seen({"checks": by_channel}, truth_c)
    aa = verdict(report, BASELINE, BASELINE, gate_cfg)
    vb = verdict(report, BASELINE, "behavior", gate_cfg)
    out["aa_passed"] = aa["passed"]
    out["clone_vs_behavior"] = {
        "passed": vb["passed"],
        "failed_checks": vb["failed_checks"],
        "checks": {c["id"]: {"observed": c["observed"], "threshold": c["threshold"]} for c in vb["checks"]},
    }
    out["accuracy"] = accuracy(report, tt, [BASELINE, *names], unsafe)
    out["accuracy"]["unsafe_above_safe_per_channel"] = ranks_by_channel(out)
    out["report"] = {
        p["name"]: {
            "value": p["value"],
            "costs": p["costs"],
            "coverage": p["coverage"],
            "diagnostics": p["diagnostics"],
            # Per-head figures: verdicts are a pure function of them, so other gate settings
            # can be replayed on this run without evaluating again.
            "heads": p["heads"],
        }
        for p in report["policies"]
    }
    out["behavior_heads"] = report["behavior"]["heads"]
    out["behavior"] = report["behavior"]["value"]
    return out


def summarize(runs: list[dict], bt: dict) -> dict:
    out = {}
    for n in sorted({r["episodes"] for r in runs}):
        rs = [r for r in runs if r["episodes"] == n]
        acc = [(c, r["seed"]) for r in rs for c, x in r["candidates"].items() if x["truth"]["acceptable"]]
        unacc = [(c, r["seed"]) for r in rs for c, x in r["candidates"].items() if not x["truth"]["acceptable"]]
        crash_bad = [
            (c, r["seed"]) for r in rs for c, x in r["candidates"].items() if not x["truth"]["crash_acceptable"]
        ]
        fr = [(c, s) for c, s in acc if not next(r for r in rs if r["seed"] == s)["candidates"][c]["passed"]]
        fa = [(c, s) for c, s in unacc if next(r for r in rs if r["seed"] == s)["candidates"][c]["passed"]]
        fa_crash = [(c, s) for c, s in crash_bad if next(r for r in rs if r["seed"] == s)["candidates"][c]["passed"]]
        unseen = [
            f"{c}@{r['seed']}"
            for r in rs
            for c, x in r["candidates"].items()
            if x.get("danger", {}).get("seen") is False
        ]
        keys = (
            "spearman",
            "normalized_mae",
            "intervals_containing_truth",
            "cost_upper_bounds_hold",
            "max_interval_width_share_fully_covered",
        )
        out[str(n)] = {
            "logs": len(rs),
            "acceptable_cases": len(acc),
            "unacceptable_cases": len(unacc),
            "false_rejections": len(fr),
            "false_rejection_rate": len(fr) / max(len(acc), 1),
            "false_rejected": [f"{c}@{s}" for c, s in fr],
            "false_acceptances": len(fa),
            "false_accepted": [f"{c}@{s}" for c, s in fa],
            "false_acceptances_of_crash_unacceptable": len(fa_crash),
            "unsafe_not_failed_on_their_unsafe_channel": unseen,
            "aa_pass_rate": float(np.mean([r["aa_passed"] for r in rs])),
            "clone_vs_behavior_pass_rate": float(np.mean([r["clone_vs_behavior"]["passed"] for r in rs])),
            "accuracy_mean": {
                k: float(np.mean([r["accuracy"][k] for r in rs if r["accuracy"][k] is not None])) for k in keys
            },
            "unsafe_above_safe_all_logs": all(r["accuracy"]["unsafe_crash_upper_above_every_safe"] for r in rs),
            "unsafe_estimate_above_every_safe_on_its_channel": {
                ch: all(v["above_every_safe"] for r in rs for c, v in ranks_by_channel(r).items() if c == ch)
                for ch in CHANNELS_RANKED
            },
            "evaluate_seconds_mean": float(np.mean([r["seconds"]["evaluate"] for r in rs])),
            "evaluate_seconds_per_policy_mean": float(np.mean([r["seconds"]["evaluate_per_policy"] for r in rs])),
            "cost_bounds_hold_all_logs": float(np.mean([r["accuracy"]["cost_upper_bounds_hold"] for r in rs])),
            "off_road_within_factor_2_all_logs": all(
                r["accuracy"]["off_road_within_factor_2"] is not False for r in rs
            ),
            "safe_within_3_percent_all_logs": all(r["accuracy"]["safe_within_3_percent"] is not False for r in rs),
            "estimator_chosen": [r["estimator"]["chosen"] for r in rs],
        }
    out["behaviour_truth"] = bt
    return out


def main() -> None:
    from roadworthy.data.sim.policies import BENCHMARK
    from roadworthy.evaluator.evaluate import EvaluateConfig
    from roadworthy.evaluator.gate_config import load_gate_config

    ap = argparse.ArgumentParser()
    ap.add_argument("--split", choices=("tuning", "reporting"), default="tuning")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--seeds", type=int, nargs="*", default=None)
    ap.add_argument("--config", type=Path, default=None, help="gate TOML (default settings when absent)")
    ap.add_argument("--estimator", default=None)
    ap.add_argument(
        "--variant", default=None, help='JSON overrides of EvaluateConfig, e.g. {"rollout": {"hazard_bound": 1.0}}'
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    gate_cfg = load_gate_config(args.config)
    config = gate_cfg.evaluate_config()
    from dataclasses import replace

    if args.estimator:
        config = replace(config, estimator=args.estimator)
    if args.variant:
        for key, val in json.loads(args.variant).items():
            if isinstance(val, dict):
                sub = getattr(config, key)
                val = replace(sub, **{k: tuple(v) if isinstance(v, list) else v for k, v in val.items()})
            config = replace(config, **{key: val})
    assert isinstance(config, EvaluateConfig)
    paths = policy_paths()
    tt = truth_table(truth())
    names = [p.name for p, s in BENCHMARK if s == args.split]
    unsafe = {p.name for p, s in BENCHMARK if p.unsafe}
    seeds = args.seeds or (TUNING_SEEDS if args.split == "tuning" else REPORTING_SEEDS)
    out = args.out or HERE / "results" / f"gate-{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    # Seed by seed, each log size in turn; the results file is rewritten after every log,
    # so an interrupted run keeps what it finished.
    for seed in seeds:
        for n in args.sizes:
            r = run_log(seed, n, names, paths, config, gate_cfg, tt, unsafe)
            runs.append(r)
            print(
                json.dumps(
                    {
                        "log": r["log"],
                        "estimator": r["estimator"]["chosen"],
                        "aa": r["aa_passed"],
                        "clone_vs_behavior": r["clone_vs_behavior"],
                        "accuracy": {k: v for k, v in r["accuracy"].items() if k != "fully_covered"},
                        "verdicts": {
                            c: [x["passed"], x["truth"]["acceptable"], x["failed_checks"]]
                            for c, x in r["candidates"].items()
                        },
                        "seconds": r["seconds"],
                    }
                ),
                flush=True,
            )
            result = {
                "benchmark": "gate operating characteristics and evaluator accuracy against closed-loop truth",
                "variant": args.variant,
                "split": args.split,
                "policies": [BASELINE, *names],
                "unsafe": sorted(unsafe & set(names)),
                "log_seeds": list(seeds),
                "logs_done": [x["log"] for x in runs],
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "date": time.strftime("%Y-%m-%d"),
                "gate_config": gate_cfg.to_dict(),
                "summary": summarize(runs, behaviour_truth()),
                "runs": runs,
            }
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(result, indent=1) + "\n")
            tmp.replace(out)
    print(json.dumps(result["summary"], indent=1))


if __name__ == "__main__":
    main()
