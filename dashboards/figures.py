"""Plotly figures of the dashboards: risk map, replay frame, comparisons, takeover windows.

Cartesian figures in metres with equal axis scaling and no map tiles, so they
draw offline. Map y is flipped (left-handed logging frames, see
:mod:`roadworthy.dashboards.geometry`). Pure functions: data in, ``plotly.graph_objects.Figure`` out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from roadworthy.dashboards.geometry import flip

LANE_COLOURS = {"driving": "#9e9e9e", "sidewalk": "#c9a86a", "shoulder": "#b0bec5", "parking": "#a5d6a7"}
EGO_SIZE = (4.8, 2.0)  # m, length and width drawn for every vehicle


def _polyline_trace(parts: list[np.ndarray], name: str, colour: str, width: float = 1.0) -> go.Scatter:
    xs, ys = [], []
    for p in parts:
        if len(p) < 2:
            continue
        xs += [*p[:, 0].tolist(), None]
        ys += [*flip(p[:, 1]).tolist(), None]
    return go.Scatter(x=xs, y=ys, mode="lines", line={"color": colour, "width": width}, name=name, hoverinfo="skip")


def road_traces(roads: pd.DataFrame | None) -> list:
    """Lane borders, one trace per lane type (centre lines of driving lanes dotted)."""
    if roads is None or roads.empty:
        return []
    traces = []
    for lane_type, g in roads.groupby("lane_type", sort=True):
        colour = LANE_COLOURS.get(lane_type, "#cfd8dc")
        traces.append(_polyline_trace(list(g["left"]) + list(g["right"]), f"{lane_type} lanes", colour))
    driving = roads[roads["lane_type"] == "driving"]
    if len(driving):
        tr = _polyline_trace(list(driving["centre"]), "lane centres", "#e0e0e0", 0.5)
        tr.line.dash = "dot"
        traces.append(tr)
    return traces


#: Above this length-to-width ratio of the shown area (about that of the plot), y is stretched:
#: a highway is 12 m wide and kilometres long.
MAX_ASPECT = 2.5


def _equal_axes(fig: go.Figure, title: str, height: int = 560, extent=None) -> go.Figure:
    """Equal metres on both axes; with ``extent`` (x0, x1, y0, y1 in the map frame) zoomed
    to it, and y stretched when the area is much longer than wide (said in the axis title)."""
    ratio = 1.0
    if extent is not None:
        x0, x1, y0, y1 = extent
        w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        if w / h > MAX_ASPECT:
            ratio = w / h / MAX_ASPECT
        fig.update_xaxes(range=[x0, x1])
        fig.update_yaxes(range=[-y1, -y0])
    fig.update_layout(
        title=title,
        height=height,
        margin={"l": 40, "r": 10, "t": 50, "b": 40},
        plot_bgcolor="white",
        legend={"orientation": "h", "y": -0.12},
        dragmode="pan",
    )
    fig.update_xaxes(title="x (m)", showgrid=False, zeroline=False)
    stretch = "" if ratio == 1.0 else f", stretched x{ratio:.0f}"
    fig.update_yaxes(title=f"-y (m, flipped{stretch})", scaleanchor="x", scaleratio=ratio)
    fig.update_yaxes(showgrid=False, zeroline=False)
    return fig


def risk_map(
    roads: pd.DataFrame | None,
    cells: pd.DataFrame,
    metric: str,
    cell: float,
    *,
    title: str,
    label: str,
    hover: list[tuple[str, str]] | None = None,
    colorscale: str = "YlOrRd",
) -> go.Figure:
    """Road lanes with a heat layer of ``cells[metric]`` on squares of ``cell`` metres.

    The heat layer is a heatmap on the regular grid of cells (empty cells transparent);
    a marker at each non-empty cell centre carries the hover text (``hover``: pairs of
    column and label, e.g. counts and interval bounds) and makes the cell selectable.
    """
    fig = go.Figure(road_traces(roads))
    if not cells.empty:
        cx, cy = cells["cell_x"].to_numpy(int), cells["cell_y"].to_numpy(int)
        x0, y0 = cx.min(), cy.min()
        grid = np.full((cy.max() - y0 + 1, cx.max() - x0 + 1), np.nan)
        grid[cy - y0, cx - x0] = cells[metric].to_numpy(float)
        xs = (np.arange(x0, cx.max() + 1) + 0.5) * cell
        ys = flip((np.arange(y0, cy.max() + 1) + 0.5) * cell)
        fig.add_trace(
            go.Heatmap(
                x=xs,
                y=ys,
                z=grid,
                colorscale=colorscale,
                opacity=0.75,
                colorbar={"title": label},
                hoverinfo="skip",
                name=label,
            )
        )
        hover = hover or []
        text = [
            "<br>".join([f"{label}: {v:.4g}"] + [f"{lab}: {row[col]}" for col, lab in hover])
            for v, (_, row) in zip(cells[metric].to_numpy(float), cells.iterrows(), strict=True)
        ]
        fig.add_trace(
            go.Scatter(
                x=cells["x"],
                y=flip(cells["y"]),
                mode="markers",
                marker={"size": 6, "color": "rgba(0,0,0,0.15)", "symbol": "square"},
                text=text,
                hovertemplate="%{text}<extra></extra>",
                customdata=np.column_stack([cx, cy]),
                name="cells (select to list rows)",
            )
        )
        pad = 2 * cell
        extent = (xs.min() - pad, xs.max() + pad, (y0 + 0.5) * cell - pad, (cy.max() + 0.5) * cell + pad)
        return _equal_axes(fig, title, extent=extent)
    return _equal_axes(fig, title)


def _box(x: float, y: float, yaw: float, length: float, width: float) -> tuple[list[float], list[float]]:
    c, s = np.cos(yaw), np.sin(yaw)
    corners = np.array(
        [[length / 2, width / 2], [length / 2, -width / 2], [-length / 2, -width / 2], [-length / 2, width / 2]]
    )
    # Left-handed map frame: forward (cos, sin), right of travel (-sin, cos).
    px = x + c * corners[:, 0] - s * corners[:, 1]
    py = y + s * corners[:, 0] + c * corners[:, 1]
    return [*px.tolist(), px[0]], [*flip(py).tolist(), float(flip([py[0]])[0])]


def replay_frame(
    roads: pd.DataFrame | None,
    episode: pd.DataFrame,
    index: int,
    actors: pd.DataFrame,
    flagged: np.ndarray | None = None,
    *,
    title: str,
    window_m: float = 80.0,
) -> go.Figure:
    """Bird's-eye view of one step: the road, the trajectory, flagged steps, the ego and nearby actors."""
    fig = go.Figure(road_traces(roads))
    x, y = episode["x"].to_numpy(float), episode["y"].to_numpy(float)
    fig.add_trace(
        go.Scatter(
            x=x, y=flip(y), mode="lines", line={"color": "#1565c0", "width": 2}, name="trajectory", hoverinfo="skip"
        )
    )
    marks = [
        (flagged if flagged is not None else np.zeros(len(x), bool), "flagged (out of distribution)", "x", "#d32f2f"),
        (episode["disengagement"].to_numpy(bool), "takeover", "star", "#6a1b9a"),
        (episode["collision"].to_numpy(bool), "collision", "diamond", "#000000"),
        (episode["off_road"].to_numpy(bool), "off road", "triangle-down", "#ef6c00"),
    ]
    for sel, name, symbol, colour in marks:
        if sel.any():
            fig.add_trace(
                go.Scatter(
                    x=x[sel],
                    y=flip(y[sel]),
                    mode="markers",
                    marker={"symbol": symbol, "size": 9, "color": colour},
                    name=name,
                    text=[f"step {s}" for s in episode["step"].to_numpy()[sel]],
                    hovertemplate="%{text}<extra>" + name + "</extra>",
                )
            )
    row = episode.iloc[index]
    yaw = float(row["yaw"]) if pd.notna(row["yaw"]) else 0.0
    for i, a in actors.reset_index(drop=True).iterrows():
        fig.add_trace(
            _vehicle(
                a["x"],
                a["y"],
                yaw,
                "#455a64",
                "rgba(96,125,139,0.6)",
                name="nearby actors" if i == 0 else a["label"],
                legendgroup="actors",
                showlegend=i == 0,
                text=a["label"],
                hoverinfo="text",
            )
        )
    x0, y0 = float(row["x"]), float(row["y"])
    fig.add_trace(
        _vehicle(x0, y0, yaw, "#0d47a1", "rgba(30,136,229,0.8)", name=f"ego ({row['source']})", hoverinfo="name")
    )
    return _equal_axes(fig, title, extent=(x0 - window_m, x0 + window_m, y0 - window_m / 2, y0 + window_m / 2))


def _vehicle(x: float, y: float, yaw: float, line: str, fill: str, **kwargs) -> go.Scatter:
    """A vehicle drawn to scale (:data:`EGO_SIZE`) at a map-frame pose."""
    bx, by = _box(x, y, yaw, *EGO_SIZE)
    return go.Scatter(x=bx, y=by, fill="toself", mode="lines", line={"color": line}, fillcolor=fill, **kwargs)


def interval_chart(rows: pd.DataFrame, *, title: str, x_label: str) -> go.Figure:
    """Horizontal interval plot: ``name, estimate, lower, upper`` per row (and optional ``truth``)."""
    fig = go.Figure(
        go.Scatter(
            x=rows["estimate"],
            y=rows["name"],
            mode="markers",
            marker={"size": 10, "color": "#1565c0"},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": rows["upper"] - rows["estimate"],
                "arrayminus": rows["estimate"] - rows["lower"],
            },
            name="estimate with interval",
        )
    )
    if "truth" in rows and rows["truth"].notna().any():
        fig.add_trace(
            go.Scatter(
                x=rows["truth"], y=rows["name"], mode="markers", marker={"symbol": "x", "size": 10}, name="truth"
            )
        )
    fig.update_layout(title=title, xaxis_title=x_label, height=120 + 40 * len(rows), margin={"l": 10, "r": 10, "t": 50})
    return fig


def bar_chart(frame: pd.DataFrame, x: str, y: str, *, title: str, colour: str | None = None) -> go.Figure:
    """A plain bar chart of ``frame[y]`` against ``frame[x]``."""
    fig = go.Figure(go.Bar(x=frame[x], y=frame[y], marker_color=colour))
    fig.update_layout(title=title, height=340, margin={"l": 10, "r": 10, "t": 50})
    return fig


def window_chart(summary: pd.DataFrame, feature_label: str) -> go.Figure:
    """Mean of a feature before takeovers and before matched moments, with 95 % bands."""
    fig = go.Figure()
    colours = {"takeover": "#c62828", "matched": "#1565c0"}
    for group, g in summary.groupby("group", sort=False):
        c = colours.get(group, "#616161")
        fig.add_trace(
            go.Scatter(
                x=np.r_[g["t_rel_s"], g["t_rel_s"][::-1]],
                y=np.r_[g["upper"], g["lower"][::-1]],
                fill="toself",
                line={"width": 0},
                fillcolor=c,
                opacity=0.15,
                hoverinfo="skip",
                showlegend=False,
            )
        )
        fig.add_trace(go.Scatter(x=g["t_rel_s"], y=g["mean"], mode="lines+markers", line={"color": c}, name=group))
    fig.update_layout(
        title=f"{feature_label} before the takeover (0 s) and before matched moments",
        xaxis_title="seconds before the moment",
        yaxis_title=feature_label,
        height=340,
        margin={"l": 10, "r": 10, "t": 50},
    )
    return fig


def event_map(roads: pd.DataFrame | None, events: pd.DataFrame, *, title: str, name: str = "takeover") -> go.Figure:
    """Points (``x, y``, with ``episode_id`` and ``step`` for the hover) over the road, zoomed to them."""
    fig = go.Figure(road_traces(roads))
    fig.add_trace(
        go.Scatter(
            x=events["x"],
            y=flip(events["y"]),
            mode="markers",
            marker={"symbol": "star", "size": 11, "color": "#6a1b9a"},
            text=[f"{e} step {s}" for e, s in zip(events["episode_id"], events["step"], strict=True)],
            hovertemplate="%{text}<extra>" + name + "</extra>",
            name=name,
        )
    )
    pad = 20.0
    extent = (events["x"].min() - pad, events["x"].max() + pad, events["y"].min() - pad, events["y"].max() + pad)
    return _equal_axes(fig, title, height=380, extent=extent)
