"""Crash reports: pure functions over an imported NHTSA folder (no Streamlit here).

Incidents over time per company, breakdowns by crash partner, movement and severity, a
map by state (a tile grid, one square per state, so it draws offline), crash rates with
exact intervals beside the DMV disengagement rates, and a search over narratives.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from roadworthy.data.sgo.summary import load_incidents

#: (row, column) of each state on a tile-grid map of the United States (DC beside Maryland).
STATE_TILES = {
    "AK": (0, 0), "ME": (0, 10),
    "WI": (1, 5), "VT": (1, 9), "NH": (1, 10),
    "WA": (2, 0), "ID": (2, 1), "MT": (2, 2), "ND": (2, 3), "MN": (2, 4), "IL": (2, 5), "MI": (2, 6),
    "NY": (2, 8), "MA": (2, 9),
    "OR": (3, 0), "NV": (3, 1), "WY": (3, 2), "SD": (3, 3), "IA": (3, 4), "IN": (3, 5), "OH": (3, 6),
    "PA": (3, 7), "NJ": (3, 8), "CT": (3, 9), "RI": (3, 10),
    "CA": (4, 0), "UT": (4, 1), "CO": (4, 2), "NE": (4, 3), "MO": (4, 4), "KY": (4, 5), "WV": (4, 6),
    "VA": (4, 7), "MD": (4, 8), "DE": (4, 9),
    "AZ": (5, 1), "NM": (5, 2), "KS": (5, 3), "AR": (5, 4), "TN": (5, 5), "NC": (5, 6), "SC": (5, 7),
    "DC": (5, 8),
    "OK": (6, 3), "LA": (6, 4), "MS": (6, 5), "AL": (6, 6), "GA": (6, 7),
    "HI": (7, 0), "TX": (7, 3), "FL": (7, 8), "PR": (7, 10),
}  # fmt: skip


def load(folder: str | Path) -> pd.DataFrame:
    """The incidents table, with the severity as text (for tables and filters)."""
    inc = load_incidents(folder)
    inc["severity"] = inc["severity"].astype(object).where(inc["severity"].notna(), "Unknown")
    # Level-2 crashes have no operating company (the owner drives): they are shown under the reporting maker.
    first_entity = [e[0] if len(e) else None for e in inc["entities"]]
    inc["company"] = inc["operator"].where(inc["operator"].notna(), pd.Series(first_entity, index=inc.index))
    return inc


def top_operators(inc: pd.DataFrame, n: int = 6) -> list[str]:
    """The ``n`` companies with the most crashes (operator, else the reporting entity)."""
    return inc["company"].value_counts().head(n).index.tolist()


def over_time(inc: pd.DataFrame, top: int = 6) -> pd.DataFrame:
    """Crashes per incident month and operator (columns: the ``top`` operators and "other")."""
    keep = set(top_operators(inc, top))
    who = inc["company"].where(inc["company"].isin(keep), "other").fillna("other")
    table = inc.assign(who=who).dropna(subset=["month"]).groupby(["month", "who"]).size().unstack(fill_value=0)
    return table.sort_index()


def over_time_figure(table: pd.DataFrame) -> go.Figure:
    fig = go.Figure([go.Bar(x=table.index, y=table[c], name=str(c)) for c in table.columns])
    fig.update_layout(
        barmode="stack", height=360, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"}
    )
    fig.update_yaxes(title="crashes (distinct incidents) per month")
    return fig


def breakdown(inc: pd.DataFrame, column: str, top: int = 6) -> pd.DataFrame:
    """Share of each top company's crashes per value of ``column`` (rows: companies)."""
    keep = top_operators(inc, top)
    d = inc[inc["company"].isin(keep)]
    values = d[column].astype(object).where(d[column].notna(), "(blank)")
    counts = d.assign(v=values).groupby(["company", "v"]).size().unstack(fill_value=0)
    counts = counts[counts.sum().sort_values(ascending=False).index]
    return counts.div(counts.sum(axis=1), axis=0).round(3)


def breakdown_figure(inc: pd.DataFrame, column: str, top: int = 10) -> go.Figure:
    """Crashes per value of ``column`` (the ``top`` values), the severe ones drawn apart."""
    values = inc[column].astype(object).where(inc[column].notna(), "(blank)")
    d = inc.assign(v=values, s=inc["severe"].fillna(False).astype(bool))
    counts = d.groupby("v").agg(n=("incident_id", "size"), severe=("s", "sum")).sort_values("n").tail(top)
    fig = go.Figure(
        [
            go.Bar(y=counts.index, x=counts["n"] - counts["severe"], orientation="h", name="not severe"),
            go.Bar(y=counts.index, x=counts["severe"], orientation="h", name="serious or fatal"),
        ]
    )
    fig.update_layout(barmode="stack", height=max(260, 30 * len(counts)), margin={"l": 10, "r": 10, "t": 30, "b": 10})
    fig.update_xaxes(title="crashes")
    return fig


def by_state(inc: pd.DataFrame) -> pd.DataFrame:
    """Crashes and severe crashes per state (unknown states as ``None``)."""
    d = inc.assign(s=inc["severe"].fillna(False).astype(bool))
    out = d.groupby("state", dropna=False).agg(crashes=("incident_id", "size"), severe=("s", "sum")).reset_index()
    return out.sort_values("crashes", ascending=False)


def state_map_figure(states: pd.DataFrame) -> go.Figure:
    """A tile-grid map: one square per state, coloured by crashes (grey: none)."""
    counts = {s: int(n) for s, n in zip(states["state"], states["crashes"], strict=True) if s in STATE_TILES}
    fig = go.Figure()
    for has in (False, True):
        codes = [c for c in STATE_TILES if (counts.get(c, 0) > 0) == has]
        n = [counts.get(c, 0) for c in codes]
        marker: dict = {"symbol": "square", "size": 40, "line": {"color": "#9e9e9e", "width": 1}}
        if has:
            marker |= {"color": n, "colorscale": "OrRd", "cmin": 0, "showscale": True, "colorbar": {"title": "crashes"}}
        else:
            marker["color"] = "#eeeeee"
        fig.add_trace(
            go.Scatter(
                x=[STATE_TILES[c][1] for c in codes],
                y=[-STATE_TILES[c][0] for c in codes],
                mode="markers+text",
                text=[f"{c}<br>{v:,}" if v else c for c, v in zip(codes, n, strict=True)],
                textfont={"size": 10},
                hovertext=[f"{c}: {v:,} crashes" for c, v in zip(codes, n, strict=True)],
                hoverinfo="text",
                marker=marker,
                showlegend=False,
            )
        )
    fig.update_xaxes(visible=False, range=[-0.7, 10.7])
    fig.update_yaxes(visible=False, range=[-7.7, 0.7], scaleanchor="x")
    fig.update_layout(height=420, margin={"l": 10, "r": 10, "t": 10, "b": 10}, plot_bgcolor="white")
    return fig


def rates_table(folder: str | Path, dmv: str | Path) -> tuple[pd.DataFrame, dict]:
    """Crash and disengagement rates per company and report year (``sgo rates``), and the whole result."""
    from roadworthy.data.sgo.rates import rates

    res = rates(folder, dmv)
    rows = []
    for r in res["rates"]:
        rows.append(
            {
                "company": r["company"],
                "year": r["year"],
                "complete year": r["complete"],
                "CA crashes": r["incidents"],
                "severe": r["severe"],
                "autonomous miles": round(r["miles"]),
                "driverless miles": None if r["driverless_miles"] is None else round(r["driverless_miles"]),
                "crashes per million miles": r["per_million_miles"],
                "crash ci low": None if r["ci"] is None else r["ci"][0],
                "crash ci high": None if r["ci"] is None else r["ci"][1],
                "disengagements per 1,000 miles": r["disengagements_per_1000_miles"],
                "dis ci low": r["disengagement_ci"][0],
                "dis ci high": r["disengagement_ci"][1],
            }
        )
    return pd.DataFrame(rows), res


def rates_figure(table: pd.DataFrame) -> go.Figure:
    """Crashes per million miles and disengagements per 1,000 miles, side by side, with 95 % intervals."""
    d = table[table["CA crashes"] > 0].sort_values("crashes per million miles")
    labels = [f"{c} ({y})" for c, y in zip(d["company"], d["year"], strict=True)]
    fig = make_subplots(
        rows=1,
        cols=2,
        shared_yaxes=True,
        subplot_titles=("CA crashes per million autonomous miles", "disengagements per 1,000 miles"),
    )
    for col, (x, lo, hi) in enumerate(
        [
            ("crashes per million miles", "crash ci low", "crash ci high"),
            ("disengagements per 1,000 miles", "dis ci low", "dis ci high"),
        ],
        start=1,
    ):
        fig.add_trace(
            go.Scatter(
                x=d[x],
                y=labels,
                mode="markers",
                showlegend=False,
                error_x={"type": "data", "symmetric": False, "array": d[hi] - d[x], "arrayminus": d[x] - d[lo]},
            ),
            row=1,
            col=col,
        )
    fig.update_layout(height=max(300, 32 * len(d)), margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def search(inc: pd.DataFrame, text: str, limit: int = 200) -> pd.DataFrame:
    """Crashes whose narrative contains ``text`` (case-insensitive, literal)."""
    if not text.strip():
        return inc.iloc[0:0]
    hit = inc["narrative"].str.contains(text.strip(), case=False, regex=False, na=False)
    cols = ["month", "company", "state", "city", "partner", "severity", "narrative"]
    return inc.loc[hit, cols].head(limit)
