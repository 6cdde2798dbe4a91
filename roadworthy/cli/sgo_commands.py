"""``roadworthy import sgo``, ``roadworthy sgo summary`` and ``roadworthy sgo rates``: NHTSA crash reports."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from roadworthy.cli.carla_commands import import_app
from roadworthy.cli.common import group_keys, guard_outputs, handle_errors, result_console, table, write_json
from roadworthy.cli.data_commands import JsonOpt, OverwriteOpt

sgo_app = typer.Typer(help="NHTSA Standing General Order crash reports (import them first).", no_args_is_help=True)


def _num(x: float) -> str:
    """Three significant figures, thousands separated, never in exponent form."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    digits = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:.{digits}f}"


def _interval(x: float | None, ci: list[float] | None, scale: float = 1.0) -> str:
    if x is None or ci is None:
        return "-"
    return f"{_num(scale * x)} [{_num(scale * ci[0])}, {_num(scale * ci[1])}]"


@import_app.command("sgo")
@handle_errors
def import_sgo(
    reports: Annotated[
        list[Path], typer.Argument(help="Incident report CSV files (ADS or ADAS, any release).", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the tables to.")],
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = None,
) -> None:
    """Read NHTSA crash reports into Parquet (reports, incidents), with a report of what was merged or dropped."""
    from roadworthy import api

    guard_outputs(reports, overwrite, json=json_out)
    result = api.import_sgo(reports, out, overwrite=overwrite).report
    console = result_console(json_out)
    console.print(
        f"wrote {result['incidents']:,} crashes (incidents) from {result['reports']:,} reports "
        f"({result['rows']:,} rows read) to {out}"
    )
    rows = [[f"superseded: {k}", v] for k, v in result["superseded"].items()]
    rows += [[f"dropped: {k}", v] for k, v in result["dropped"].items()]
    rows += [[f"normalised: {k}", v] for k, v in result["normalised"].items()]
    rows += [[f"reports disagree on {k}", v] for k, v in result["disagreements"]["fields"].items()]
    console.print(table("What the import superseded, merged, normalised or dropped", ["", "count"], rows))
    for f in result["files"]:
        cols = f["columns"]
        if cols["unplaced_columns"] or cols["fields_not_found"]:
            console.print(
                f"{f['file']}: columns not placed (ignored): {', '.join(cols['unplaced_columns']) or 'none'}; "
                f"fields not found (left empty): {', '.join(cols['fields_not_found']) or 'none'}"
            )
    write_json(result, json_out)


@sgo_app.command("summary")
@handle_errors
def summary(
    folder: Annotated[Path, typer.Argument(help="A folder written by `roadworthy import sgo`.", show_default=False)],
    by: Annotated[
        str,
        typer.Option(
            help="Group by (comma-separated): entity, operator, maker, state, month, year, severity, partner, "
            "movement, partner_movement, roadway, system."
        ),
    ] = "entity",
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = None,
) -> None:
    """Crashes (distinct incidents) per group, their share (exact 95 % interval) and the severe ones."""
    from roadworthy import api

    guard_outputs(folder, overwrite, json=json_out)
    keys = group_keys(by)
    res = api.sgo_summary(folder, keys).summary
    rows = [
        [
            *("(unknown)" if g[k] is None else str(g[k]) for k in keys),
            g["incidents"],
            _interval(g["share"], g["ci"], 100),
            g["severe"],
            _interval(g["severe_share"], g["severe_ci"], 100),
        ]
        for g in res["groups"]
    ]
    cols = [*keys, "crashes", "share % [95 %]", "severe", "severe % of known [95 %]"]
    title = f"{res['incidents']:,} crashes by {', '.join(keys)} (severe: serious or fatal injury)"
    console = result_console(json_out)
    console.print(table(title, cols, rows))
    if "entity" in keys:
        console.print("A crash reported by several entities counts once in each entity's row (shares add past 100 %).")
    write_json(res, json_out)


@sgo_app.command("rates")
@handle_errors
def rates(
    folder: Annotated[Path, typer.Argument(help="A folder written by `roadworthy import sgo`.", show_default=False)],
    dmv: Annotated[Path, typer.Option("--dmv", help="A folder written by `roadworthy import dmv` (the miles).")],
    overwrite: OverwriteOpt = False,
    json_out: JsonOpt = None,
) -> None:
    """California crashes per million autonomous miles (exact Poisson 95 %), beside disengagements per 1,000 miles."""
    from roadworthy import api

    guard_outputs([folder, dmv], overwrite, json=json_out)
    res = api.sgo_rates(folder, dmv).rates
    console = result_console(json_out)
    rows = []
    for r in res["rates"]:
        months = "-" if r["months"] is None else f"{r['months'][0]} to {r['months'][1]}"
        driverless = "-" if r["driverless_miles"] is None else f"{r['driverless_miles']:,.0f}"
        rows.append(
            [
                r["company"],
                str(r["year"]),
                months + ("" if r["complete"] else " (partial)"),
                r["incidents"],
                r["severe"],
                f"{r['miles']:,.0f}",
                driverless,
                _interval(r["per_million_miles"], r["ci"]),
                _interval(r["disengagements_per_1000_miles"], r["disengagement_ci"]),
            ]
        )
    cols = [
        "company (DMV)",
        "report year",
        "months",
        "CA crashes",
        "severe",
        "autonomous miles",
        "of which driverless",
        "crashes per million miles [95 %]",
        "disengagements per 1,000 miles [95 %]",
    ]
    cover = res["crash_reports_cover"]
    title = f"California ADS crashes per million autonomous miles (crash reports cover {cover[0]} to {cover[1]})"
    console.print(table(title, cols, rows))
    if res["sgo_only"]:
        listed = "; ".join(f"{r['operator']} {r['year']}: {r['incidents']:,}" for r in res["sgo_only"])
        console.print(f"In the crash reports, with no DMV miles (no rate): {listed}")
    if res["dmv_only"]:
        listed = "; ".join(f"{r['company']} {r['year']}: {r['miles']:,.0f} mi" for r in res["dmv_only"])
        console.print(f"DMV miles, never named in the crash reports (no rate): {listed}")
    if res["years_not_covered"]:
        gap = ", ".join(map(str, res["years_not_covered"]))
        console.print(f"DMV report years the crash reports do not reach (no rate): {gap}")
    skipped = "; ".join(f"{k}: {v:,}" for k, v in res["not_counted"].items() if v)
    if skipped:
        console.print(f"Not counted: {skipped}")
    console.print("Caveats:")
    for i, c in enumerate(res["caveats"], 1):
        console.print(f"  {i}. {c}")
    write_json(res, json_out)


def register(app: typer.Typer) -> None:
    """Add these commands to the main app (``import sgo`` joins ``import``)."""
    app.add_typer(sgo_app, name="sgo")
