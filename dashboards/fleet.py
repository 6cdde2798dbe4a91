"""Fleet reports: pure functions over an imported DMV folder (no Streamlit here).

Rates with exact intervals per manufacturer and year, the split by initiator and location,
cause categories per manufacturer, monthly autonomous miles, and a search over descriptions.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from roadworthy.data.dmv.summary import summarize


def rates(folder: str | Path) -> pd.DataFrame:
    """Per manufacturer and report year: events, miles, rate per 1,000 miles and its interval."""
    rows = summarize(folder, ("manufacturer", "year"))["groups"]
    df = pd.DataFrame(rows)
    df["ci_low"] = [c[0] if c else None for c in df["ci"]]
    df["ci_high"] = [c[1] if c else None for c in df["ci"]]
    return df.drop(columns=["ci"])


def rate_figure(df: pd.DataFrame) -> go.Figure:
    """Disengagements per 1,000 miles with 95 % intervals, log scale (groups with events and miles)."""
    d = df[(df["events"] > 0) & df["per_1000_miles"].notna()].sort_values("per_1000_miles")
    labels = [f"{m} ({y})" for m, y in zip(d["manufacturer"], d["year"], strict=True)]
    fig = go.Figure(
        go.Scatter(
            x=d["per_1000_miles"],
            y=labels,
            mode="markers",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": d["ci_high"] - d["per_1000_miles"],
                "arrayminus": d["per_1000_miles"] - d["ci_low"],
            },
        )
    )
    fig.update_xaxes(type="log", title="disengagements per 1,000 autonomous miles (exact 95 % interval)")
    fig.update_layout(height=max(300, 28 * len(d)), margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def load_events(folder: str | Path) -> pd.DataFrame:
    return pd.read_parquet(Path(folder) / "events.parquet")


def split(events: pd.DataFrame, column: str) -> pd.DataFrame:
    """Share of each manufacturer's disengagements per category of ``column`` (rows: manufacturers)."""
    counts = events.groupby(["manufacturer", column]).size().unstack(fill_value=0)
    return counts.div(counts.sum(axis=1), axis=0).round(3)


def monthly_miles(folder: str | Path) -> pd.DataFrame:
    """Autonomous miles per month and manufacturer (columns: manufacturers)."""
    m = pd.read_parquet(Path(folder) / "vehicle_months.parquet")
    return m.groupby(["month", "manufacturer"])["miles"].sum().unstack(fill_value=0.0).sort_index()


def search(events: pd.DataFrame, text: str, limit: int = 200) -> pd.DataFrame:
    """Events whose description contains ``text`` (case-insensitive, literal)."""
    if not text.strip():
        return events.iloc[0:0]
    hit = events["description"].str.contains(text.strip(), case=False, regex=False, na=False)
    cols = ["manufacturer", "date", "initiator", "location", "cause", "description"]
    return events.loc[hit, cols].head(limit)
