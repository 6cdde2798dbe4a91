"""Replay the gate on saved benchmark runs under other gate settings, without evaluating again.

``bench_gate.py`` stores every policy's per-head figures; :func:`roadworthy.evaluator.gate.verdict` is
a pure function of them. This script rebuilds each run's report, applies the gate with
the settings of a TOML file (or the defaults), and prints false acceptances, false
rejections, the A/A test and the clone against the logged behaviour, with each
candidate's failed checks. Truth (which candidates are acceptable) is the one stored in
the run: it depends on the margins, not on the bounds, so replaying other margins needs
``bench_gate.py`` again.

Usage::

    python benchmarks/replay_gate.py benchmarks/results/gate-tuning.json [--config gate.toml] [--json OUT]

``--rewrite OUT`` merges the runs of every input (one per log; a later file's run of the
same log wins) into one results file in ``bench_gate.py``'s format, with every stored
verdict and the summary redone under the given settings: runs measured in separate
processes, or before a gate change, end up in one consistent file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

BASELINE = "autopilot-clone"


def rebuild_report(run: dict) -> dict:
    """The evaluation report (the parts the gate reads) of one saved run."""
    policies = [{"name": name, **fig} for name, fig in run["report"].items()]
    bh = run["behavior_heads"]
    behavior = {
        "value": {k: run["behavior"][k] for k in ("estimate", "lower", "upper")},
        "costs": {
            ch: {"estimate": float(np.mean(v["estimate"])), "upper": float(np.mean(v["upper"]))}
            for ch, v in bh["costs"].items()
        },
        "heads": bh,
    }
    return {
        "logs": run["log"],
        "rows": run["rows"],
        "episodes": run["episodes"],
        "policies": policies,
        "behavior": behavior,
    }


def replay_run(run: dict, cfg) -> dict:
    """Verdicts of one run under ``cfg``, scored against the stored truth."""
    from roadworthy.evaluator.gate import verdict

    rep = rebuild_report(run)
    out = {"log": run["log"], "candidates": {}, "false_acceptances": [], "false_rejections": []}
    for cand, stored in run["candidates"].items():
        v = verdict(rep, cand, BASELINE, cfg)
        ok = stored["truth"]["acceptable"]
        out["candidates"][cand] = {"passed": v["passed"], "acceptable": ok, "failed_checks": v["failed_checks"]}
        if v["passed"] and not ok:
            out["false_acceptances"].append(cand)
        if ok and not v["passed"]:
            out["false_rejections"].append(cand)
    out["safe"] = sum(c["acceptable"] for c in out["candidates"].values())
    out["unsafe"] = len(out["candidates"]) - out["safe"]
    out["aa_passed"] = verdict(rep, BASELINE, BASELINE, cfg)["passed"]
    vb = verdict(rep, BASELINE, "behavior", cfg)
    out["clone_vs_behavior"] = {"passed": vb["passed"], "failed_checks": vb["failed_checks"]}
    return out


def rewrite(files: list[Path], cfg, out: Path) -> dict:
    """Merge runs and redo their verdicts and summary under ``cfg``; write ``out`` atomically."""
    from bench_gate import behaviour_truth, danger_seen, ranks_by_channel, summarize

    from roadworthy.evaluator.gate import verdict

    docs = [json.loads(f.read_text()) for f in files]
    runs: dict[str, dict] = {}
    for d in docs:
        for run in d["runs"]:
            runs[run["log"]] = run
    for run in runs.values():
        rep = rebuild_report(run)
        for cand, stored in run["candidates"].items():
            v = verdict(rep, cand, BASELINE, cfg)
            stored["passed"] = v["passed"]
            stored["failed_checks"] = v["failed_checks"]
            stored["checks"] = {
                c["id"]: {"observed": c["observed"], "threshold": c["threshold"], "mean": c.get("mean_difference")}
                for c in v["checks"]
            }
            by_channel = {
                c["id"].split(".", 1)[1]: {"failed": not c["passed"], "mean_beyond": bool(c.get("mean_beyond_margin"))}
                for c in v["checks"]
                if c["id"].startswith("cost_non_inferiority.")
            }
            stored["danger"] = danger_seen({"checks": by_channel}, stored["truth"])
        run["accuracy"]["unsafe_above_safe_per_channel"] = ranks_by_channel(run)
        run["aa_passed"] = verdict(rep, BASELINE, BASELINE, cfg)["passed"]
        vb = verdict(rep, BASELINE, "behavior", cfg)
        run["clone_vs_behavior"] = {
            "passed": vb["passed"],
            "failed_checks": vb["failed_checks"],
            "checks": {c["id"]: {"observed": c["observed"], "threshold": c["threshold"]} for c in vb["checks"]},
        }
    ordered = sorted(runs.values(), key=lambda r: (r["seed"], -r["episodes"]))
    result = dict(docs[-1])
    result.update(
        {
            "log_seeds": sorted({r["seed"] for r in ordered}),
            "logs_done": [r["log"] for r in ordered],
            "gate_config": cfg.to_dict(),
            "verdicts_replayed_by": "benchmarks/replay_gate.py --rewrite",
            "summary": summarize(ordered, behaviour_truth()),
            "runs": ordered,
        }
    )
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)
    return result


def main() -> None:
    from roadworthy.evaluator.gate_config import load_gate_config

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, nargs="+")
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--rewrite", type=Path, default=None, help="merge into one results file (see above)")
    args = ap.parse_args()
    cfg = load_gate_config(args.config)
    if args.rewrite:
        res = rewrite(args.results, cfg, args.rewrite)
        print(json.dumps({k: v for k, v in res["summary"].items() if k != "behaviour_truth"}, indent=1))
        return
    replays = []
    for f in args.results:
        for run in json.loads(f.read_text())["runs"]:
            r = replay_run(run, cfg)
            replays.append(r)
            print(
                f"{r['log']}: false acceptances {len(r['false_acceptances'])}/{r['unsafe']} "
                f"{r['false_acceptances']}, false rejections {len(r['false_rejections'])}/{r['safe']}, "
                f"A/A {'passes' if r['aa_passed'] else 'FAILS'}, clone vs behavior "
                f"{'passes' if r['clone_vs_behavior']['passed'] else 'fails ' + str(r['clone_vs_behavior'])}"
            )
            for c, x in r["candidates"].items():
                mark = "pass" if x["passed"] else "fail " + ", ".join(x["failed_checks"])
                print(f"    {c:18s} {'acceptable' if x['acceptable'] else 'UNACCEPTABLE':12s} {mark}")
    if args.json:
        args.json.write_text(json.dumps({"gate_config": cfg.to_dict(), "replays": replays}, indent=1) + "\n")


if __name__ == "__main__":
    main()
