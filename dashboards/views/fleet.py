"""Fleet reports page: public disengagement reports (California DMV), imported with `roadworthy import dmv`."""

from __future__ import annotations

import streamlit as st

from roadworthy.dashboards import fleet
from roadworthy.dashboards.inputs import DashboardInputs


@st.cache_data(show_spinner="reading the reports")
def _load(folder: str):
    return fleet.rates(folder), fleet.load_events(folder), fleet.monthly_miles(folder)


def render(inputs: DashboardInputs) -> None:
    st.header("Fleet reports")
    if not inputs.dmv:
        st.info(
            "No DMV reports given: import them with `roadworthy import dmv`, then start the "
            "dashboard with the folder it wrote."
        )
        return
    rates, events, months = _load(inputs.dmv)
    st.caption(
        "Disengagements per 1,000 autonomous miles, miles from the mileage reports only. Not a safety ranking: "
        "miles differ in kind, companies count disengagements differently, driverless permits report "
        "retrievals (docs/dmv.md)."
    )
    st.subheader("Rates by manufacturer and year")
    st.plotly_chart(fleet.rate_figure(rates), use_container_width=True)
    st.dataframe(rates, hide_index=True)
    left, right = st.columns(2)
    left.subheader("Who initiated")
    left.dataframe(fleet.split(events, "initiator"))
    right.subheader("Where")
    right.dataframe(fleet.split(events, "location"))
    st.subheader("Cause categories per manufacturer")
    st.dataframe(fleet.split(events, "cause"))
    st.subheader("Autonomous miles per month")
    st.line_chart(months)
    st.subheader("Search the descriptions")
    text = st.text_input("Text to find", key="fleet_search")
    hits = fleet.search(events, text)
    if text:
        st.write(f"{len(hits)} matching event(s) (first 200)")
        st.dataframe(hits, hide_index=True)
