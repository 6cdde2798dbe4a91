"""Disengagement explorer page: where and when takeovers happen and what preceded them."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from roadworthy.dashboards.disengagements import contrast, explore, window_summary
from roadworthy.dashboards.figures import event_map, window_chart
from roadworthy.dashboards.inputs import DashboardInputs
from roadworthy.dashboards.views import common


@st.cache_data(show_spinner="finding takeovers and matched moments")
def _explore(logs: str, window_s: float, model_path: str | None, key: str) -> dict:
    del key
    model = common.behavior_model(model_path) if model_path else None
    return explore(logs, window_s=window_s, model=model)


def render(inputs: DashboardInputs) -> None:
    st.header("Disengagements")
    logs = common.pick_logs(inputs, st.sidebar)
    if logs is None:
        return
    key = common.dataset_key(logs)
    window = st.slider("Seconds before the takeover", 1.0, 10.0, 3.0, 0.5, key="dis_window")
    res = _explore(logs, window, inputs.model, key)
    events, windows = res["events"], res["windows"]
    if events.empty:
        st.info("No disengagements in this log.")
        return
    c0, c1, c2 = st.columns(3)
    srcs = sorted(events["from_source"].unique())
    maps = sorted(events["map_name"].unique())
    scen = sorted(events["scenario"].unique())
    pick_srcs = c0.multiselect("Driving before the takeover", srcs, default=srcs, key="dis_sources")
    pick_maps = c1.multiselect("Maps", maps, default=maps, key="dis_maps")
    pick_scen = c2.multiselect("Scenarios", scen, default=scen, key="dis_scen")
    keep = (
        events["from_source"].isin(pick_srcs) & events["map_name"].isin(pick_maps) & events["scenario"].isin(pick_scen)
    )
    kept = set(events.index[keep].tolist())
    controls = res["controls"]
    ctrl_keep = controls["match_of"].isin(kept) if len(controls) else pd.Series(dtype=bool)
    win = pd.concat(
        [
            windows[(windows["group"] == "takeover") & windows["anchor"].isin(kept)],
            windows[(windows["group"] == "matched") & windows["anchor"].isin(set(controls.index[ctrl_keep]))],
        ]
    )
    m = st.columns(3)
    m[0].metric("takeovers", f"{int(keep.sum()):,}")
    m[1].metric("matched moments without a takeover", f"{int(ctrl_keep.sum()):,}")
    m[2].metric("median time into the episode (s)", f"{events.loc[keep, 't'].median():.1f}")
    st.subheader("Where")
    sel = events[keep]
    for map_name in pick_maps:
        here = sel[sel["map_name"] == map_name].dropna(subset=["x", "y"])
        if here.empty:
            continue
        fig = event_map(common.roads(logs, map_name), here, title=f"Takeovers on {map_name}")
        st.plotly_chart(fig, key=f"dis_where_{map_name}")
    st.caption(common.FLIP_NOTE)
    st.subheader("When and what preceded them")
    st.plotly_chart(
        go.Figure(go.Histogram(x=sel["t"], nbinsx=20)).update_layout(
            title="Time into the episode (s)", height=260, margin={"t": 40}
        ),
        key="dis_when",
    )
    labels = {"speed": "speed (m/s)", "ttc_s": "time to collision (s, capped at 10)", "pvalue": "action p-value"}
    for feat, label in labels.items():
        if win[feat].notna().any():
            st.plotly_chart(window_chart(window_summary(win, feat), label), key=f"dis_{feat}")
    if not inputs.model:
        st.caption(
            "Start the dashboard with a behaviour model (from `roadworthy fit`) to add how unusual the "
            "autopilot's actions were."
        )
    st.subheader("Takeovers against matched moments (last second before)")
    st.dataframe(contrast(win), hide_index=True)
    st.subheader("Takeover list")
    st.dataframe(sel, hide_index=True)
