"""``roadworthy gate``: pass or fail a candidate policy in CI (exit 0 pass, 1 fail, 2 error)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from roadworthy.cli.common import (
    EXIT_GATE_FAILED,
    guard_outputs,
    handle_errors,
    result_console,
    stage_printer,
    styled,
    table,
    write_json,
)
from roadworthy.cli.data_commands import JsonOpt, OverwriteOpt


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
    overwrite: OverwriteOpt = False,
) -> None:
    """Pass (exit 0) or fail (exit 1) a candidate policy against a baseline, from the logs alone.

    Checks: value non-inferiority (paired lower bound), minimum coverage, cost channels
    no worse than the baseline's beyond a margin, absolute cost limits, and optionally a
    maximum out-of-support rate per source or scenario. Bad input exits 2.
    """
    from roadworthy import api
    from roadworthy.data.writer import AtomicFile
    from roadworthy.evaluator.gate_render import junit_xml, table_rows
    from roadworthy.evaluator.gate_render import markdown as render_md
    from roadworthy.evaluator.gate_run import append_step_summary

    ins = [logs, candidate, baseline if baseline != "behavior" else None, config, model]
    guard_outputs(ins, overwrite, json=json_out, junit=junit, markdown=markdown, report=report)
    result = api.gate(
        logs,
        candidate,
        baseline,
        config=config,
        model=model,
        seed=seed,
        allow_code=allow_code,
        on_stage=stage_printer(),
    )
    out, rep = result.verdict, result.report
    if report is not None:
        write_json(rep, report)
    if junit is not None:
        with AtomicFile(junit) as f:
            f.tmp.write_text(junit_xml(out))
    md = render_md(out)
    if markdown is not None:
        with AtomicFile(markdown) as f:
            f.tmp.write_text(md)
    append_step_summary(md)
    write_json(out, json_out)
    console = result_console(json_out)
    cols, rows = table_rows(out)
    status = styled("PASSED", "bold green") if out["passed"] else styled("FAILED", "bold red")
    console.print(table(f"roadworthy gate: {out['candidate']['name']} vs {out['baseline']['name']}", cols, rows))
    console.print(Text.assemble("gate ", status, "" if out["passed"] else f": {', '.join(out['failed_checks'])}"))
    if not out["passed"]:
        raise typer.Exit(EXIT_GATE_FAILED)


def register(app: typer.Typer) -> None:
    """Add this command to the main app."""
    app.command("gate")(gate)
