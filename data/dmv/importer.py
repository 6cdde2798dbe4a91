"""``roadworthy import dmv``: California DMV disengagement and mileage reports to Parquet.

Reads any number of disengagement files (one row per disengagement) and mileage files (one
row per vehicle, autonomous miles by month), finds their columns by what the headers say
(not by exact header text, which changes between years), normalises every field with the
rules of :mod:`roadworthy.data.dmv.normalize`, and writes, atomically, to a folder:

* ``events.parquet``: one row per disengagement;
* ``vehicles.parquet``: one row per vehicle and report year, with annual miles;
* ``vehicle_months.parquet``: autonomous miles per vehicle and month;
* ``report.json``: what was normalised or dropped, with reasons and counts;
* ``causes.json``: the cause categories (:mod:`roadworthy.data.dmv.causes`), with top terms and examples.

Column layouts are in docs/dmv.md.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from roadworthy.data.csv_reader import read_csv_rows
from roadworthy.data.dmv.normalize import (
    clean_text,
    driverless_permit,
    initiator_category,
    location_category,
    manufacturer_key,
    parse_date,
    parse_number,
    parse_yes_no,
    report_year,
)
from roadworthy.data.errors import UsageError

_MONTH_HEADER = re.compile(r"^(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s*(\d{4})$")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

EVENT_FIELDS = {
    "manufacturer": ("manufacturer",),
    "permit": ("permit",),
    "date": ("date",),
    "vin": ("vin",),
    "driverless_capable": ("capable", "without a driver"),
    "driver_present": ("driver present",),
    "initiator": ("initiat",),
    "location": ("location",),
    "description": ("description", "facts"),
}


@dataclass
class Report:
    """What the import normalised and dropped, per file."""

    files: list[dict] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    normalised: Counter = field(default_factory=Counter)
    unparsed_dates: list[dict] = field(default_factory=list)
    manufacturers: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "dropped": dict(sorted(self.dropped.items())),
            "normalised": dict(sorted(self.normalised.items())),
            "unparsed_dates": self.unparsed_dates[:200],
            "unparsed_dates_total": len(self.unparsed_dates),
            "manufacturer_spellings": self.manufacturers,
        }


def read_rows(path: Path, report: Report) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header (cleaned, case-folded) and (line number, cells) of a CSV file; blank rows counted."""
    data = read_csv_rows(path, "DMV report")
    if data.blank_rows:
        report.dropped[f"{path.name}: blank row"] += data.blank_rows
    report.files.append({"file": str(path), "encoding": data.encoding, "rows": len(data.rows)})
    return [clean_text(c).casefold() for c in data.header], data.rows


def _find(header: list[str], keys: Sequence[str], exclude: Sequence[str] = ()) -> int | None:
    for i, h in enumerate(header):
        if any(k in h for k in keys) and not any(x in h for x in exclude):
            return i
    return None


def _cell(cells: list[str], i: int | None) -> str:
    return cells[i] if i is not None and i < len(cells) else ""


def read_events(path: Path, report: Report) -> list[dict]:
    """Rows of one disengagement report, normalised."""
    header, rows = read_rows(path, report)
    cols = {name: _find(header, keys) for name, keys in EVENT_FIELDS.items()}
    missing = [n for n in ("manufacturer", "date", "description") if cols[n] is None]
    if missing:
        raise UsageError(
            f"{path}: no column for {', '.join(missing)} in the header (is it a disengagement report?)",
            "disengagement reports name the manufacturer, date and description; mileage reports go in `mileage`",
        )
    out = []
    for line, cells in rows:
        raw_date = _cell(cells, cols["date"])
        day = parse_date(raw_date)
        maker = clean_text(_cell(cells, cols["manufacturer"]))
        if not maker:
            report.dropped["no manufacturer"] += 1
            continue
        if day is None:
            report.unparsed_dates.append({"file": path.name, "row": line, "text": raw_date})
        initiator_raw = clean_text(_cell(cells, cols["initiator"]))
        location_raw = clean_text(_cell(cells, cols["location"]))
        out.append(
            {
                "manufacturer_raw": maker,
                "permit": clean_text(_cell(cells, cols["permit"])).upper() or None,
                "date": day,
                "report_year": report_year(day) if day else None,
                "vin": clean_text(_cell(cells, cols["vin"])).upper() or None,
                "driverless_capable": parse_yes_no(_cell(cells, cols["driverless_capable"])),
                "driver_present": parse_yes_no(_cell(cells, cols["driver_present"])),
                "initiator": initiator_category(initiator_raw),
                "initiator_raw": initiator_raw,
                "location": location_category(location_raw),
                "location_raw": location_raw,
                "description": clean_text(_cell(cells, cols["description"])),
                "source_file": path.name,
                "source_row": line,
            }
        )
    return out


def read_mileage(path: Path, report: Report) -> tuple[list[dict], list[dict]]:
    """(vehicles, vehicle-months) of one mileage report."""
    header, rows = read_rows(path, report)
    months = []
    for i, h in enumerate(header):
        m = _MONTH_HEADER.match(h)
        if m:
            months.append((i, int(m[2]), _MONTHS.index(m[1][:3]) + 1))
    maker_i, vin_i = _find(header, ("manufacturer",)), _find(header, ("vin",))
    if maker_i is None or vin_i is None or not months:
        raise UsageError(
            f"{path}: no manufacturer, VIN or monthly miles (MON YYYY) columns (is it a mileage report?)",
            "mileage reports list autonomous miles per vehicle and month; disengagement reports come first",
        )
    permit_i = _find(header, ("permit",))
    dis_i = _find(header, ("disengagement",))
    total_i = _find(header, ("annual total", "total"), exclude=("disengagement",))
    vehicles, per_month = [], []
    for line, cells in rows:
        maker = clean_text(_cell(cells, maker_i))
        if not maker:
            report.dropped["no manufacturer"] += 1
            continue
        vin = clean_text(_cell(cells, vin_i)).upper() or None
        permit = clean_text(_cell(cells, permit_i)).upper() or None
        driverless = driverless_permit(permit, path.name)
        miles = []
        for i, year, month in months:
            text = _cell(cells, i)
            value = parse_number(text)
            if value is None and clean_text(text):
                report.normalised["unreadable monthly miles set to null"] += 1
            miles.append(value)
            month_id = f"{year:04d}-{month:02d}"
            row = {"manufacturer_raw": maker, "vin": vin, "month": month_id, "miles": value}
            per_month.append(row | {"driverless_permit": driverless})
        year_of_report = report_year(dt.date(months[0][1], months[0][2], 1))
        stated = parse_number(_cell(cells, total_i))
        summed = sum(m for m in miles if m is not None)
        if stated is not None and abs(stated - summed) > max(1.0, 0.001 * summed):
            report.normalised["annual total differs from the sum of the months (the months are used)"] += 1
        vehicles.append(
            {
                "manufacturer_raw": maker,
                "permit": permit,
                "driverless_permit": driverless,
                "vin": vin,
                "report_year": year_of_report,
                "annual_disengagements": parse_number(_cell(cells, dis_i)),
                "annual_miles": summed,
                "annual_miles_stated": stated,
                "source_file": path.name,
                "source_row": line,
            }
        )
    return vehicles, per_month


def canonical_names(records: Sequence[dict]) -> dict[str, str]:
    """Each spelling's canonical manufacturer name.

    Spellings are the same company when their keys match (case, punctuation and legal forms
    dropped: "AIMOTIVE INC." = "aiMotive Inc.") or when one key is the other's leading words
    ("Nissan" = "Nissan North America"). Permit numbers are not used: the files carry
    typing errors there. Each company is named by its most common spelling.
    """
    counts = Counter(r["manufacturer_raw"] for r in records)
    keys = {raw: manufacturer_key(raw) for raw in counts}
    # Shortest keys first, so that a longer name joins the company its leading words name.
    roots: dict[str, str] = {}
    for key in sorted(set(keys.values()), key=lambda k: (len(k.split()), k)):
        words = key.split()
        root = next((roots[" ".join(words[:n])] for n in range(1, len(words)) if " ".join(words[:n]) in roots), key)
        roots[key] = root
    groups: dict[str, list[str]] = defaultdict(list)
    for raw, key in keys.items():
        groups[roots[key]].append(raw)
    out = {}
    for members in groups.values():
        best = sorted(members, key=lambda m: (-counts[m], m))[0]
        out.update({m: best for m in members})
    return out


def import_dmv(
    disengagements: Sequence[str | Path], mileage: Sequence[str | Path], out: str | Path, *, overwrite: bool = False
) -> dict:
    """Read the reports and write the tables and ``report.json`` to ``out``; the report."""
    from roadworthy.data.writer import guard_output, staging_dir

    if not disengagements:
        raise UsageError("no disengagement report given", "pass one or more DISENGAGEMENTS.csv files")
    guard_output(out, inputs=[*disengagements, *mileage], overwrite=overwrite, folder=True, option="out")
    report = Report()
    events = [e for p in disengagements for e in read_events(Path(p), report)]
    vehicles, months = [], []
    for p in mileage:
        v, m = read_mileage(Path(p), report)
        vehicles += v
        months += m
    from roadworthy.data.dmv.causes import categorize

    causes = categorize([e["description"] for e in events])
    for e, cause in zip(events, causes["labels"], strict=True):
        e["cause"] = cause
    names = canonical_names([*events, *vehicles])
    for r in (*events, *vehicles, *months):
        r["manufacturer"] = names[r["manufacturer_raw"]]
    spellings: dict[str, set] = defaultdict(set)
    for raw, canon in names.items():
        spellings[canon].add(raw)
    report.manufacturers = {k: sorted(v) for k, v in sorted(spellings.items()) if len(v) > 1}
    report.normalised["manufacturer spellings merged"] = sum(len(v) - 1 for v in report.manufacturers.values())
    with staging_dir(Path(out), prefix=".dmv-") as tmp:
        pq.write_table(pa.Table.from_pylist(events, schema=EVENT_SCHEMA), tmp / "events.parquet")
        pq.write_table(pa.Table.from_pylist(vehicles, schema=VEHICLE_SCHEMA), tmp / "vehicles.parquet")
        pq.write_table(pa.Table.from_pylist(months, schema=MONTH_SCHEMA), tmp / "vehicle_months.parquet")
        result = report.to_dict() | {"events": len(events), "vehicles": len(vehicles)}
        (tmp / "report.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
        (tmp / "causes.json").write_text(json.dumps(causes["categories"], indent=1) + "\n")
    return result


EVENT_SCHEMA = pa.schema(
    [
        ("manufacturer", pa.string()),
        ("manufacturer_raw", pa.string()),
        ("permit", pa.string()),
        ("date", pa.date32()),
        ("report_year", pa.int32()),
        ("vin", pa.string()),
        ("driverless_capable", pa.bool_()),
        ("driver_present", pa.bool_()),
        ("initiator", pa.string()),
        ("initiator_raw", pa.string()),
        ("location", pa.string()),
        ("location_raw", pa.string()),
        ("description", pa.string()),
        ("cause", pa.string()),
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
    ]
)
VEHICLE_SCHEMA = pa.schema(
    [
        ("manufacturer", pa.string()),
        ("manufacturer_raw", pa.string()),
        ("permit", pa.string()),
        ("driverless_permit", pa.bool_()),
        ("vin", pa.string()),
        ("report_year", pa.int32()),
        ("annual_disengagements", pa.float64()),
        ("annual_miles", pa.float64()),
        ("annual_miles_stated", pa.float64()),
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
    ]
)
MONTH_SCHEMA = pa.schema(
    [
        ("manufacturer", pa.string()),
        ("manufacturer_raw", pa.string()),
        ("vin", pa.string()),
        ("month", pa.string()),
        ("miles", pa.float64()),
        ("driverless_permit", pa.bool_()),
    ]
)
