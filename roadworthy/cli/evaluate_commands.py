"""``roadworthy evaluate``: conservative off-policy evaluation of policy files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from roadworthy.cli.common import (
    guard_outputs,
    handle_errors,
    progress,
    result_console,
    stage_printer,
    table,
    write_json,
)
from roadworthy.cli.data_commands import AddressOpt, EngineOpt, JsonOpt, OverwriteOpt


@handle_errors
def evaluate(
    logs: Annotated[Path, typer.Argument(help="A .parquet file or a folder of them.", show_default=False)],
    policy: Annotated[list[str], typer.Option("--policy", "-p", help="ONNX policy file (repeat for several).")],
    model: Annotated[
        Path | None, typer.Option(help="Behaviour model from `roadworthy fit` (default: fit one on LOGS).")
    ] = None,
    gamma: Annotated[float, typer.Option(help="Discount factor in (0, 1].")] = 0.99,
    seed: Annotated[int, typer.Option(help="Seed of bootstraps, sampling and training.")] = 0,
    support_alpha: Annotated[float, typer.Option(help="Conformal level of the trusted support.")] = 0.001,
    heads: Annotated[int, typer.Option(help="Bootstrap heads of the estimators.")] = 10,
    estimator: Annotated[
        str, typer.Option(help="Headline estimator: auto (chosen from the data), model or fqe.")
    ] = "auto",
    model_steps: Annotated[int, typer.Option(help="Gradient steps of the learned driving model.")] = 1500,
    iterations: Annotated[int, typer.Option(help="FQE: fitted Q iterations (0: the log's horizon + 20).")] = 0,
    pessimism: Annotated[
        str, typer.Option(help="Value after an out-of-support decision: terminal or horizon.")
    ] = "terminal",
    markdown: Annotated[Path | None, typer.Option(help="Also write a Markdown report here.")] = None,
    allow_code: Annotated[
        bool,
        typer.Option(help="Accept policy formats whose loading runs code (.pt2, module:callable). Trusted files only."),
    ] = False,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    json_out: JsonOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Value, safety costs, coverage and intervals of each policy, from the logs alone."""
    from roadworthy import api
    from roadworthy.evaluator.gate_config import EvaluationSection
    from roadworthy.evaluator.report import markdown as render_md
    from roadworthy.evaluator.report import table_rows

    # The flags are the gate TOML's [evaluation] keys; one function maps them to the config.
    config = EvaluationSection(
        gamma=gamma,
        support_alpha=support_alpha,
        seed=seed,
        heads=heads,
        estimator=estimator,
        model_steps=model_steps,
        iterations=iterations,
        pessimism=pessimism,
    ).to_config()
    config.validate()
    guard_outputs([logs, model, *policy], overwrite, json=json_out, markdown=markdown)
    with progress(len(policy), "policies") as advance:
        report = api.evaluate(
            logs,
            policy,
            model=model,
            config=config,
            on_stage=stage_printer(),
            on_policy=lambda entry: advance(1),
            allow_code=allow_code,
            engine=engine,
            address=address,
        ).report
    console = result_console(json_out)
    cols, rows = table_rows(report)
    console.print(
        table(f"Off-policy evaluation on {logs} (gamma={gamma}, {int(100 * config.confidence)} % bounds)", cols, rows)
    )
    if markdown is not None:
        from roadworthy.data.writer import AtomicFile

        with AtomicFile(markdown) as f:
            f.tmp.write_text(render_md(report))
        console.print(f"Markdown report: {markdown}")
    write_json(report, json_out)


def register(app: typer.Typer) -> None:
    """Add this command to the main app."""
    app.command("evaluate")(evaluate)
