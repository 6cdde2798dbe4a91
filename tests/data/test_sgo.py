"""NHTSA crash reports: the three real releases against counts made here independently, a renamed
release, hostile files, and the value parsers."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from roadworthy.cli import app
from roadworthy.data.dmv.normalize import manufacturer_key
from roadworthy.data.sgo import normalize as nz
from roadworthy.data.sgo.columns import header_key
from roadworthy.data.sgo.summary import binomial_interval
from tests.conftest import SHARED, require_shared

SGO = SHARED / "data" / "sgo"
FILES = {
    "ads-2023": "SGO-2021-01_Incident_Reports_ADS-2023-01.csv",
    "ads-2024": "SGO-2021-01_Incident_Reports_ADS-2024-08.csv",
    "adas-2023": "SGO-2021-01_Incident_Reports_ADAS-2023-01.csv",
}
runner = CliRunner()


def shared(name: str) -> Path:
    return require_shared(SGO / FILES[name])


def import_cli(paths, out: Path, *extra: str):
    return runner.invoke(app, ["import", "sgo", *(str(p) for p in paths), "--out", str(out), *extra])


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Path]:
    """Each release imported alone through the command line, and all three together."""
    root = tmp_path_factory.mktemp("sgo")
    out = {}
    for name in FILES:
        res = import_cli([shared(name)], root / name, "--json", str(root / f"{name}.json"))
        assert res.exit_code == 0, res.output
        out[name] = root / name
    res = import_cli([shared(n) for n in FILES], root / "all")
    assert res.exit_code == 0, res.output
    out["all"] = root / "all"
    return out


def independent_counts(paths: list[Path]) -> tuple[dict, dict, set]:
    """Distinct crashes per reporting entity and per state, and all of them, counted with csv alone.

    The rule of the issue: the latest version of each report; crashes are distinct Same
    Incident IDs, a report without one a crash of its own. Rows of the filing type "No New or
    Updated Incident Reports" say there is nothing to report: they are not crashes.
    """
    latest: dict[str, tuple[int, dict]] = {}
    for path in paths:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                if "No New" in row["Report Type"]:
                    continue
                rid, version = row["Report ID"].strip(), int(row["Report Version"])
                if rid not in latest or version >= latest[rid][0]:
                    latest[rid] = (version, row)
    by_entity, by_state, every = defaultdict(set), defaultdict(set), set()
    for rid, (_, row) in latest.items():
        crash = row["Same Incident ID"].strip() or f"own:{rid}"
        state = row["State"].strip()
        every.add(crash)
        by_entity[row["Reporting Entity"].strip()].add(crash)
        by_state[None if state in ("", "UNK") else state].add(crash)
    return {k: len(v) for k, v in by_entity.items()}, {k: len(v) for k, v in by_state.items()}, every


def summary_json(folder: Path, by: str, tmp_path: Path) -> dict:
    out = tmp_path / f"summary-{by}.json"
    res = runner.invoke(app, ["sgo", "summary", str(folder), "--by", by, "--json", str(out)])
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


@pytest.mark.parametrize("name", [*FILES, "all"])
def test_crash_counts_per_entity_state_and_total_match_an_independent_count(imported, name, tmp_path):
    paths = [shared(n) for n in FILES] if name == "all" else [shared(name)]
    entities, states, every = independent_counts(paths)
    incidents = pd.read_parquet(imported[name] / "incidents.parquet")
    assert len(incidents) == len(every) == incidents["incident_id"].nunique()
    by_entity = summary_json(imported[name], "entity", tmp_path)
    assert {g["entity"]: g["incidents"] for g in by_entity["groups"]} == entities
    by_state = summary_json(imported[name], "state", tmp_path)
    assert {g["state"]: g["incidents"] for g in by_state["groups"]} == states
    assert by_state["incidents"] == len(every)
    assert sum(g["share"] for g in by_state["groups"]) == pytest.approx(1.0)


def test_the_reports_table_holds_the_latest_version_of_every_report(imported):
    reports = pd.read_parquet(imported["ads-2024"] / "reports.parquet")
    raw = pd.read_csv(shared("ads-2024"), dtype=str, keep_default_na=False)
    raw = raw[~raw["Report Type"].str.contains("No New")]
    latest = raw.assign(v=raw["Report Version"].astype(int)).groupby("Report ID")["v"].max()
    assert reports["report_id"].is_unique
    assert reports.set_index("report_id")["version"].to_dict() == latest.to_dict()
    assert (reports["versions"] >= 1).all() and (reports["versions"] <= reports["version"]).all()


def test_import_report_says_what_was_superseded_merged_and_dropped(imported, tmp_path):
    report = json.loads((imported["ads-2024"].parent / "ads-2024.json").read_text())
    raw = pd.read_csv(shared("ads-2024"), dtype=str, keep_default_na=False)
    crashes = raw[~raw["Report Type"].str.contains("No New")]
    assert report["rows"] == len(raw) == 1193
    assert report["reports"] == crashes["Report ID"].nunique()
    superseded = report["superseded"]["an earlier version of a report (the latest version kept)"]
    assert superseded == len(crashes) - crashes["Report ID"].nunique()
    assert report["dropped"] == {"'No New or Updated Incident Reports' filing (not a crash)": 3}
    assert report["normalised"]["reports merged into the incident another report of the same crash opened"] > 300
    assert "Waymo LLC" in report["company_spellings"]  # "Waymo LLC." and "Waymo LLC"
    placed = report["files"][0]["columns"]
    assert placed["fields"]["severity"] == "Highest Injury Severity Alleged"
    assert placed["unplaced_columns"] == []
    # Two cumulative releases: the earlier one's copies are superseded, crashes are not doubled.
    both = runner.invoke(app, ["import", "sgo", str(shared("ads-2023")), str(shared("ads-2024")), "--out",
                               str(tmp_path / "both"), "--json", "-"])  # fmt: skip
    assert both.exit_code == 0, both.output
    merged = json.loads(both.stdout)
    later = raw[~raw["Report Type"].str.contains("No New")]
    earlier = pd.read_csv(shared("ads-2023"), dtype=str, keep_default_na=False)
    key = ["Report ID", "Report Version"]
    again = len(earlier.merge(later[key], on=key))
    assert merged["superseded"]["a report version also in an earlier release (the later release's copy kept)"] == again
    assert merged["incidents"] == report["incidents"]


def test_one_crash_reported_by_operator_and_maker_is_one_incident_with_canonical_names(imported):
    inc = pd.read_parquet(imported["ads-2024"] / "incidents.parquet")
    both = inc[[set(e) == {"Cruise LLC", "General Motors, LLC"} for e in inc["entities_raw"]]]
    assert len(both) > 100
    assert set(both["operator"]) == {"Cruise LLC"}
    # The DMV's spelling of the same company meets it by the same key.
    assert set(both["operator_key"]) == {manufacturer_key("CRUISE LLC")}
    reports = pd.read_parquet(imported["ads-2024"] / "reports.parquet")
    waymo = reports[reports["operator"] == "Waymo LLC"]
    assert {"Waymo LLC.", "Waymo LLC"} <= set(waymo["operator_raw"])  # spellings merged, as written kept
    row = inc[inc["incident_id"] == "8cb088f47f347b4"].iloc[0]  # a crash filed 8 times (2 entities x 4 versions)
    assert row["reports"] == 2 and row["severity"] == "Serious" and bool(row["severe"])
    assert inc["severity"].cat.ordered and list(inc["severity"].cat.categories) == list(nz.SEVERITIES)


def test_lists_flags_and_narratives(imported):
    inc = pd.read_parquet(imported["ads-2024"] / "incidents.parquet")
    assert all(isinstance(w, (list, tuple)) or hasattr(w, "__len__") for w in inc["weather"])
    assert sum("Clear" in list(w) for w in inc["weather"]) > 400
    assert sum("Rear" in list(c) for c in inc["sv_contact"]) > 50
    assert sum("Wet" in list(c) for c in inc["roadway_conditions"]) > 10
    assert sum("Work Zone" in list(c) for c in inc["roadway_conditions"]) > 5
    assert any("[XXX]" in (n or "") for n in inc["narrative"])  # redactions kept as written
    assert inc["month"].str.fullmatch(r"\d{4}-\d{2}").all()
    assert set(inc["system"]) == {"ADS"}
    adas = pd.read_parquet(imported["adas-2023"] / "incidents.parquet")
    assert (adas["system"] == "ADAS").mean() > 0.95


# 2025-style release: renamed columns, one-hot flags regrouped into list columns.
RENAMES = {
    "Reporting Entity": "Reporting Entity Name",
    "Same Incident ID": "Same Incident ID (Mult. Reporting Entities)",
    "Incident Date": "Incident Month-Year",
    "State": "Incident State",
    "City": "Incident City",
    "Highest Injury Severity Alleged": "Highest Injury Severity (Alleged)",
    "Crash With": "Crash Partner Type",
    "CP Pre-Crash Movement": "Crash Partner Pre-Crash Movement",
    "SV Pre-Crash Movement": "Subject Vehicle Pre-Crash Movement",
    "SV Precrash Speed (MPH)": "Subject Vehicle Pre-Crash Speed (MPH)",
    "Automation System Engaged?": "ADS/ADAS Engaged at Time of Crash?",
    "Driver / Operator Type": "Driver/Operator Type",
    "Operating Entity": "Operating Entity Name",
    "Make": "Vehicle Make",
    "Narrative": "Incident Narrative",
}


def renamed_release(src: Path, dest: Path, renames: dict[str, str] = RENAMES) -> Path:
    """The release rewritten as the 2025 amendment did: renamed headers, weather and SV contact areas regrouped."""
    with src.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    groups = {"Weather - ": "Weather Conditions", "SV Contact Area - ": "Subject Vehicle Contact Areas"}
    out_rows = []
    for row in rows:
        new = {}
        lists: dict[str, list[str]] = defaultdict(list)
        for col, val in row.items():
            prefix = next((p for p in groups if col.startswith(p) and not col.endswith("Other Text")), None)
            if prefix:
                if val.strip() == "Y":
                    lists[groups[prefix]].append(col[len(prefix) :])
                continue
            if col.startswith("CP Contact Area - "):
                col = "Crash Partner Contact Area - " + col[len("CP Contact Area - ") :]
            new[renames.get(col, col)] = val
        for name in groups.values():
            new[name] = "; ".join(lists[name])
        out_rows.append(new)
    with dest.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(out_rows[0]))
        w.writeheader()
        w.writerows(out_rows)
    return dest


def test_a_release_with_renamed_and_regrouped_columns_imports_the_same(imported, tmp_path):
    src = renamed_release(shared("ads-2024"), tmp_path / "SGO-2021-01_Incident_Reports_ADS-2025-renamed.csv")
    res = import_cli([src], tmp_path / "renamed", "--json", "-")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["files"][0]["columns"]["unplaced_columns"] == []
    cols = ["incident_id", "operator", "state", "month", "severity", "partner", "sv_movement", "cp_movement"]
    a = pd.read_parquet(imported["ads-2024"] / "incidents.parquet").set_index("incident_id")
    b = pd.read_parquet(tmp_path / "renamed" / "incidents.parquet").set_index("incident_id")
    assert a.index.equals(b.index)
    pd.testing.assert_frame_equal(a[cols[1:]].astype(object), b[cols[1:]].astype(object))
    for col in ("weather", "sv_contact", "cp_contact", "entities_raw"):
        assert [sorted(x) for x in a[col]] == [sorted(x) for x in b[col]], col


def test_a_release_whose_key_columns_cannot_be_placed_exits_2_naming_them(tmp_path):
    renames = {"Same Incident ID": "Crash Group Key", "State": "Jurisdiction"}
    src = renamed_release(shared("ads-2024"), tmp_path / "odd.csv", renames)
    out = tmp_path / "out"
    res = import_cli([src], out)
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "incident_id, state" in text and "'Crash Group Key'" in text and "'Jurisdiction'" in text
    assert str(src) in text
    assert not out.exists()


@pytest.mark.parametrize(
    "kind",
    ["empty", "header only", "wrong csv", "binary", "duplicate headers", "not csv"],
)
def test_hostile_files_exit_2_with_nothing_written(kind, tmp_path):
    bad = tmp_path / "bad.csv"
    header = open(shared("ads-2024"), encoding="utf-8-sig").readline()
    if kind == "empty":
        bad.write_bytes(b"")
    elif kind == "header only":
        bad.write_text("a,b,c\n")
    elif kind == "wrong csv":
        require_shared(SHARED / "data" / "dmv")
        bad.write_bytes((SHARED / "data" / "dmv" / "2023-Autonomous-Mileage-Reports-CSV.csv").read_bytes())
    elif kind == "binary":
        bad.write_bytes(b"PK\x03\x04\x00\x00" + bytes(range(256)) * 20)
    elif kind == "duplicate headers":
        bad.write_text(header.rstrip("\r\n") + ",State\n" + "x," * header.count(",") + "x,CA\n")
    else:
        bad.write_text('Report ID,"unclosed\n1,2\n')
    out = tmp_path / "out"
    res = import_cli([bad], out, "--json", str(tmp_path / "r.json"))
    assert res.exit_code == 2, res.output
    assert str(bad) in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert not out.exists() and not (tmp_path / "r.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"]


def test_existing_output_needs_overwrite_and_an_input_is_never_an_output(imported, tmp_path):
    res = import_cli([shared("ads-2023")], imported["ads-2023"])
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = import_cli([shared("ads-2023")], imported["ads-2023"], "--overwrite")
    assert res.exit_code == 0, res.output
    res = import_cli([shared("ads-2023")], SGO)
    assert res.exit_code == 2


def test_summary_json_has_the_contract_shape_and_exact_intervals(imported, tmp_path):
    res = summary_json(imported["all"], "operator,year", tmp_path)
    assert res["by"] == ["operator", "year"]
    g = res["groups"][0]
    assert {"operator", "year", "incidents", "share", "severe", "ci"} <= set(g)
    for g in res["groups"]:
        assert g["ci"][0] <= g["share"] <= g["ci"][1]
        assert 0 <= g["severe"] <= g["incidents"]
    bad = runner.invoke(app, ["sgo", "summary", str(imported["all"]), "--by", "colour"])
    assert bad.exit_code == 2 and "colour" in bad.output


def test_clopper_pearson_interval_matches_closed_forms():
    # k = 0: upper bound 1 - (alpha/2)^(1/n); k = n: lower bound (alpha/2)^(1/n).
    assert binomial_interval(0, 10) == (0.0, pytest.approx(1 - 0.025 ** (1 / 10)))
    assert binomial_interval(10, 10) == (pytest.approx(0.025 ** (1 / 10)), 1.0)
    lo, hi = binomial_interval(5, 10)
    assert lo == pytest.approx(0.187086, abs=1e-5) and hi == pytest.approx(0.812914, abs=1e-5)


@pytest.mark.parametrize(
    ("text", "month"),
    [("AUG-2023", "2023-08"), ("Aug 2023", "2023-08"), ("August 2023", "2023-08"), ("2023-08", "2023-08"),
     ("08/2023", "2023-08"), ("8/14/2023", "2023-08"), ("2023-08-14", "2023-08"), ("", None), ("soon", None),
     ("13/2023", None)],
)  # fmt: skip
def test_parse_month(text, month):
    assert nz.parse_month(text) == month


def test_value_parsers():
    ranks = [nz.severity_rank(s) for s in ("No Injuries Reported", "Minor", "Moderate", "Serious", "Fatality")]
    assert ranks == [0, 1, 2, 3, 4]
    assert nz.severity_rank("Minor W/ Hospitalization") == 1 and nz.severity_rank("Unknown") is None
    assert nz.parse_state("CA ") == "CA" and nz.parse_state("California") == "CA" and nz.parse_state("UNK") is None
    assert nz.engaged("ADS") == (True, "ADS") and nz.engaged("Unknown, see Narrative") == (None, None)
    assert nz.value("[REDACTED, MAY CONTAIN CONFIDENTIAL BUSINESS INFORMATION]") is None
    assert nz.split_list("Clear; Cloudy | [MAY CONTAIN PERSONALLY IDENTIFIABLE INFORMATION]") == ["Clear", "Cloudy"]
    assert nz.report_year_of_month("2022-12") == 2023 and nz.report_year_of_month("2023-11") == 2023
    assert header_key("Latitude  - Unknown") == header_key("Latitude - Unknown")
    assert header_key("SV Pre-crash Speed (MPH)") == header_key("Subject Vehicle Precrash Speed (MPH)")
    assert nz.system_of("", "SGO-2021-01_Incident_Reports_ADAS.csv", None) == "ADAS"


@given(st.integers(2000, 2099), st.integers(1, 12), st.integers(1, 28))
def test_every_month_form_reads_to_the_same_month(year, month, day):
    import calendar

    abbr, name = calendar.month_abbr[month], calendar.month_name[month]
    forms = [f"{abbr.upper()}-{year}", f"{abbr} {year}", f"{name} {year}", f"{year}-{month:02d}",
             f"{month:02d}/{year}", f"{month}/{day}/{year}", f"{year}-{month:02d}-{day:02d}"]  # fmt: skip
    assert {nz.parse_month(f) for f in forms} == {f"{year:04d}-{month:02d}"}
    expected_year = year + 1 if month == 12 else year
    assert nz.report_year_of_month(nz.parse_month(forms[0])) == expected_year


def test_the_api_returns_typed_results(tmp_path):
    import roadworthy

    res = roadworthy.import_sgo([shared("ads-2023")], tmp_path / "out")
    assert res.incidents == res.to_json()["incidents"] > 100
    assert "crashes from" in repr(res)
    summary = roadworthy.sgo_summary(tmp_path / "out", ["state"])
    assert summary.by == ("state",) and sum(g["incidents"] for g in summary.groups) == res.incidents
