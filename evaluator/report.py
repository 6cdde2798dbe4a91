"""Readable renderings of an evaluation report: table rows and Markdown.

The JSON report (:func:`roadworthy.evaluator.evaluate.evaluate`) is the source of truth; these
functions only format it.
"""

from __future__ import annotations

from roadworthy.data.text import markdown_text as md


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def table_rows(report: dict) -> tuple[list[str], list[list]]:
    """Columns and rows of the terminal summary table."""
    costs = []
    for p in report["policies"]:
        costs += [c for c in p["costs"] if c not in costs]
    cols = ["policy", "value", "lower", "upper", "coverage", *[f"{c} (upper)" for c in costs]]
    rows = []
    for p in report["policies"]:
        v = p["value"]
        row = [p["name"], v["estimate"], v["lower"], v["upper"], p["coverage"]]
        for c in costs:
            cc = p["costs"].get(c)
            row.append(f"{cc['estimate']:.3f} ({cc['upper']:.3f})" if cc else "-")
        rows.append(row)
    return cols, rows


def _estimate_cell(x: dict | None) -> str:
    return "-" if x is None else f"{_f(x['estimate'])} [{_f(x['lower'])}, {_f(x['upper'])}]"


def markdown(report: dict) -> str:
    """A Markdown report: the summary, the estimators side by side, coverage by source."""
    conf = round(100 * report["confidence"])
    lines = [
        "# roadworthy evaluation",
        "",
        f"Log {md(report['logs'])}: {report['rows']:,} steps in {report['episodes']:,} episodes "
        f"(horizon {report['horizon_steps']} steps), gamma {report['gamma']}, behaviour model: {md(report['model'])}.",
        "",
        f"Value = expected discounted return from the logged episode starts. `lower`/`upper`: {conf} % "
        "bounds that also cover what the logs cannot tell (decisions outside the trusted support).",
        "",
        *(
            [
                f"Logged behaviour (Monte Carlo over the logged episodes): value "
                f"{_estimate_cell(report['behavior']['value'])}.",
                "",
            ]
            if "behavior" in report
            else []
        ),
        "| policy | value | lower | upper | coverage | costs: estimate (upper) |",
        "|---|---|---|---|---|---|",
    ]
    for p in report["policies"]:
        v = p["value"]
        costs = ", ".join(f"{k} {_f(c['estimate'], 3)} ({_f(c['upper'], 3)})" for k, c in p["costs"].items())
        lines.append(
            f"| {md(p['name'])} | {_f(v['estimate'])} | {_f(v['lower'])} | {_f(v['upper'])} | "
            f"{100 * p['coverage']:.1f} % | {costs} |"
        )
    est = report.get("estimator", {})
    if est.get("channels"):
        lines += [
            "",
            "## How each cost channel was obtained",
            "",
            f"Value: {md(est.get('chosen', '-'))} ({md(est.get('rule', ''))}).",
            "",
            "| channel | how | headline estimator | danger check on logged events |",
            "|---|---|---|---|",
        ]
        how = report.get("channels", {})
        for c, ch in est["channels"].items():
            kind = how.get(c, {})
            lines.append(
                f"| {md(c)} | {md(kind.get('kind', '-'))}: {md(kind.get('how', ''))} | {md(ch['chosen'])} | "
                f"{md(ch['status'])} |"
            )
        geo = report.get("geometry", {})
        if geo.get("available") is False:
            lines += ["", f"No road geometry: {md(geo.get('reason', ''))}; the crash channels are learned."]
    lines += [
        "",
        "## Estimators",
        "",
        "| policy | FQE | PDIS | WIS | DR | IS effective sample size |",
        "|---|---|---|---|---|---|",
    ]
    for p in report["policies"]:
        cells = [_estimate_cell(p["estimators"].get(key)) for key in ("fqe", "pdis", "wis", "dr")]
        lines.append(f"| {md(p['name'])} | " + " | ".join(cells) + f" | {p['diagnostics']['importance_ess']:.1f} |")
    lines += ["", "## Coverage by behaviour source", ""]
    sources = sorted({s for p in report["policies"] for s in p["coverage_by"]["source"]})
    lines += ["| policy | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
    for p in report["policies"]:
        by = p["coverage_by"]["source"]
        lines.append(
            f"| {md(p['name'])} | "
            + " | ".join(f"{100 * by[s]['coverage']:.1f} %" if s in by else "-" for s in sources)
            + " |"
        )
    lines += [
        "",
        "Importance sampling over long episodes has few effective samples; read those columns as cross-checks.",
        "",
    ]
    return "\n".join(lines)
