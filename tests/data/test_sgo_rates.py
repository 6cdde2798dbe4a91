"""Crash rates: the real August 2024 release against the real 2023 DMV mileage, counted independently."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from roadworthy.cli import app
from roadworthy.data.dmv.summary import poisson_interval
from tests.conftest import SHARED, require_shared

SGO = SHARED / "data" / "sgo"
DMV = SHARED / "data" / "dmv"
runner = CliRunner()
MONTHS = ["DEC-2022", *(f"{m}-2023" for m in "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV".split())]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("rates")
    kinds = ("", "-driverless")
    dis = [require_shared(DMV / f"2023-Autonomous-Vehicle-Disengagement-Reports-CSV{s}.csv") for s in kinds]
    mil = [require_shared(DMV / f"2023-Autonomous-Mileage-Reports-CSV{s}.csv") for s in kinds]
    args = ["import", "dmv", *map(str, dis)]
    for m in mil:
        args += ["--mileage", str(m)]
    assert runner.invoke(app, [*args, "--out", str(root / "dmv")]).exit_code == 0
    out = {"dmv": root / "dmv"}
    # A release that ends in May 2023, inside the DMV's 2023 report year.
    full = require_shared(SGO / "SGO-2021-01_Incident_Reports_ADS-2024-08.csv")
    raw = pd.read_csv(full, dtype=str, keep_default_na=False)
    month = pd.to_datetime(raw["Incident Date"], format="%b-%Y", errors="coerce")
    raw[month <= "2023-05-01"].to_csv(root / "SGO-2021-01_Incident_Reports_ADS-2023-06.csv", index=False)
    for name in ("ADS-2024-08", "ADS-2023-01", "ADS-2023-06"):
        src = SGO / f"SGO-2021-01_Incident_Reports_{name}.csv"
        src = src if name != "ADS-2023-06" else root / src.name
        res = runner.invoke(app, ["import", "sgo", str(src), "--out", str(root / name)])
        assert res.exit_code == 0, res.output
        out[name] = root / name
    return out


def independent_ca_crashes(operator_prefix: str, months: list[str]) -> int:
    """Distinct California crashes of one operator in the given months, from the CSV alone."""
    raw = pd.read_csv(SGO / "SGO-2021-01_Incident_Reports_ADS-2024-08.csv", dtype=str, keep_default_na=False)
    raw = raw[~raw["Report Type"].str.contains("No New")]
    raw = raw.assign(v=raw["Report Version"].astype(int)).sort_values("v").groupby("Report ID").tail(1)
    mine = raw[
        (raw["State"].str.strip() == "CA")
        & raw["Operating Entity"].str.casefold().str.startswith(operator_prefix)
        & raw["Incident Date"].isin(months)
    ]
    ids = mine["Same Incident ID"].str.strip()
    return ids[ids != ""].nunique() + int((ids == "").sum())


def independent_miles(prefix: str) -> tuple[float, float]:
    """(all, driverless-permit) autonomous miles of a DMV company in 2023, from the mileage CSVs alone."""
    total = driverless = 0.0
    for suffix in ("", "-driverless"):
        raw = pd.read_csv(DMV / f"2023-Autonomous-Mileage-Reports-CSV{suffix}.csv", dtype=str, encoding="cp1252")
        rows = raw[raw.iloc[:, 0].fillna("").str.casefold().str.startswith(prefix)]
        months = rows.iloc[:, 4:16].replace(",", "", regex=True).astype(float).fillna(0).to_numpy().sum()
        total += months
        driverless += months if suffix else 0.0
    return total, driverless


@pytest.mark.parametrize(("company", "prefix"), [("Waymo LLC", "waymo"), ("CRUISE LLC", "cruise")])
def test_waymo_and_cruise_2023_rates_match_independent_counts(folders, company, prefix, tmp_path):
    out = tmp_path / "rates.json"
    args = ["sgo", "rates", str(folders["ADS-2024-08"]), "--dmv", str(folders["dmv"]), "--json", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert company in text and "whoever caused it" in text and "deployment permit" in text
    assert "December to November" in text
    rates = json.loads(out.read_text())
    row = next(r for r in rates["rates"] if r["company"] == company and r["year"] == 2023)
    crashes = independent_ca_crashes(prefix, MONTHS)
    miles, driverless = independent_miles(prefix)
    assert row["incidents"] == crashes > 20
    assert row["complete"] and row["months"] == ["2022-12", "2023-11"]
    assert row["miles"] == pytest.approx(miles, rel=1e-9)
    assert row["driverless_miles"] == pytest.approx(driverless, rel=1e-9) and driverless > 0
    lo, hi = poisson_interval(crashes)
    assert row["per_million_miles"] == pytest.approx(1e6 * crashes / miles)
    assert row["ci"] == pytest.approx([1e6 * lo / miles, 1e6 * hi / miles])
    assert row["ci"][0] < row["per_million_miles"] < row["ci"][1]
    assert row["disengagements_per_1000_miles"] is not None


def test_companies_in_one_source_only_are_listed(folders):
    from roadworthy import sgo_rates

    res = sgo_rates(folders["ADS-2024-08"], folders["dmv"]).to_json()
    listed_sgo = {r["operator"] for r in res["sgo_only"]}
    listed_dmv = {r["company"] for r in res["dmv_only"]}
    rated = {r["company"] for r in res["rates"]}
    assert listed_sgo and listed_dmv and not listed_dmv & rated
    assert res["not_counted"]["california ADS incidents outside the DMV years"] > 0
    assert sgo_rates(folders["ADS-2024-08"], folders["dmv"]).rate("Waymo", 2023)["company"] == "Waymo LLC"


def test_a_release_ending_inside_the_report_year_counts_only_the_covered_months(folders):
    from roadworthy import sgo_rates

    res = sgo_rates(folders["ADS-2023-06"], folders["dmv"]).to_json()
    last = res["crash_reports_cover"][1]
    assert last == "2023-05"
    row = next(r for r in res["rates"] if r["company"] == "Waymo LLC")
    assert row["incidents"] == independent_ca_crashes("waymo", MONTHS[:6])
    assert not row["complete"] and row["months"] == ["2022-12", last]
    months = pd.read_parquet(folders["dmv"] / "vehicle_months.parquet")
    covered = months[(months["manufacturer"] == "Waymo LLC") & months["month"].between("2022-12", last)]
    assert row["miles"] == pytest.approx(covered["miles"].sum())
    assert row["miles"] < row["year_miles"]


def test_a_release_that_ends_before_the_report_year_gives_no_rate(folders):
    from roadworthy import sgo_rates

    res = sgo_rates(folders["ADS-2023-01"], folders["dmv"]).to_json()
    assert res["crash_reports_cover"][1] < "2022-12"
    assert res["rates"] == [] and res["years_not_covered"] == [2023]


def test_rates_refuse_a_folder_that_is_not_a_dmv_import(folders, tmp_path):
    res = runner.invoke(app, ["sgo", "rates", str(folders["ADS-2024-08"]), "--dmv", str(tmp_path)])
    assert res.exit_code == 2 and "--dmv" in res.output
