"""Markdown tables of a gate benchmark result (``bench_gate.py``'s JSON), for the README.

Usage::

    python benchmarks/gate_tables.py benchmarks/results/gate-reporting.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def goals(res: dict) -> str:
    """One row per goal of issue 20, one column per log."""
    runs = sorted(res["runs"], key=lambda r: (r["episodes"], r["seed"]))
    head = "| goal | " + " | ".join(f"{r['seed']}, {r['episodes']} eps" for r in runs) + " |"
    rows = [head, "|---|" + "---|" * len(runs)]

    def row(name: str, cell) -> None:
        rows.append(f"| {name} | " + " | ".join(cell(r) for r in runs) + " |")

    def cands(r: dict, acceptable: bool) -> list[str]:
        return [c for c, x in r["candidates"].items() if x["truth"]["acceptable"] == acceptable]

    def fa(r: dict) -> str:
        bad = cands(r, False)
        passed = [c for c in bad if r["candidates"][c]["passed"]]
        return f"{len(passed)} of {len(bad)}" + (f" ({', '.join(passed)})" if passed else "")

    def fr(r: dict) -> str:
        good = cands(r, True)
        refused = [c for c in good if not r["candidates"][c]["passed"]]
        return f"{len(refused)} of {len(good)}" + (f" ({', '.join(refused)})" if refused else "")

    def seen(r: dict) -> str:
        miss = [c for c, x in r["candidates"].items() if x.get("danger", {}).get("seen") is False]
        n = sum(1 for x in r["candidates"].values() if x.get("danger", {}).get("seen") is not None)
        return f"{n - len(miss)} of {n}" + (f" (not: {', '.join(miss)})" if miss else "")

    def bounds(r: dict) -> str:
        a = r["accuracy"]
        fail = a.get("cost_upper_bounds_failing") or []
        return pct(a["cost_upper_bounds_hold"]) + (f" ({', '.join(fail)})" if fail else "")

    def factor2(r: dict) -> str:
        ratios = r["accuracy"].get("off_road_estimate_over_truth") or {}
        if not ratios:
            return "-"
        lo, hi = min(ratios.values()), max(ratios.values())
        return f"{'yes' if r['accuracy']['off_road_within_factor_2'] else 'no'} ({lo:.2f}-{hi:.2f})"

    def safe3(r: dict) -> str:
        err = r["accuracy"]["safe_value_relative_error"]
        worst = max(err, key=lambda k: abs(err[k]))
        return f"{'yes' if r['accuracy']['safe_within_3_percent'] else 'no'} (worst {worst} {100 * err[worst]:+.1f} %)"

    row("false acceptances (0)", fa)
    row("false rejections (<= 10 % at 400 eps)", fr)
    row("unsafe failed on their unsafe channel, mean beyond the margin", seen)
    row(
        "clone vs itself / vs `behavior`",
        lambda r: (
            f"{'pass' if r['aa_passed'] else 'FAIL'} / "
            + (
                "pass"
                if r["clone_vs_behavior"]["passed"]
                else "FAIL (" + ", ".join(c.split(".")[-1] for c in r["clone_vs_behavior"]["failed_checks"]) + ")"
            )
        ),
    )
    row("cost upper bounds hold (100 %)", bounds)
    row("off-road estimate within x2 of truth", factor2)
    row("value Spearman (>= 0.9)", lambda r: f"{r['accuracy']['spearman']:.2f}")
    row("value nMAE (<= 0.08)", lambda r: f"{r['accuracy']['normalized_mae']:.3f}")
    row("safe values within 3 %", safe3)
    row("seconds per policy in this run", lambda r: f"{r['seconds']['evaluate_per_policy']:.1f}")
    return "\n".join(rows)


def policies(res: dict, episodes: int = 400) -> str:
    """Per policy: truth, verdicts on every log of that size, estimates on the first."""
    runs = sorted((r for r in res["runs"] if r["episodes"] == episodes), key=lambda r: r["seed"])
    if not runs:
        return ""
    first = runs[0]
    head = (
        "| policy | truth value | P(collision) / P(off-road), truth | acceptable | verdicts "
        + " / ".join(str(r["seed"]) for r in runs)
        + f" | value estimate [lower, upper], {first['seed']}"
        + f" | collision, off-road: estimate (truth), {first['seed']} |"
    )
    rows = [head, "|---|---|---|---|---|---|---|"]
    for c, x in first["candidates"].items():
        verdicts = []
        for r in runs:
            y = r["candidates"][c]
            fails = [f.split(".")[-1].replace("_non_inferiority", "").replace("_min", "") for f in y["failed_checks"]]
            verdicts.append("pass" if y["passed"] else "fail (" + ", ".join(fails) + ")")
        e = x["estimate"]
        co, of = x["costs"]["collision"], x["costs"]["off_road"]
        rows.append(
            f"| `{c}` | {x['truth_value']:.1f} | {co['truth']:.2f} / {of['truth']:.2f} | "
            f"{'yes' if x['truth']['acceptable'] else 'no'} | {' / '.join(verdicts)} | "
            f"{e['estimate']:.1f} [{e['lower']:.1f}, {e['upper']:.1f}] | "
            f"{co['estimate']:.3f} ({co['truth']:.3f}), {of['estimate']:.3f} ({of['truth']:.3f}) |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("result", type=Path)
    args = ap.parse_args()
    res = json.loads(args.result.read_text())
    print(goals(res))
    print()
    print(policies(res))


if __name__ == "__main__":
    main()
