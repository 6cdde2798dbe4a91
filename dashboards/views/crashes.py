"""Crash reports page: NHTSA Standing General Order crash reports, imported with `roadworthy import sgo`."""

from __future__ import annotations

import streamlit as st

from roadworthy.dashboards import crashes
from roadworthy.dashboards.inputs import DashboardInputs


@st.cache_data(show_spinner="reading the crash reports")
def _load(folder: str):
    return crashes.load(folder)


@st.cache_data(show_spinner="matching crashes to DMV miles")
def _rates(folder: str, dmv: str):
    return crashes.rates_table(folder, dmv)


def render(inputs: DashboardInputs) -> None:
    st.header("Crash reports")
    if not inputs.sgo:
        st.info(
            "No crash reports given: import NHTSA's Standing General Order CSV files with `roadworthy import sgo`, "
            "then give the dashboard the folder it wrote as its crash reports."
        )
        return
    inc = _load(inputs.sgo)
    systems = sorted(inc["system"].dropna().unique())
    left, right = st.columns(2)
    system = left.selectbox("System", ["all", *systems], key="sgo_system")
    shown = inc if system == "all" else inc[inc["system"] == system]
    companies = right.multiselect(
        "Companies (operator, else the reporting maker; empty: all)",
        crashes.top_operators(shown, 30),
        key="sgo_operators",
    )
    if companies:
        shown = shown[shown["company"].isin(companies)]
    st.caption(
        f"{len(shown):,} crashes (one per Same Incident ID; latest version of each report). Reports count every "
        "crash the company learned of, whoever caused it, and carry no miles (docs/sgo.md)."
    )
    st.subheader("Crashes over time, per company")
    st.plotly_chart(crashes.over_time_figure(crashes.over_time(shown)), use_container_width=True)
    st.subheader("Crash partner, movement and severity")
    column = st.selectbox(
        "Break down by",
        ["partner", "sv_movement", "cp_movement", "severity", "roadway_type"],
        format_func=lambda c: {
            "partner": "crash partner",
            "sv_movement": "the vehicle's pre-crash movement",
            "cp_movement": "the partner's pre-crash movement",
            "severity": "highest injury severity",
            "roadway_type": "roadway type",
        }[c],
        key="sgo_breakdown",
    )
    left, right = st.columns(2)
    left.plotly_chart(crashes.breakdown_figure(shown, column), use_container_width=True)
    right.dataframe(crashes.breakdown(shown, column))
    st.subheader("By state")
    states = crashes.by_state(shown)
    st.plotly_chart(crashes.state_map_figure(states), use_container_width=True)
    st.subheader("California crash rates beside disengagement rates")
    if not inputs.dmv:
        st.info("Rates need autonomous miles: give the dashboard a DMV folder too (from `roadworthy import dmv`).")
    else:
        table, res = _rates(inputs.sgo, inputs.dmv)
        if table.empty:
            st.warning("No DMV report year overlaps the crash reports: no rate.")
        else:
            st.plotly_chart(crashes.rates_figure(table), use_container_width=True)
            st.dataframe(table, hide_index=True)
        for note in res["caveats"]:
            st.caption(note)
        if res["sgo_only"]:
            st.write("In the crash reports without DMV miles:", ", ".join(r["operator"] for r in res["sgo_only"]))
        if res["dmv_only"]:
            st.write("DMV miles, never in the crash reports:", ", ".join(r["company"] for r in res["dmv_only"]))
    st.subheader("Search the narratives")
    text = st.text_input("Text to find (redactions appear as written, e.g. [XXX])", key="sgo_search")
    hits = crashes.search(shown, text)
    if text:
        st.write(f"{len(hits):,} matching crash(es) (first 200)")
        st.dataframe(hits, hide_index=True)
