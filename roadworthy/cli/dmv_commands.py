"""``roadworthy import dmv`` and ``roadworthy dmv summary``: public disengagement reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from roadworthy.cli.carla_commands import import_app
from roadworthy.cli.common import group_keys, guard_outputs, handle_errors, result_console, table, write_json
from roadworthy.cli.data_commands import JsonOpt, OverwriteOpt

dmv_app = typer.Typer(help="California DMV disengagement reports (import them first).", no_args_is_help=True)


@import_app.command("dmv")
@handle_errors
def import_dmv(
    disengagements: Annotated[list[Path], typer.Argument(help="Disengagement report CSV files.", show_default=False)],
    mileage: Annotated[list[Path], typer.Option("--mileage", help="Mileage report CSV files (repeat).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the tables to.")],
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = None,
) -> None:
    """Read DMV disengagement and mileage reports into Parquet tables, with a report of what was normalised."""
    from roadworthy import api

    guard_outputs([*disengagements, *mileage], overwrite, json=json_out)
    result = api.import_dmv(disengagements, mileage, out, overwrite=overwrite).report
    console = result_console(json_out)
    console.print(f"wrote {result['events']:,} disengagements and {result['vehicles']:,} vehicle-years to {out}")
    rows = [[k, v] for k, v in {**result["dropped"], **result["normalised"]}.items()]
    rows.append(["dates that did not parse (kept, date empty)", result["unparsed_dates_total"]])
    console.print(table("What the import dropped or normalised", ["", "rows"], rows))
    write_json(result, json_out)


@dmv_app.command("summary")
@handle_errors
def summary(
    folder: Annotated[Path, typer.Argument(help="A folder written by `roadworthy import dmv`.", show_default=False)],
    by: Annotated[
        str, typer.Option(help="Group by: manufacturer, year, initiator, location, cause.")
    ] = "manufacturer,year",
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = None,
) -> None:
    """Events, autonomous miles and disengagements per 1,000 miles (exact Poisson 95 % interval) per group."""
    from roadworthy import api

    guard_outputs(folder, overwrite, json=json_out)
    keys = group_keys(by)
    res = api.dmv_summary(folder, keys).summary
    rows = []
    for g in res["groups"]:
        rate = "-" if g["per_1000_miles"] is None else f"{g['per_1000_miles']:.3g} [{g['ci'][0]:.3g}, {g['ci'][1]:.3g}]"
        rows.append(
            [
                *(str(g[k]) for k in keys),
                g["events"],
                g["miles"] if g["miles"] is not None else "no miles",
                rate,
                g["miles_per_event"] if g["miles_per_event"] is not None else "-",
            ]
        )
    cols = [*keys, "events", "autonomous miles", "per 1,000 miles [95 %]", "miles per event"]
    result_console(json_out).print(table(f"Disengagements by {', '.join(keys)} (sorted by miles)", cols, rows))
    write_json(res, json_out)


def register(app: typer.Typer) -> None:
    """Add these commands to the main app (``import dmv`` joins ``import``)."""
    app.add_typer(dmv_app, name="dmv")
