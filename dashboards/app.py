"""The Streamlit app behind ``roadworthy dashboard`` (run with ``streamlit run``).

Inputs come from the environment (:mod:`roadworthy.dashboards.inputs`); each page is a thin
layer over pure functions.
"""

from __future__ import annotations

import streamlit as st

from roadworthy.dashboards.inputs import inputs_from_env
from roadworthy.dashboards.views import comparison, disengagements, health, replay, risk_map

PAGES = {
    "Risk map": risk_map.render,
    "Disengagements": disengagements.render,
    "Policy comparison": comparison.render,
    "Episode replay": replay.render,
    "Data health": health.render,
}


def main() -> None:
    st.set_page_config(page_title="roadworthy", layout="wide")
    if "goto_page" in st.session_state:
        st.session_state["page"] = st.session_state.pop("goto_page")
    st.sidebar.title("roadworthy")
    page = st.sidebar.radio("Page", list(PAGES), key="page")
    inputs = inputs_from_env()
    PAGES[page](inputs)


main()
