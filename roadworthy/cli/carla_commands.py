"""CARLA commands: ``carla info``, ``import carla``, ``collect carla``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from roadworthy.cli.common import guard_outputs, handle_errors, progress, result_console, table, write_json
from roadworthy.cli.data_commands import JsonOpt, OverwriteOpt, collect_app, print_summary

carla_app = typer.Typer(help="Read CARLA's own files (no server needed).", no_args_is_help=True)
import_app = typer.Typer(help="Convert other formats into driving logs.", no_args_is_help=True)


@carla_app.command("info")
@handle_errors
def carla_info(
    recording: Annotated[Path, typer.Argument(help="A CARLA recorder file (.log).", show_default=False)],
    events: Annotated[
        bool, typer.Option("--events", help="Print the events as CARLA's show_recorder_file_info does.")
    ] = False,
    profile: Annotated[str | None, typer.Option(help="Force a packet profile, e.g. 0.9.13 (default: detect).")] = None,
    json_out: JsonOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Summary of a recorder file: map, frames, duration, actors, heroes, collisions, packets."""
    from roadworthy import api

    guard_outputs(recording, overwrite, json=json_out)
    s = dict(api.carla_info(recording, profile=profile, events=events).info)
    console = result_console(json_out)
    if events:
        console.print(s.pop("text"), markup=False, highlight=False, end="")
    fd = s["frame_duration_s"]
    rows = [
        ["map", s["map"]],
        ["date (UTC)", s["date_utc"]],
        ["CARLA releases (packet profile)", f"{s['releases']} ({s['profile']})"],
        ["frames", s["frames"]],
        ["duration (s)", s["duration_s"]],
        ["frame time min / median / max (s)", f"{fd['min'] or 0:.4f} / {fd['median'] or 0:.4f} / {fd['max'] or 0:.4f}"],
        ["actors created / destroyed", f"{s['actors_created']} / {s['actors_destroyed']}"],
        ["actors by type", ", ".join(f"{k} {v}" for k, v in s["actors_by_type"].items())],
        ["heroes", ", ".join(f"{h['id']} {h['blueprint']}" for h in s["heroes"]) or "none"],
        ["collisions", len(s["collisions"])],
        ["unknown packets skipped", sum(s["unknown_packets"].values())],
    ]
    console.print(table(f"CARLA recording: {recording}", ["", "value"], rows))
    write_json(s, json_out)


@import_app.command("carla")
@handle_errors
def import_carla(
    recording: Annotated[Path, typer.Argument(help="A CARLA recorder file (.log).", show_default=False)],
    map_path: Annotated[Path, typer.Option("--map", help="The town's OpenDRIVE file (.xodr).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the dataset to.")],
    hero: Annotated[str | None, typer.Option(help="Hero actor: an id or a role name (default: role 'hero').")] = None,
    source: Annotated[str, typer.Option(help="Who drove the hero: autopilot or human.")] = "autopilot",
    overwrite: Annotated[bool, typer.Option(help="Replace a dataset already in --out.")] = False,
    json_out: JsonOpt = None,
) -> None:
    """Convert a CARLA recording into a contract-v1 driving log of its hero (plus the map's lanes)."""
    from roadworthy import api

    guard_outputs([recording, map_path], overwrite, json=json_out)  # --out: api.import_carla checks it
    result = api.import_carla(recording, map_path, out, hero=hero, source=source, overwrite=overwrite)
    console = result_console(json_out)
    console.print(
        f"wrote {result.result.rows} rows of hero {result.result.hero} to {out} "
        f"({result.result.skipped_frames} frame(s) without the hero skipped)"
    )
    print_summary(result.summary, console)
    write_json(result.to_json(), json_out)


@collect_app.command("carla")
@handle_errors
def collect_carla(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the dataset to.")],
    host: Annotated[str, typer.Option(help="CARLA server host.")] = "localhost",
    port: Annotated[int, typer.Option(help="CARLA server port.")] = 2000,
    town: Annotated[str, typer.Option(help="Map to drive on.")] = "Town01",
    episodes: Annotated[int, typer.Option("--episodes", "-n", help="Number of episodes.")] = 1,
    duration: Annotated[float, typer.Option(help="Seconds of simulation per episode.")] = 60.0,
    traffic: Annotated[int, typer.Option(help="Traffic Manager vehicles around the hero.")] = 30,
    human: Annotated[bool, typer.Option("--human", help="A human drives (pygame window; T takes over).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of spawn points and traffic.")] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 10.0,
    json_out: JsonOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Drive a running CARLA server (synchronous mode) and log the hero, with CARLA's recorder alongside."""
    from roadworthy import api

    guard_outputs([], overwrite, json=json_out)  # --out: the collector checks it
    with progress(api.collect_carla_steps(duration, episodes), f"driving {town}") as advance:
        result = api.collect_carla(
            out,
            host=host,
            port=port,
            town=town,
            episodes=episodes,
            duration=duration,
            traffic=traffic,
            human=human,
            seed=seed,
            timeout=timeout,
            overwrite=overwrite,
            on_tick=lambda i: advance(1),
        )
    result_console(json_out).print(f"wrote {result.result['rows']} rows in {episodes} episode(s) to {out}")
    write_json(result.to_json(), json_out)


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.add_typer(carla_app, name="carla")
    app.add_typer(import_app, name="import")
