"""``roadworthy import sgo``: NHTSA Standing General Order crash reports to Parquet.

Reads any number of releases (ADS and level-2 ADAS, any year), places their columns by
meaning (:mod:`roadworthy.data.sgo.columns`), normalises values
(:mod:`roadworthy.data.sgo.normalize`) and writes, atomically, to a folder:

* ``reports.parquet``: the latest version of every report (one row per ``Report ID``);
* ``incidents.parquet``: one row per crash (``Same Incident ID``; a report without one is
  a crash of its own), every reporting entity listed;
* ``report.json``: what was superseded, merged, normalised or dropped, with counts and reasons,
  and where each file's columns were placed.

Company names (entity, operator, maker) are made canonical with the DMV import's key
(:func:`roadworthy.data.dmv.normalize.manufacturer_key`), so ``Waymo LLC.`` and ``Waymo LLC``
are one company here and meet the DMV's ``Waymo LLC`` in ``sgo rates``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from roadworthy.data.csv_reader import read_csv_rows
from roadworthy.data.dmv.importer import canonical_names
from roadworthy.data.dmv.normalize import clean_text, manufacturer_key, parse_number
from roadworthy.data.errors import UsageError
from roadworthy.data.sgo import normalize as nz
from roadworthy.data.sgo.columns import Placement, place_columns
from roadworthy.data.sgo.tables import INCIDENT_SCHEMA, REPORT_SCHEMA, severity_array

#: Incident fields compared across the reports of one crash; disagreements are counted.
COMPARED = ("month", "state", "city", "partner", "roadway_type", "sv_movement", "cp_movement", "operator")


#: Row key -> field (:data:`roadworthy.data.sgo.columns.FIELDS`) of the values read as text as written.
TEXT_FIELDS = {
    "operator_raw": "operator",
    "maker_raw": "make",
    "model": "model",
    "engaged_raw": "engaged",
    "driver_type": "driver_type",
    "city": "city",
    "roadway_type": "roadway_type",
    "roadway_surface": "roadway_surface",
    "roadway_description": "roadway_description",
    "lighting": "lighting",
    "partner": "partner",
    "property_damage": "property_damage",
    "cp_movement": "cp_movement",
    "sv_movement": "sv_movement",
    "sv_airbags": "sv_airbags",
    "cp_airbags": "cp_airbags",
    "within_odd": "within_odd",
}
NUMBER_FIELDS = {"model_year": "model_year", "speed_limit_mph": "speed_limit", "sv_speed_mph": "sv_speed"}
LIST_FIELDS = ("cp_contact", "sv_contact", "weather", "sources", "data_availability")


@dataclass
class ImportReport:
    """What the import superseded, merged, normalised and dropped, with counts and reasons."""

    files: list[dict] = field(default_factory=list)
    superseded: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    normalised: Counter = field(default_factory=Counter)
    disagreements: Counter = field(default_factory=Counter)
    spellings: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "superseded": dict(sorted(self.superseded.items())),
            "dropped": dict(sorted(self.dropped.items())),
            "normalised": dict(sorted(self.normalised.items())),
            "disagreements": {
                "note": "incidents whose reports give different values; the operator's own report wins, "
                "then the latest submitted (severity: the highest any report gives)",
                "fields": dict(sorted(self.disagreements.items())),
            },
            "company_spellings": self.spellings,
        }


def _get(cells: list[str], place: Placement, name: str) -> str:
    i = place.fields.get(name)
    return cells[i] if i is not None and i < len(cells) else ""


def _flags(cells: list[str], place: Placement, group: str) -> list[str]:
    out: list[str] = []
    for i, label in place.flags.get(group, []):
        cell = cells[i] if i < len(cells) else ""
        if label:
            if nz.flag_set(cell):
                out.append(label)
        else:
            out += nz.split_list(cell)
    other = place.other_text.get(group)
    text = nz.value(cells[other]) if other is not None and other < len(cells) else None
    if text and f"Other: {text}" not in out:
        out.append(f"Other: {text}")
    return out


def _roadway(cells: list[str], place: Placement) -> list[str]:
    """Roadway flags, and the surface and description fields where a release has those instead."""
    out = _flags(cells, place, "roadway_conditions")
    for name in ("roadway_surface", "roadway_description"):
        v = nz.value(_get(cells, place, name))
        if v and v not in out:
            out.append(v)
    return out


def read_release(path: Path, report: ImportReport) -> list[dict]:
    """Every row of one release, normalised (all versions; nothing merged yet)."""
    data = read_csv_rows(path, "NHTSA crash report (SGO-2021-01 incident report CSV)")
    place = place_columns(path, data.header)
    rows = []
    for line, cells in data.rows:
        report_id = clean_text(_get(cells, place, "report_id"))
        if not report_id:
            report.dropped["row without a Report ID"] += 1
            continue
        report_type = clean_text(_get(cells, place, "report_type"))
        if "no new" in report_type.casefold():
            # A monthly filing that says "nothing to report": a row, not a crash.
            report.dropped["'No New or Updated Incident Reports' filing (not a crash)"] += 1
            continue
        version_text = _get(cells, place, "report_version")
        version = parse_number(version_text)
        if version is None:
            report.normalised["blank or unreadable Report Version read as 1"] += 1
        rank_text = clean_text(_get(cells, place, "severity"))
        engaged, engaged_system = nz.engaged(_get(cells, place, "engaged"))
        incident_id = nz.value(_get(cells, place, "incident_id"))
        month = nz.parse_month(_get(cells, place, "incident_month"))
        if month is None:
            report.normalised["incident month blank or unreadable (kept, month empty)"] += 1
        state_text = clean_text(_get(cells, place, "state"))
        state = nz.parse_state(state_text)
        if state_text.casefold() in ("unk", "unknown"):
            state = None
            report.normalised["state given as unknown ('UNK'; kept, state empty)"] += 1
        elif state is None and state_text:
            report.normalised["state not a US state code or name (kept, state empty)"] += 1
        narrative = (_get(cells, place, "narrative") or "").strip()
        row = {
            "report_id": report_id,
            "version": int(version) if version is not None else 1,
            "report_type": report_type or None,
            "submitted": nz.parse_month(_get(cells, place, "submitted")),
            "entity_raw": clean_text(_get(cells, place, "entity")) or None,
            "system": nz.system_of(_get(cells, place, "ads_equipped"), path.name, engaged_system),
            "engaged": engaged,
            "engaged_system": engaged_system,
            "incident_id": incident_id,
            "month": month,
            "state": state,
            "severity_rank": nz.severity_rank(rank_text),
            "severity_raw": rank_text or None,
            "roadway_conditions": _roadway(cells, place),
            "narrative": narrative or None,
            "narrative_cbi": nz.flag_set(_get(cells, place, "narrative_cbi")),
            "source_file": path.name,
            "source_row": line,
        }
        row |= {key: nz.value(_get(cells, place, name)) for key, name in TEXT_FIELDS.items()}
        row |= {key: parse_number(_get(cells, place, name)) for key, name in NUMBER_FIELDS.items()}
        row |= {group: _flags(cells, place, group) for group in LIST_FIELDS}
        rows.append(row)
    months = [r["submitted"] for r in rows if r["submitted"]]
    incident_months = [r["month"] for r in rows if r["month"]]
    report.files.append(
        {
            "file": str(path),
            "encoding": data.encoding,
            "rows": len(data.rows),
            "blank_rows": data.blank_rows,
            "submitted_through": max(months, default=None),
            "incidents_from": min(incident_months, default=None),
            "incidents_through": max(incident_months, default=None),
            "columns": place.to_dict([clean_text(h) for h in data.header]),
        }
    )
    return rows


def latest_versions(releases: Sequence[list[dict]], report: ImportReport) -> list[dict]:
    """One row per report: its highest version, from the latest release that holds it.

    Releases are cumulative: a later one repeats earlier reports, sometimes corrected. They
    are ordered by the latest submission month they hold (ties: the order given).
    """
    through = [max((r["submitted"] or "" for r in rel), default="") for rel in releases]
    order = sorted(range(len(releases)), key=lambda i: (through[i], i))
    by_version: dict[tuple[str, int], dict] = {}
    for i in order:
        seen: set[tuple[str, int]] = set()
        for row in releases[i]:
            key = (row["report_id"], row["version"])
            if key in seen:
                report.superseded["the same report version repeated within one file (last row kept)"] += 1
            elif key in by_version:
                report.superseded["a report version also in an earlier release (the later release's copy kept)"] += 1
            seen.add(key)
            by_version[key] = row
    latest: dict[str, dict] = {}
    for (report_id, version), row in by_version.items():
        if report_id not in latest or version > latest[report_id]["version"]:
            latest[report_id] = row
    report.superseded["an earlier version of a report (the latest version kept)"] += len(by_version) - len(latest)
    versions = Counter(rid for rid, _ in by_version)
    had_id = {rid for (rid, _), row in by_version.items() if row["incident_id"]}
    lost = sum(1 for rid, row in latest.items() if row["incident_id"] is None and rid in had_id)
    if lost:
        report.normalised[
            "latest version has no Same Incident ID though an earlier one had (a crash of its own, as the latest says)"
        ] = lost
    for rid, row in latest.items():
        row["versions"] = versions[rid]
    return sorted(latest.values(), key=lambda r: r["report_id"])


def name_companies(reports: list[dict], report: ImportReport) -> None:
    """Canonical entity, operator and maker names, shared across the three roles."""
    roles = ("entity", "operator", "maker")
    records = [{"manufacturer_raw": r[f"{role}_raw"]} for r in reports for role in roles if r[f"{role}_raw"]]
    names = canonical_names(records)
    for r in reports:
        for role in ("entity", "operator", "maker"):
            raw = r[f"{role}_raw"]
            r[role] = names.get(raw) if raw else None
    spellings: dict[str, set] = defaultdict(set)
    for raw, canon in names.items():
        spellings[canon].add(raw)
    report.spellings = {k: sorted(v) for k, v in sorted(spellings.items()) if len(v) > 1}
    report.normalised["company spellings merged (entity, operator and maker names)"] = sum(
        len(v) - 1 for v in report.spellings.values()
    )


def _primary_order(reports: list[dict]) -> list[dict]:
    def key(r: dict) -> tuple:
        own = r["operator"] is not None and r["entity"] == r["operator"]
        # Newest submission first: "YYYY-MM" read as the number YYYYMM, negated.
        newest = -int(r["submitted"].replace("-", "")) if r["submitted"] else 0
        return (not own, newest, -r["version"], r["report_id"])

    return sorted(reports, key=key)


def build_incidents(reports: list[dict], report: ImportReport) -> list[dict]:
    """One row per crash from the latest reports (which gain their ``incident_key``)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in reports:
        r["incident_key"] = r["incident_id"] or f"report:{r['report_id']}"
        groups[r["incident_key"]].append(r)
        if r["incident_id"] is None:
            report.normalised["report without a Same Incident ID (a crash of its own)"] += 1
    incidents = []
    for key, members in groups.items():
        ordered = _primary_order(members)
        first = ordered[0]

        def pick(name: str, ordered: list[dict] = ordered) -> object:
            return next((r[name] for r in ordered if r[name] not in (None, [], "")), None)

        for name in COMPARED:
            if len({r[name] for r in members if r[name] is not None}) > 1:
                report.disagreements[name] += 1
        ranked = [r for r in members if r["severity_rank"] is not None]
        worst = max(ranked, key=lambda r: r["severity_rank"]) if ranked else first
        operator = pick("operator")
        operator_raw = pick("operator_raw")
        entities = sorted({r["entity"] for r in members if r["entity"]})
        if operator is None and len(entities) == 1 and pick("system") == "ADS":
            # ADS fleets report their own crashes; a level-2 car's operator is its owner, not the maker.
            report.normalised["ADS operator blank or redacted: the one reporting entity taken as operator"] += 1
            operator, operator_raw = entities[0], first["entity_raw"]
        rank = worst["severity_rank"]
        month: str | None = pick("month")  # type: ignore[assignment]
        incidents.append(
            {
                "incident_id": key,
                "reports": len(members),
                "report_ids": sorted(r["report_id"] for r in members),
                "entities": entities,
                "entities_raw": sorted({r["entity_raw"] for r in members if r["entity_raw"]}),
                "operator": operator,
                "operator_raw": operator_raw,
                "operator_key": manufacturer_key(operator) if operator else None,
                "maker": pick("maker"),
                "maker_raw": pick("maker_raw"),
                "system": pick("system"),
                "month": month,
                "year": int(month[:4]) if month else None,
                "report_year": nz.report_year_of_month(month),
                "state": pick("state"),
                "city": pick("city"),
                "roadway_type": pick("roadway_type"),
                "partner": pick("partner"),
                "cp_movement": pick("cp_movement"),
                "sv_movement": pick("sv_movement"),
                "cp_contact": pick("cp_contact") or [],
                "sv_contact": pick("sv_contact") or [],
                "sv_speed_mph": pick("sv_speed_mph"),
                "severity_rank": rank,
                "severity_raw": worst["severity_raw"],
                "severe": None if rank is None else rank >= nz.SEVERE_RANK,
                "engaged": pick("engaged"),
                "engaged_system": pick("engaged_system"),
                "driver_type": pick("driver_type"),
                "weather": pick("weather") or [],
                "roadway_conditions": pick("roadway_conditions") or [],
                "narrative": pick("narrative"),
                "narratives": len({r["narrative"] for r in members if r["narrative"]}),
                "narrative_cbi": any(r["narrative_cbi"] for r in members),
            }
        )
    merged = sum(len(m) - 1 for m in groups.values())
    report.normalised["reports merged into the incident another report of the same crash opened"] = merged
    return sorted(incidents, key=lambda i: (i["month"] or "", i["incident_id"]))


def import_sgo(reports: Sequence[str | Path], out: str | Path, *, overwrite: bool = False) -> dict:
    """Read the releases and write ``reports``, ``incidents`` and ``report.json`` to ``out``; the report."""
    from roadworthy.data.writer import guard_output, staging_dir

    if not reports:
        raise UsageError("no crash report file given", "pass one or more SGO-2021-01 incident report CSV files")
    guard_output(out, inputs=list(reports), overwrite=overwrite, folder=True, option="out")
    report = ImportReport()
    releases = [read_release(Path(p), report) for p in reports]
    rows = sum(f["rows"] for f in report.files)
    latest = latest_versions(releases, report)
    name_companies(latest, report)
    incidents = build_incidents(latest, report)
    result = report.to_dict() | {"rows": rows, "reports": len(latest), "incidents": len(incidents)}
    with staging_dir(Path(out), prefix=".sgo-") as tmp:
        reports_table = pa.Table.from_pylist(latest, schema=REPORT_SCHEMA)
        pq.write_table(_with_severity(reports_table), tmp / "reports.parquet")
        incidents_table = pa.Table.from_pylist(incidents, schema=INCIDENT_SCHEMA)
        pq.write_table(_with_severity(incidents_table), tmp / "incidents.parquet")
        (tmp / "report.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result


def _with_severity(table: pa.Table) -> pa.Table:
    """The table with its ordered ``severity`` category, from ``severity_rank``."""
    ranks = table.column("severity_rank").to_pylist()
    at = table.schema.get_field_index("severity_rank")
    return table.add_column(at, "severity", severity_array(ranks))
