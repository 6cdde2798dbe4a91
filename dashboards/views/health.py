"""Data health page: schema, counts, sources, and anything rejected."""

from __future__ import annotations

import streamlit as st

from roadworthy.dashboards.health import count_table, data_health, source_table
from roadworthy.dashboards.inputs import DashboardInputs
from roadworthy.dashboards.views.common import dataset_key, pick_logs


@st.cache_data(show_spinner="validating the log")
def _health(logs: str, key: str) -> dict:
    del key
    return data_health(logs)


def render(inputs: DashboardInputs) -> None:
    st.header("Data health")
    logs = pick_logs(inputs, st)
    if logs is None:
        return
    try:
        key = dataset_key(logs)
    except Exception as exc:  # a missing or empty dataset: the validator's message says why
        key = str(exc)
    h = _health(logs, key)
    if not h["ok"]:
        st.error(f"Rejected: {h['error']}")
        if "schema" in h:
            st.subheader("Schema")
            st.dataframe(h["schema"], hide_index=True)
        return
    s = h["summary"]
    st.success(f"{s['rows']:,} rows in {s['episodes']:,} episodes passed every check of the log contract.")
    c = st.columns(4)
    c[0].metric("rows", f"{s['rows']:,}")
    c[1].metric("episodes", f"{s['episodes']:,}")
    c[2].metric("hours of driving", f"{s['duration_s'] / 3600:.2f}")
    c[3].metric("disengagements", f"{s['disengagements']:,}")
    left, right = st.columns(2)
    left.subheader("Counts")
    left.dataframe(count_table(s), hide_index=True)
    right.subheader("Behaviour sources")
    right.dataframe(source_table(s), hide_index=True)
    right.write(f"Maps: {', '.join(s.get('maps', [])) or '-'}; scenarios: {', '.join(s.get('scenarios', [])) or '-'}")
    st.write(f"Rows skipped: {s.get('skipped_rows', 0)} (validation never drops rows; a bad row rejects the log).")
    st.subheader("Schema")
    st.dataframe(h["schema"], hide_index=True)
    with st.expander("Metadata"):
        st.json(h["metadata"])
