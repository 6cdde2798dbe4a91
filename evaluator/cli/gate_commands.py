"""``roadworthy gate``: pass or fail a candidate policy in CI (exit 0 pass, 1 fail, 2 error)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from evaluator.cli.common import EXIT_GATE_FAILED, handle_errors, result_console, stderr, table, write_json
from evaluator.cli.data_commands import JsonOpt


@handle_errors
def gate(
    logs: Annotated[Path, typer.Argument(help="A .parquet file or a folder of them.", show_default=False)],
    candidate: Annotated[str, typer.Option(help="The candidate policy (.onnx).", show_default=False)],
    baseline: Annotated[
        str, typer.Option(help="The baseline policy (.onnx), or 'behavior' for the logged behaviour itself.")
    ] = "behavior",
    config: Annotated[Path | None, typer.Option(help="Gate settings (TOML; see docs/gate.md).")] = None,
    model: Annotated[
        Path | None, typer.Option(help="Behaviour model from `roadworthy fit` (default: fit one on LOGS).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (overrides [evaluation].seed of the config).")] = None,
    junit: Annotated[Path | None, typer.Option(help="Also write JUnit XML here (one testcase per check).")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Also write the Markdown summary here.")] = None,
    report: Annotated[Path | None, typer.Option(help="Also write the full evaluation report JSON here.")] = None,
    allow_code: Annotated[
        bool,
        typer.Option(help="Accept policy formats whose loading runs code (.pt2, module:callable). Trusted files only."),
    ] = False,
    json_out: JsonOpt = None,
) -> None:
    """Pass (exit 0) or fail (exit 1) a candidate policy against a baseline, from the logs alone.

    Checks: value non-inferiority (paired lower bound), minimum coverage, cost channels
    no worse than the baseline's beyond a margin, absolute cost limits, and optionally a
    maximum out-of-support rate per source or scenario. Bad input exits 2.
    """
    from dataclasses import replace

    from data.writer import AtomicFile
    from evaluator.evaluate import evaluate
    from evaluator.gate import verdict as make_verdict
    from evaluator.gate_config import load_gate_config
    from evaluator.gate_render import junit_xml, table_rows
    from evaluator.gate_render import markdown as render_md

    cfg = load_gate_config(config)
    if seed is not None:
        cfg = replace(cfg, evaluation=replace(cfg.evaluation, seed=seed))
    eval_config = cfg.evaluate_config()
    eval_config.validate()
    policies = [candidate] if baseline == "behavior" else [candidate, baseline]
    err = stderr()
    rep = evaluate(
        logs,
        policies,
        model=model,
        config=eval_config,
        on_stage=lambda s: err.print(f"[dim]{s}[/]"),
        allow_code=allow_code,
    )
    names = [p["name"] for p in rep["policies"]]
    from data.errors import UsageError

    if "behavior" in names:
        raise UsageError(
            f"a policy calls itself 'behavior', the name reserved for the logged behaviour ({policies})",
            "rename it in its roadworthy metadata",
        )
    if len(names) == 2 and names[0] == names[1]:
        raise UsageError(
            f"candidate {candidate} and baseline {baseline} both call themselves '{names[0]}'",
            "give them different names in their roadworthy metadata",
        )
    out = make_verdict(rep, names[0], names[1] if len(names) == 2 else "behavior", cfg)
    if report is not None:
        write_json(rep, report)
    if junit is not None:
        with AtomicFile(junit) as f:
            f.tmp.write_text(junit_xml(out))
    md = render_md(out)
    if markdown is not None:
        with AtomicFile(markdown) as f:
            f.tmp.write_text(md)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(md + "\n")
    write_json(out, json_out)
    console = result_console(json_out)
    cols, rows = table_rows(out)
    status = "[bold green]PASSED[/]" if out["passed"] else "[bold red]FAILED[/]"
    console.print(table(f"roadworthy gate: {names[0]} vs {out['baseline']['name']}", cols, rows))
    console.print(f"gate {status}" + ("" if out["passed"] else f": {', '.join(out['failed_checks'])}"))
    if not out["passed"]:
        raise typer.Exit(EXIT_GATE_FAILED)


def register(app: typer.Typer) -> None:
    """Add this command to the main app."""
    app.command("gate")(gate)
