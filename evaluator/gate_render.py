"""Renderings of a gate verdict: JUnit XML, Markdown, terminal table rows.

The JSON verdict (:func:`roadworthy.evaluator.gate.verdict`) is the source of truth; these
functions only format it, so every output says the same thing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from roadworthy.data.text import markdown_text as md


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def junit_xml(verdict: dict) -> str:
    """JUnit XML with one testcase per check (failures carry the check's reason)."""
    checks = verdict["checks"]
    failures = sum(not c["passed"] for c in checks)
    suites = ET.Element("testsuites", name="roadworthy gate", tests=str(len(checks)), failures=str(failures))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=f"roadworthy gate: {verdict['candidate']['name']} vs {verdict['baseline']['name']}",
        tests=str(len(checks)),
        failures=str(failures),
        errors="0",
        skipped="0",
    )
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname="roadworthy.gate", name=c["id"])
        detail = f"observed {_fmt(c['observed'])} {c['comparison']} {_fmt(c['threshold'])}"
        if c["passed"]:
            ET.SubElement(case, "system-out").text = f"{c['reason']} ({detail})"
        else:
            ET.SubElement(case, "failure", message=c["reason"], type="GateCheckFailed").text = detail
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def markdown(verdict: dict) -> str:
    """A Markdown summary (for ``$GITHUB_STEP_SUMMARY`` and pull requests)."""
    c, b = verdict["candidate"], verdict["baseline"]
    status = "PASSED" if verdict["passed"] else "FAILED"
    lines = [
        f"## roadworthy gate: {status}",
        "",
        f"Candidate {md(c['name'])} against baseline {md(b['name'])} on {md(verdict['logs']['path'])} "
        f"({verdict['logs']['rows']:,} steps, {verdict['logs']['episodes']:,} episodes, seed {verdict['seed']}).",
        "",
        "| check | result | observed | threshold | reason |",
        "|---|---|---|---|---|",
    ]
    for ch in verdict["checks"]:
        lines.append(
            f"| `{ch['id']}` | {'pass' if ch['passed'] else '**FAIL**'} | {_fmt(ch['observed'])} | "
            f"{ch['comparison']} {_fmt(ch['threshold'])} | {md(ch['reason'])} |"
        )
    lines += [
        "",
        f"Candidate value {_fmt(c['value']['estimate'])} [{_fmt(c['value']['lower'])}, "
        f"{_fmt(c['value']['upper'])}], baseline {_fmt(b['value']['estimate'])}.",
        "",
    ]
    return "\n".join(lines)


def table_rows(verdict: dict) -> tuple[list[str], list[list[str]]]:
    """Columns and rows of the terminal table."""
    rows = [
        [
            ch["id"],
            "pass" if ch["passed"] else "FAIL",
            _fmt(ch["observed"]),
            f"{ch['comparison']} {_fmt(ch['threshold'])}",
            ch["reason"],
        ]
        for ch in verdict["checks"]
    ]
    return ["check", "result", "observed", "threshold", "reason"], rows
