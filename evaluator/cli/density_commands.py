"""``roadworthy fit`` and ``roadworthy score``: behaviour density models and OOD flags."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from evaluator.cli.common import handle_errors, progress, result_console, stderr, table, write_json
from evaluator.cli.data_commands import AddressOpt, EngineOpt, JsonOpt

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
    json_out: JsonOpt = None,
) -> None:
    """Fit the behaviour density model on logs, with calibrated OOD thresholds."""
    from data.dataset import scan_logs
    from density.behavior import BehaviorConfig, BehaviorModel

    params = {"random_state": seed}
    if epochs is not None and model == "mdn":
        params["epochs"] = epochs
    config = BehaviorConfig(
        model=model,
        model_params=params,
        state_model=state_model,
        state_params={"random_state": seed},
        alpha=alpha,
        calibration_fraction=calibration_fraction,
        slice_by=tuple(slice_by or ()),
        min_bin=min_bin,
        block_steps=block_steps,
        seed=seed,
    )
    config.validate()
    ds = scan_logs(logs)
    err = stderr()
    with progress(ds.num_rows, "reading") as advance:
        fitted = BehaviorModel.fit(ds, config, on_rows=advance, on_stage=lambda s: err.print(f"[dim]{s}[/]"))
    fitted.save(out)
    console = result_console(json_out)
    print_fit(fitted, console)
    console.print(f"model written to {out}")
    from dataclasses import asdict

    write_json({"model": str(out), "config": asdict(fitted.config), "summary": fitted.summary_}, json_out)


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
) -> None:
    """Per-row log-density and OOD flag of the logged actions (or of a policy's actions).

    With --engine ray, the output is a folder of Parquet files (same columns).
    """

    import numpy as np
    import pyarrow.parquet as pq

    from data.dataset import scan_logs
    from data.errors import UsageError
    from data.ray_engine import check_engine
    from density.behavior import BehaviorModel
    from density.calibration import benjamini_hochberg

    if alpha is not None and not 0 < alpha < 1:
        raise UsageError(f"--alpha must lie in (0, 1), got {alpha}", "use e.g. 0.01")
    check_engine(engine, address)
    if engine == "ray" and bh:
        raise UsageError("--bh needs all p-values in one place and is not available with --engine ray", "drop --bh")
    bm = BehaviorModel.load(model)
    ds = scan_logs(logs)
    pol = None
    if policy is not None:
        from data.policy import OnnxPolicy

        pol = OnnxPolicy.load(policy, obs_names=ds.metadata.obs_names, action_names=ds.metadata.action_names)
    level = bm.config.alpha if alpha is None else alpha
    bh_threshold = None
    if bh:
        pvals = []
        with progress(ds.num_rows, "scoring (pass 1 of 2, for BH)") as advance:
            for t in bm.iter_scores(ds, policy=pol, alpha=alpha, on_rows=advance):
                pvals.append(t.column("pvalue").to_numpy())
        allp = np.concatenate(pvals) if pvals else np.zeros(0)
        flags = benjamini_hochberg(allp, level)
        bh_threshold = float(allp[flags].max()) if flags.any() else -1.0
    counts = {"rows": 0, "is_ood": 0, "state_is_ood": 0, "is_ood_bh": 0, "by_source": {}}

    def tally(t) -> None:
        ood = t.column("is_ood").to_numpy()
        counts["rows"] += t.num_rows
        counts["is_ood"] += int(ood.sum())
        counts["state_is_ood"] += int(t.column("state_is_ood").to_numpy().sum())
        src = np.asarray(t.column("source").to_pylist(), dtype=object)
        for s in np.unique(src):
            c = counts["by_source"].setdefault(str(s), {"rows": 0, "is_ood": 0})
            c["rows"] += int((src == s).sum())
            c["is_ood"] += int(ood[src == s].sum())

    if engine == "ray":
        from density.ray_score import score_ray

        stderr().print("[dim]scoring on Ray[/]")
        score_ray(logs, model, out, policy=policy, alpha=alpha, address=address)
        for f in sorted(out.rglob("*.parquet")):
            tally(pq.read_table(f, columns=["source", "is_ood", "state_is_ood"]))
    else:
        _score_local(bm, ds, pol, alpha, out, model, level, bh_threshold, counts, tally)
    console = result_console(json_out)
    what = f"policy '{pol.name}' actions" if pol is not None else "logged actions"
    rows = [
        [src, c["rows"], c["is_ood"], c["is_ood"] / max(c["rows"], 1)] for src, c in sorted(counts["by_source"].items())
    ]
    rows.append(["all", counts["rows"], counts["is_ood"], counts["is_ood"] / max(counts["rows"], 1)])
    console.print(table(f"OOD flags of the {what} (alpha={level})", ["logged source", "rows", "flagged", "rate"], rows))
    console.print(
        f"states never seen in the logs (state_is_ood): {counts['state_is_ood']:,} rows; "
        f"skipped rows: 0; flags in {out}"
    )
    if bh:
        console.print(
            f"Benjamini-Hochberg at {level} over {counts['rows']:,} rows flags {counts['is_ood_bh']:,} (is_ood_bh)"
        )
    write_json(
        {
            "flags": str(out),
            "policy": None if pol is None else pol.name,
            "alpha": level,
            **counts,
            "ood_rate": counts["is_ood"] / max(counts["rows"], 1),
            "skipped_rows": 0,
        },
        json_out,
    )


def _score_local(bm, ds, pol, alpha, out, model, level, bh_threshold, counts, tally) -> None:
    """Stream the flags of the local engine into one Parquet file, atomically."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from data.writer import AtomicFile

    writer = None
    with AtomicFile(out) as f, progress(ds.num_rows, "scoring") as advance:
        try:
            for t in bm.iter_scores(ds, policy=pol, alpha=alpha, on_rows=advance):
                if bh_threshold is not None:
                    t = t.append_column("is_ood_bh", pa.array(t.column("pvalue").to_numpy() <= bh_threshold))
                    counts["is_ood_bh"] += int(t.column("is_ood_bh").to_numpy().sum())
                if writer is None:
                    info = {"model": str(model), "alpha": level, "policy": None if pol is None else pol.name}
                    meta = {b"roadworthy.flags": json.dumps(info).encode()}
                    writer = pq.ParquetWriter(f.tmp, t.schema.with_metadata(meta), compression="zstd")
                writer.write_table(t)
                tally(t)
        finally:
            if writer is not None:
                writer.close()


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.command("fit")(fit)
    app.command("score")(score)
