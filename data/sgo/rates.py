"""``roadworthy sgo rates``: California crashes per million autonomous miles, beside disengagements.

Crashes come from the imported NHTSA reports (ADS reports of incidents in California, one
per crash), miles and disengagements from an imported California DMV folder. Companies
meet by the DMV import's company key (:func:`roadworthy.data.dmv.normalize.same_company`):
the crash's operating entity against the DMV manufacturer. Both are counted per DMV report
year (December to November); crash months are whole months, so a crash belongs to exactly
one report year. When the crash reports end (or start) inside a report year, the miles are
taken over the covered months only (the DMV gives miles per month), and the row says so.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from roadworthy.data.dmv.normalize import manufacturer_key, same_company
from roadworthy.data.dmv.summary import load as load_dmv
from roadworthy.data.dmv.summary import poisson_interval
from roadworthy.data.errors import UsageError
from roadworthy.data.sgo.summary import load_incidents

CAVEATS = (
    "Crash reports count every crash the company learned of, whoever caused it (in {stopped}, the vehicle "
    "was stopped or parked). A rate here is exposure to crashes, not fault.",
    "DMV miles are testing miles (with a safety driver and driverless testing permits). Miles driven under a "
    "deployment permit (paid driverless service) are not in the DMV mileage reports, yet their crashes are in "
    "NHTSA's: for companies with a deployment permit the rate is overstated.",
    "Report years run December to November, as the DMV's; NHTSA gives incident months only, so each crash is "
    "placed in the report year of its month. Where the crash reports end or start inside a year, miles are "
    "counted over the covered months only.",
    "Only ADS reports of incidents in California are counted; companies are matched by name (same company key "
    "as the DMV import). A crash reported by several companies counts once, for its operating entity.",
    "Counts are small: read the exact Poisson intervals, not the point rates.",
)


def _month_range(year: int) -> tuple[str, str]:
    return f"{year - 1:04d}-12", f"{year:04d}-11"


def rates(folder: str | Path, dmv: str | Path, confidence: float = 0.95) -> dict:
    """Per DMV company and report year: CA crashes per million autonomous miles and disengagements."""
    incidents = load_incidents(folder)
    tables = ("events.parquet", "vehicles.parquet", "vehicle_months.parquet")
    missing = [t for t in tables if not (Path(dmv) / t).is_file()]
    if missing:
        raise UsageError(f"`dmv` {dmv}: no {', '.join(missing)} there", "give a folder written by import_dmv")
    events, vehicles = load_dmv(dmv)
    months = pd.read_parquet(Path(dmv) / "vehicle_months.parquet")
    if "driverless_permit" not in months:
        months["driverless_permit"] = None  # folders imported before the column existed
    known = incidents["month"].dropna()
    first, last = (known.min(), known.max()) if len(known) else (None, None)
    ca = incidents[incidents["state"] == "CA"]
    ads = ca[ca["system"] == "ADS"]
    years = sorted(int(y) for y in vehicles["year"].dropna().unique())
    sgo_keys = {k for k in incidents["operator_key"].dropna()} | {
        manufacturer_key(e) for es in incidents["entities"] for e in es
    }
    covered = [y for y in years if first and last and first <= _month_range(y)[1] and last >= _month_range(y)[0]]
    rows, dmv_only = [], []
    for company in sorted(vehicles["manufacturer"].dropna().unique()):
        key = manufacturer_key(company)
        mine = ads[[k is not None and same_company(k, key) for k in ads["operator_key"]]]
        in_sgo = any(same_company(k, key) for k in sgo_keys)
        for year in covered:
            lo_m, hi_m = _month_range(year)
            cov_lo = max(lo_m, first) if first else lo_m
            cov_hi = min(hi_m, last) if last else hi_m
            m = months[(months["manufacturer"] == company) & (months["month"] >= cov_lo) & (months["month"] <= cov_hi)]
            miles = float(m["miles"].fillna(0).sum())
            fleet = vehicles[(vehicles["manufacturer"] == company) & (vehicles["year"] == year)]
            year_miles = float(fleet["annual_miles"].sum())
            if year_miles <= 0:
                continue
            if not in_sgo:
                dmv_only.append({"company": company, "year": year, "miles": year_miles})
                continue
            crashes = mine[mine["report_year"] == year]
            driverless = m.loc[m["driverless_permit"].fillna(False).astype(bool), "miles"].fillna(0).sum()
            dis = int(((events["manufacturer"] == company) & (events["year"] == year)).sum())
            k = len(crashes)
            row = {
                "company": company,
                "sgo_operators": sorted(crashes["operator"].dropna().unique().tolist()),
                "year": year,
                "months": [cov_lo, cov_hi] if cov_lo <= cov_hi else None,
                "complete": (cov_lo, cov_hi) == (lo_m, hi_m),
                "incidents": k,
                "severe": int(crashes["severe"].fillna(False).astype(bool).sum()),
                "miles": miles,
                "driverless_miles": float(driverless) if m["driverless_permit"].notna().any() else None,
                "per_million_miles": None,
                "ci": None,
                "disengagements": dis,
                "year_miles": year_miles,
                "disengagements_per_1000_miles": 1000 * dis / year_miles,
                "disengagement_ci": [1000 * v / year_miles for v in poisson_interval(dis, confidence)],
            }
            if miles > 0:
                lo, hi = poisson_interval(k, confidence)
                row |= {"per_million_miles": 1e6 * k / miles, "ci": [1e6 * lo / miles, 1e6 * hi / miles]}
            rows.append(row)
    matched = {op for r in rows for op in r["sgo_operators"]}
    dmv_keys = [manufacturer_key(c) for c in vehicles["manufacturer"].dropna().unique()]
    sgo_only = []
    in_years = ads[ads["report_year"].isin(years)]
    for (op, year), group in in_years.groupby(["operator", "report_year"]):
        if op in matched or any(same_company(manufacturer_key(op), k) for k in dmv_keys):
            continue
        sgo_only.append({"operator": op, "year": int(year), "incidents": len(group)})
    rows.sort(key=lambda r: (-r["year"], -r["incidents"], -r["miles"]))
    return {
        "confidence": confidence,
        "state": "CA",
        "system": "ADS",
        "crash_reports_cover": [first, last],
        "rates": rows,
        "years_not_covered": [y for y in years if y not in covered],
        "sgo_only": sorted(sgo_only, key=lambda r: -r["incidents"]),
        "dmv_only": sorted(dmv_only, key=lambda r: -r["miles"]),
        "not_counted": {
            "california ADAS (level 2) incidents": int((ca["system"] == "ADAS").sum()),
            "california incidents without a month": int(ads["report_year"].isna().sum()),
            "california ADS incidents outside the DMV years": int((~ads["report_year"].isin(years)).sum()),
        },
        "caveats": [CAVEATS[0].format(stopped=_stopped_share(rows, ads)), *CAVEATS[1:]],
    }


def _stopped_share(rows: list[dict], ads: pd.DataFrame) -> str:
    """The share of the counted crashes in which the vehicle was stopped or parked, as text."""
    counted = ads[ads["report_year"].isin({r["year"] for r in rows})]
    counted = counted[counted["operator"].isin({op for r in rows for op in r["sgo_operators"]})]
    if counted.empty:
        return "none of the crashes counted here, as none were"
    moves = counted["sv_movement"].fillna("").str.casefold()
    stopped = moves.str.contains("stopped|parked").sum()
    return f"{stopped:,} of the {len(counted):,} crashes counted here ({100 * stopped / len(counted):.0f} %)"
