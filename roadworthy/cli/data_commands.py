"""Commands over driving logs and the embedded simulator: validate, collect, rollout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from roadworthy.cli.common import guard_outputs, handle_errors, progress, result_console, table, write_json
from roadworthy.data.validate import LogSummary

EngineOpt = Annotated[
    str,
    typer.Option(help="local (default) or ray: run the row-wise work on Ray (pip install 'roadworthy[distributed]')."),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(help="Ray cluster address, e.g. ray://head:10001 (default with --engine ray: a local Ray)."),
]
JsonOpt = Annotated[
    Path | None,
    typer.Option("--json", help="Write the machine-readable result to this file ('-' for stdout alone)."),
]

OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace outputs that already exist (never an input).")]

collect_app = typer.Typer(help="Write sample driving logs from a simulator.", no_args_is_help=True)
rollout_app = typer.Typer(help="Closed-loop ground truth: run policies in a simulator.", no_args_is_help=True)


def print_summary(summary: LogSummary, console: Console) -> None:
    """Readable summary of a validated dataset."""
    d = summary.to_dict()
    meta = summary.metadata
    rows = [
        ["files", d["files"]],
        ["rows (steps)", d["rows"]],
        ["episodes", d["episodes"]],
        ["hours of driving", d["duration_s"] / 3600],
        ["obs features D", meta.obs_dim],
        ["actions A", f"{meta.action_dim} ({', '.join(meta.action_names)})"],
        ["control period dt (s)", meta.dt],
        ["disengagements", d["disengagements"]],
        ["collision rows / episodes", f"{d['collision_rows']} / {d['collision_episodes']}"],
        ["off-road rows", d["off_road_rows"]],
        ["terminal / truncated episodes", f"{d['terminal_episodes']} / {d['truncated_episodes']}"],
        ["rows with behavior_logp", d["behavior_logp_rows"]],
        ["mean episode return", d["episode_return"]["mean"]],
    ]
    console.print(table(f"Valid driving log: {summary.source}", ["", "value"], rows))
    share = [[k, v, v / max(summary.rows, 1)] for k, v in summary.rows_by_source.items()]
    console.print(table("Rows by source", ["source", "rows", "share"], share))
    if summary.maps or summary.scenarios:
        mix = [["map", k, v] for k, v in summary.maps.items()]
        mix += [["scenario", k, v] for k, v in summary.scenarios.items()]
        console.print(table("Maps and scenarios", ["kind", "name", "rows"], mix))


@handle_errors
def validate(
    logs: Annotated[Path, typer.Argument(help="A .parquet file or a folder of them.", show_default=False)],
    json_out: JsonOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Check a dataset against the log contract and summarize it (exit 2 with the first problem)."""
    from roadworthy import api
    from roadworthy.data.dataset import scan_logs

    guard_outputs(logs, overwrite, json=json_out)

    with progress(scan_logs(logs).num_rows, f"validating {logs}") as advance:
        result = api.validate(logs, on_rows=advance)
    print_summary(result.summary, result_console(json_out))
    write_json(result.to_json(), json_out)


@collect_app.command("highway")
@handle_errors
def collect_highway(
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="Number of episodes.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the dataset to.")],
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same files.")] = 0,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per core).")] = None,
    duration: Annotated[float, typer.Option(help="Episode time limit, seconds.")] = 30.0,
    autopilot_share: Annotated[float, typer.Option(help="Share of episodes started under autopilot.")] = 0.6,
    overwrite: Annotated[bool, typer.Option(help="Replace a dataset already in --out.")] = False,
    json_out: JsonOpt = None,
) -> None:
    """Simulate human and autopilot driving with takeovers (highway-env) and write it as Parquet."""
    from roadworthy import api

    guard_outputs([], overwrite, json=json_out)  # --out: the collector checks it

    with progress(episodes, "simulating episodes") as advance:
        result = api.collect(
            out,
            episodes,
            seed=seed,
            workers=workers,
            duration=duration,
            autopilot_share=autopilot_share,
            overwrite=overwrite,
            on_episode=lambda rec: advance(1),
        )
    console = result_console(json_out)
    console.print(f"wrote {result.result.rows:,} steps in {result.result.episodes:,} episodes to {out}")
    print_summary(result.summary, console)
    write_json(result.to_json(), json_out)


def print_rollout(report: dict, console: Console) -> None:
    """Readable table of a rollout report."""
    rows = []
    for p in report["policies"]:
        v = p["value"]
        rows.append(
            [
                p["name"],
                v["estimate"],
                v["stderr"],
                p["costs"]["collision"]["estimate"],
                p["costs"]["off_road"]["estimate"],
                p["episode_rates"]["collision_episodes"],
                p["episode_rates"]["off_road_episodes"],
                p["episode_rates"]["mean_speed_mps"],
            ]
        )
    title = (
        f"Closed-loop rollouts: {report['episodes']} episodes per policy, gamma={report['gamma']}, "
        f"seed={report['seed']}"
    )
    cols = ["policy", "value", "± s.e.", "collision cost", "off-road cost", "P(collision)", "P(off-road)", "speed m/s"]
    console.print(table(title, cols, rows))


@rollout_app.command("highway")
@handle_errors
def rollout_highway(
    policy: Annotated[list[Path], typer.Option("--policy", "-p", help="ONNX policy file (repeat for several).")],
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="Episodes per policy.")],
    gamma: Annotated[float, typer.Option(help="Discount factor.")] = 0.99,
    seed: Annotated[int, typer.Option(help="Seed of initial states and policy sampling.")] = 0,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per core).")] = None,
    duration: Annotated[float, typer.Option(help="Episode time limit, seconds.")] = 30.0,
    out: Annotated[Path | None, typer.Option(help="Also write the rollouts as a driving log here.")] = None,
    json_out: JsonOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Monte Carlo value and safety costs of policies driving the embedded simulator."""
    from roadworthy import api

    guard_outputs(policy, overwrite, json=json_out)  # --out: the rollout checks it

    with progress(episodes * len(policy), "rolling out") as advance:
        result = api.rollout(
            policy,
            episodes,
            gamma=gamma,
            seed=seed,
            workers=workers,
            duration=duration,
            out=out,
            overwrite=overwrite,
            on_episode=lambda rec: advance(1),
        )
    print_rollout(result.report, result_console(json_out))
    write_json(result.to_json(), json_out)


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.command("validate")(validate)
    app.add_typer(collect_app, name="collect")
    app.add_typer(rollout_app, name="rollout")
