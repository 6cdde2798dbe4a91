"""``roadworthy fit`` and ``roadworthy score``: behaviour density models and OOD flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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

MODEL_HELP = "Estimator of p(action | state): mdn (default), gmm, knn or iforest."


def print_fit(model, console: Console) -> None:
    """Readable summary of a fitted behaviour model."""
    s = model.summary_
    cfg = model.config
    console.print(
        f"fitted {cfg.model} p(action | state) and {cfg.state_model} p(state) on {s['rows']['train']:,} rows "
        f"({s['units']['train']} {s['units']['split_by']}s); calibrated on {s['rows']['calibration']:,} rows "
        f"({s['units']['calibration']} held-out {s['units']['split_by']}s), alpha={cfg.alpha}"
    )
    rows = [
        [g, v["rows"], v["nonconformity"] if v["nonconformity"] is not None else "never"]
        for g, v in s["thresholds"].items()
    ]
    console.print(
        table("Calibration groups (flag when -log p exceeds the threshold)", ["group", "rows", "threshold"], rows)
    )


@handle_errors
def fit(
    logs: Annotated[Path, typer.Argument(help="A .parquet file or a folder of them.", show_default=False)],
    out: Annotated[Path, typer.Option("--output", "-o", help="Model folder to write.")],
    model: Annotated[str, typer.Option(help=MODEL_HELP)] = "mdn",
    state_model: Annotated[str, typer.Option(help="Estimator of p(state).")] = "gmm",
    alpha: Annotated[float, typer.Option(help="False-alarm rate of the OOD flags.")] = 0.01,
    calibration_fraction: Annotated[float, typer.Option(help="Share of episodes held out to calibrate.")] = 0.2,
    slice_by: Annotated[
        list[str] | None, typer.Option("--slice-by", help="Calibrate per slice too: speed_band, map_name, scenario.")
    ] = None,
    min_bin: Annotated[int, typer.Option(help="Fewest calibration rows for a slice of its own.")] = 200,
    block_steps: Annotated[
        int, typer.Option(help="Split episodes into blocks of N steps for calibration (0: by episode).")
    ] = 0,
    epochs: Annotated[int | None, typer.Option(help="Training epochs of the mdn (default 40).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and of training.")] = 0,
    driving: Annotated[
        bool,
        typer.Option(
            "--driving-model/--no-driving-model",
            help="Also fit the learned driving model that evaluate and gate reuse with --model.",
        ),
    ] = True,
    json_out: JsonOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Fit the behaviour density model on logs, with calibrated OOD thresholds, and the driving model."""
    from roadworthy import api
    from roadworthy.data.dataset import scan_logs

    guard_outputs(logs, overwrite, json=json_out)  # --output: api.fit checks it

    with progress(scan_logs(logs).num_rows, "reading") as advance:
        result = api.fit(
            logs,
            out,
            model=model,
            state_model=state_model,
            alpha=alpha,
            calibration_fraction=calibration_fraction,
            slice_by=tuple(slice_by or ()),
            min_bin=min_bin,
            block_steps=block_steps,
            epochs=epochs,
            seed=seed,
            driving=driving,
            overwrite=overwrite,
            on_rows=advance,
            on_stage=stage_printer(),
        )
    console = result_console(json_out)
    print_fit(result.model, console)
    console.print(f"model written to {out}")
    if result.driving:
        console.print(
            f"driving model ({result.driving['heads']} heads, seed {result.driving['seed']}) and FQE's held-out checks "
            f"written to {result.driving['folder']}: evaluate and gate reuse them with --model"
        )
    write_json(result.to_json(), json_out)


@handle_errors
def score(
    logs: Annotated[Path, typer.Argument(help="A .parquet file or a folder of them.", show_default=False)],
    model: Annotated[Path, typer.Option("--model", "-m", help="Model folder from `roadworthy fit`.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="Flags file to write (.parquet).")],
    policy: Annotated[
        Path | None, typer.Option(help="Score this ONNX policy's actions on the logged states instead.")
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="Override the model's false-alarm rate.")] = None,
    bh: Annotated[
        bool, typer.Option("--bh", help="Also flag with Benjamini-Hochberg over all rows (is_ood_bh).")
    ] = False,
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    json_out: JsonOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Per-row log-density and OOD flag of the logged actions (or of a policy's actions).

    With --engine ray, the output is a folder of Parquet files (same columns).
    """
    from roadworthy import api
    from roadworthy.data.dataset import scan_logs

    guard_outputs([logs, model, policy], overwrite, json=json_out)
    passes = 2 if bh else 1
    with progress(scan_logs(logs).num_rows * passes, "scoring") as advance:
        result = api.score(
            logs,
            model,
            out,
            policy=policy,
            alpha=alpha,
            bh=bh,
            engine=engine,
            address=address,
            overwrite=overwrite,
            on_rows=advance,
            on_stage=stage_printer(),
        )
    c = result.counts
    console = result_console(json_out)
    what = f"policy '{c['policy']}' actions" if c["policy"] is not None else "logged actions"
    rows = [[src, v["rows"], v["is_ood"], v["is_ood"] / max(v["rows"], 1)] for src, v in sorted(c["by_source"].items())]
    rows.append(["all", c["rows"], c["is_ood"], c["ood_rate"]])
    console.print(
        table(f"OOD flags of the {what} (alpha={c['alpha']})", ["logged source", "rows", "flagged", "rate"], rows)
    )
    console.print(
        f"states never seen in the logs (state_is_ood): {c['state_is_ood']:,} rows; "
        f"skipped rows: {c['skipped_rows']:,}; flags in {out}"
    )
    if bh:
        console.print(
            f"Benjamini-Hochberg at {c['alpha']} over {c['rows']:,} rows flags {c['is_ood_bh']:,} (is_ood_bh)"
        )
    write_json(result.to_json(), json_out)


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.command("fit")(fit)
    app.command("score")(score)
