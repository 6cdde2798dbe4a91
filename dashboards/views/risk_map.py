"""Risk map page: the road with a per-cell heat layer of a chosen metric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from roadworthy.dashboards import aggregates
from roadworthy.dashboards.figures import risk_map
from roadworthy.dashboards.inputs import DashboardInputs
from roadworthy.dashboards.views import common

LOG_METRICS = {
    "data density (logged steps)": "rows",
    "logged collisions": "collision",
    "disengagement density (takeovers per 1,000 steps)": "disengagement",
    "off-road steps": "off_road",
    "mean speed (m/s)": "mean_speed",
}
POLICY_OOD = "policy: out-of-distribution rate"
POLICY_COST = "policy: estimated cost-to-go of "


def log_metric_frame(frame: pd.DataFrame, metric: str) -> tuple[pd.DataFrame, str, list[tuple[str, str]]]:
    """The value column and hover lines of a log metric (rates with Wilson 95 % intervals)."""
    col = LOG_METRICS[metric]
    f = frame.copy()
    hover = [("rows", "logged steps"), ("episodes", "episodes")]
    if col in ("collision", "disengagement", "off_road"):
        lo, hi = aggregates.wilson(f[col], f["rows"])
        scale = 1000.0 if col == "disengagement" else 1.0
        f["value"] = f[col].astype(float) if col != "disengagement" else scale * f[col] / f["rows"]
        f["interval"] = [
            f"[{scale * a:.3g}, {scale * b:.3g}] per {'1,000 ' if scale > 1 else ''}step"
            for a, b in zip(lo, hi, strict=True)
        ]
        hover += [(col, f"{col.replace('_', ' ')} rows"), ("interval", "95 % interval of the rate")]
    elif col == "mean_speed":
        f["value"] = f["mean_speed"]
    else:
        f["value"] = f["rows"].astype(float)
    return f, "value", hover


def render(inputs: DashboardInputs) -> None:
    st.header("Risk map")
    logs = common.pick_logs(inputs, st.sidebar)
    if logs is None:
        return
    key = common.dataset_key(logs)
    report = common.json_file(inputs.report)
    policies = [p["name"] for p in report["policies"]] if report else []
    metrics = list(LOG_METRICS)
    if report:
        channels = sorted({c for p in report["policies"] for c in p.get("costs", {})})
        metrics += [POLICY_OOD] + [POLICY_COST + c for c in channels]
    c1, c2, c3, c4 = st.columns([3, 2, 2, 1])
    metric = c1.selectbox("Metric", metrics, key="risk_metric")
    cell = c4.selectbox("Cell (m)", [5.0, 10.0, 25.0], index=1, key="risk_cell")
    frame = common.cells(logs, cell, key, inputs.engine, inputs.address)
    if frame.empty:
        st.info("This log has no x/y pose columns, so nothing can be placed on the road.")
        return
    maps = sorted(frame["map_name"].unique())
    map_name = c2.selectbox("Map", maps, key="risk_map_name")
    sources = sorted(frame["source"].unique())
    chosen = c3.multiselect("Sources", sources, default=sources, key="risk_sources")
    roads = common.roads(logs, map_name)
    if metric in LOG_METRICS:
        cells = aggregates.combine(frame, chosen, map_name)
        cells, value, hover = log_metric_frame(cells, metric)
        size = cell
        title = f"{metric} on {map_name} ({', '.join(chosen) or 'no source'})"
    else:
        policy = st.selectbox("Policy", policies, key="risk_policy")
        cells = aggregates.policy_cells(report, policy)
        cells = cells[cells["map_name"] == map_name] if not cells.empty else cells
        size = cells.attrs.get("cell_m", 25.0) if not cells.empty else 25.0
        if metric == POLICY_OOD:
            lo, hi = aggregates.wilson(np.round(cells["ood_rate"] * cells["rows"]), cells["rows"])
            cells = cells.assign(interval=[f"[{a:.3g}, {b:.3g}]" for a, b in zip(lo, hi, strict=True)])
            value, hover = "ood_rate", [("rows", "logged states"), ("interval", "95 % interval")]
        else:
            value = "cost_" + metric[len(POLICY_COST) :]
            if value not in cells:
                st.warning("This report has no per-cell costs; re-run `roadworthy evaluate` to add them.")
                return
            hover = [("rows", "logged states"), ("coverage", "coverage")]
        title = f"{policy}: {metric.removeprefix('policy: ')} on {map_name} (report cells of {size:g} m; all sources)"
        st.caption("Policy metrics come from the evaluation report, which aggregates every source.")
    if cells.empty:
        st.info("No cells for this selection.")
        return
    fig = risk_map(roads, cells, value, size, title=title, label=metric.split(" (")[0][:30], hover=hover)
    event = st.plotly_chart(fig, key="risk_chart", on_select="rerun", selection_mode=("points", "box"))
    st.caption(common.FLIP_NOTE + " Select cells (click or box) to list the logged steps there.")
    picked = _selected_cells(event)
    if not picked:
        return
    rows = pd.concat(
        [aggregates.rows_in_cell(logs, map_name, cx, cy, size) for cx, cy in picked[:20]], ignore_index=True
    )
    st.subheader(f"Logged steps in {len(picked)} selected cell(s): {len(rows):,} rows")
    eps = rows.groupby("episode_id").agg(steps=("step", "size"), first_step=("step", "min"), source=("source", "first"))
    st.dataframe(eps.reset_index(), hide_index=True)
    st.dataframe(rows, hide_index=True, height=240)
    target = st.selectbox("Open an episode in the replay", eps.index.tolist(), key="risk_replay_pick")
    if st.button("Replay it", key="risk_replay_go"):
        st.session_state["replay_episode"] = target
        st.session_state["goto_page"] = "Episode replay"
        st.rerun()


def _selected_cells(event) -> list[tuple[int, int]]:
    try:
        points = event.selection.points  # type: ignore[union-attr]
    except AttributeError:
        return []
    out = []
    for p in points:
        cd = p.get("customdata")
        if cd is not None and len(cd) == 2:
            out.append((int(cd[0]), int(cd[1])))
    return sorted(set(out))
