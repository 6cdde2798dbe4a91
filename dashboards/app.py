"""The Streamlit app behind ``roadworthy dashboard`` (run with ``streamlit run``).

Inputs come from the environment (:mod:`roadworthy.dashboards.inputs`); each page is a thin
layer over pure functions.
"""

from __future__ import annotations

import streamlit as st

from roadworthy.dashboards.inputs import inputs_from_env
from roadworthy.dashboards.views import comparison, crashes, disengagements, fleet, health, replay, risk_map

PAGES = {
    "Risk map": risk_map.render,
    "Disengagements": disengagements.render,
    "Policy comparison": comparison.render,
    "Episode replay": replay.render,
    "Data health": health.render,
    "Fleet reports": fleet.render,
    "Crash reports": crashes.render,
}


def main() -> None:
    st.set_page_config(page_title="roadworthy", layout="wide")
    if "goto_page" in st.session_state:
        st.session_state["page"] = st.session_state.pop("goto_page")
    st.sidebar.title("roadworthy")
    inputs = inputs_from_env()
    # Started with public reports only: open on a page that has something to show.
    first = 0
    if not inputs.logs:
        first = list(PAGES).index("Crash reports" if inputs.sgo else "Fleet reports")
    page = st.sidebar.radio("Page", list(PAGES), index=first, key="page")
    PAGES[page](inputs)


main()
