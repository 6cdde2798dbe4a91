"""California DMV reports: the real 2023 files against counts made here independently, and the parsers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from roadworthy.cli import app
from roadworthy.data.dmv.normalize import (
    initiator_category,
    location_category,
    manufacturer_key,
    parse_date,
    parse_number,
    report_year,
)
from roadworthy.data.dmv.summary import poisson_interval, summarize
from tests.conftest import SHARED, require_shared

DMV = SHARED / "data" / "dmv"
DIS = [
    "2023-Autonomous-Vehicle-Disengagement-Reports-CSV.csv",
    "2023-Autonomous-Vehicle-Disengagement-Reports-CSV-driverless.csv",
]
MIL = ["2023-Autonomous-Mileage-Reports-CSV.csv", "2023-Autonomous-Mileage-Reports-CSV-driverless.csv"]
runner = CliRunner()


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    for f in DIS + MIL:
        require_shared(DMV / f)
    out = tmp_path_factory.mktemp("dmv") / "out"
    args = ["import", "dmv", *(str(DMV / f) for f in DIS)]
    for f in MIL:
        args += ["--mileage", str(DMV / f)]
    res = runner.invoke(app, [*args, "--out", str(out), "--json", "-"])
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


def _raw_rows(name):
    """Rows of a file counted here without the importer: csv module, Windows-1252, non-blank."""
    text = (DMV / name).read_bytes().decode("cp1252", errors="replace")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return [r for r in rows[1:] if any(c.strip() for c in r)]


def test_event_and_mileage_totals_match_independent_counts(imported):
    out, report = imported
    events = pd.read_parquet(out / "events.parquet")
    assert len(events) == sum(len(_raw_rows(f)) for f in DIS) == report["events"]
    apple = sum(1 for f in DIS for r in _raw_rows(f) if r[0].strip().upper() == "APPLE INC.")
    assert (events["manufacturer"] == "APPLE INC.").sum() == apple
    vehicles = pd.read_parquet(out / "vehicles.parquet")
    mileage_rows = [r for f in MIL for r in _raw_rows(f)]
    assert len(vehicles) == len(mileage_rows)
    # The months' miles, summed here from the raw cells (Dec 2022 - Nov 2023: columns 4-15).
    total = sum(float(c.replace(",", "")) for r in mileage_rows for c in r[4:16] if c.strip())
    assert vehicles["annual_miles"].sum() == pytest.approx(total, rel=1e-9)


def test_every_date_parses_or_is_reported(imported):
    out, report = imported
    events = pd.read_parquet(out / "events.parquet")
    assert events["date"].isna().sum() == report["unparsed_dates_total"]
    dates = pd.to_datetime(events["date"].dropna())
    assert dates.min() >= pd.Timestamp("2022-12-01") and dates.max() <= pd.Timestamp("2023-11-30")
    assert set(events["report_year"].dropna()) == {2023}


def test_a_known_manufacturers_rate(imported):
    out, _ = imported
    groups = {g["manufacturer"]: g for g in summarize(out)["groups"]}
    waymo = groups["Waymo LLC"]
    raw_events = sum(1 for f in DIS for r in _raw_rows(f) if r[0].strip() == "Waymo LLC")
    raw_miles = sum(
        float(c.replace(",", ""))
        for f in MIL
        for r in _raw_rows(f)
        if r[0].strip() == "Waymo LLC"
        for c in r[4:16]
        if c.strip()
    )
    assert waymo["events"] == raw_events and waymo["miles"] == pytest.approx(raw_miles)
    assert waymo["per_1000_miles"] == pytest.approx(1000 * raw_events / raw_miles)
    lo, hi = waymo["ci"]
    assert lo < waymo["per_1000_miles"] < hi
    assert groups["aiMotive Inc."]["per_1000_miles"] > 10 * waymo["per_1000_miles"]


def test_summary_cli_and_groups_without_miles(imported, tmp_path):
    out, _ = imported
    res = runner.invoke(app, ["dmv", "summary", str(out), "--by", "manufacturer,location", "--json", "-"])
    assert res.exit_code == 0, res.output
    groups = json.loads(res.stdout)["groups"]
    assert {"manufacturer", "location", "events", "miles", "per_1000_miles", "ci"} <= set(groups[0])
    assert all(g["per_1000_miles"] is None for g in groups if not g["miles"])
    res = runner.invoke(app, ["dmv", "summary", str(out), "--by", "colour"])
    assert res.exit_code == 2 and "colour" in res.stderr


def test_unreadable_files_exit_2_naming_the_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01binary")
    res = runner.invoke(app, ["import", "dmv", str(bad), "--mileage", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "bad.csv" in res.stderr
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    res = runner.invoke(app, ["import", "dmv", str(wrong), "--mileage", str(wrong), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "wrong.csv" in res.stderr and not (tmp_path / "o").exists()


def test_poisson_interval_is_exact():
    lo, hi = poisson_interval(0)
    assert lo == 0 and hi == pytest.approx(3.6889, abs=1e-4)
    lo, hi = poisson_interval(10)
    assert lo == pytest.approx(4.7954, abs=1e-4) and hi == pytest.approx(18.3904, abs=1e-4)


@given(st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2069, 12, 31)))
def test_every_date_form_round_trips(day):
    forms = [
        day.isoformat(),
        f"{day.month}/{day.day}/{day.year}",
        f"{day.month:02d}/{day.day:02d}/{day.year}",
        f"{day.year}.{day.month:02d}.{day.day:02d}.",
        f"{day.year}.{day.month:02d}.{day.day:02d}. 10:39:23",
        f"{day.isoformat()} 08:00:00",
        day.strftime("%Y%m%d"),
        day.strftime("%d-%b-%Y"),
        day.strftime("%b %d, %Y"),
        str((day - dt.date(1899, 12, 30)).days),
    ]
    for text in forms:
        assert parse_date(text) == day, text
    assert report_year(day) == (day.year + 1 if day.month == 12 else day.year)


@given(st.text(max_size=12))
def test_date_parser_never_raises(text):
    assert parse_date(text) is None or isinstance(parse_date(text), dt.date)


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_numbers_with_thousands_separators(x):
    assert parse_number(f"{x:,.2f}") == pytest.approx(round(x, 2))
    assert parse_number(f" {x:.3f} ") == pytest.approx(round(x, 3))
    assert parse_number("") is None and parse_number("-") is None and parse_number("N/A") is None


def test_categories_and_manufacturer_keys():
    assert manufacturer_key("AIMOTIVE INC.") == manufacturer_key("aiMotive Inc.") == "aimotive"
    assert initiator_category("Test driver, AV system") == "test driver"
    assert initiator_category("AV System") == "av system"
    assert initiator_category("Remote Operator") == "remote operator"
    assert initiator_category("In-field retrieval") == "other"
    assert location_category("Express Way") == "freeway"
    assert location_category("HIghway") == "highway"
    assert location_category("Urban") == "street"
    assert location_category("Parking facility") == "parking"


def test_cause_categories_count_each_distinct_description_once():
    from roadworthy.data.dmv.causes import SEEDS, categorize

    base = [
        "Lidar perception missed a pedestrian crossing",
        "Planner trajectory failed to yield at the intersection",
        "Lane boundary detection lost on a faded line",
        "Brake hardware fault reported by the system",
        "Cyclist cut in front of the vehicle",
        "Safety driver took over as a precaution",
        "Debris on the road in heavy rain",
        "Remote operator requested retrieval at end of route",
        "Camera sensor false positive on a shadow",
        "Steering control error in a sharp turn",
    ]
    once = categorize(base)
    flooded = categorize(base + [base[5]] * 5000)
    assert once["labels"] == flooded["labels"][: len(base)]
    assert set(flooded["labels"]) <= set(SEEDS)
    cats = flooded["categories"]
    assert sum(c["distinct_descriptions"] for c in cats.values()) == len(base)
    assert sum(c["events"] for c in cats.values()) == len(base) + 5000
    assert all(c["top_terms"] and c["examples"] for c in cats.values())


def test_real_descriptions_get_categories(imported):
    out, _ = imported
    events = pd.read_parquet(out / "events.parquet")
    causes = json.loads((out / "causes.json").read_text())
    assert events["cause"].notna().all() and set(events["cause"]) - {"no description"} <= set(causes)
    assert sum(c["events"] for c in causes.values()) == (events["cause"] != "no description").sum()
