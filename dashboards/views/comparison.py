"""Policy comparison page: scorecards with intervals, coverage, costs, and the gate verdict."""

from __future__ import annotations

import streamlit as st

from roadworthy.dashboards.comparison import cost_rows, estimator_table, gate_verdict, scorecards, value_rows
from roadworthy.dashboards.figures import bar_chart, interval_chart
from roadworthy.dashboards.inputs import DashboardInputs
from roadworthy.dashboards.views import common


def render(inputs: DashboardInputs) -> None:
    st.header("Policy comparison")
    report = common.json_file(inputs.report)
    if not report:
        st.info(
            "Start the dashboard with an evaluation report (the JSON of `roadworthy evaluate`) to compare policies."
        )
        return
    truth = common.json_file(inputs.truth)
    cards = scorecards(report)
    st.caption(
        f"Log {report['logs']}: {report['rows']:,} steps, {report['episodes']:,} episodes, gamma {report['gamma']}; "
        f"bounds at {round(100 * report['confidence'])} % and pessimistic about what the logs cannot tell."
    )
    cols = st.columns(min(len(cards), 4) or 1)
    for i, (_, c) in enumerate(cards.iterrows()):
        with cols[i % len(cols)]:
            st.metric(c["name"], f"{c['estimate']:.1f}", help="expected discounted return")
            st.write(f"[{c['lower']:.1f}, {c['upper']:.1f}] · coverage {100 * c['coverage']:.1f} %")
    st.dataframe(cards, hide_index=True)
    left, right = st.columns(2)
    with left:
        st.plotly_chart(
            interval_chart(value_rows(report, truth), title="Value with conservative bounds", x_label="value"),
            key="cmp_value",
        )
    with right:
        st.plotly_chart(
            bar_chart(cards, "name", "coverage", title="Coverage of the trusted support", colour="#2e7d32"),
            key="cmp_cov",
        )
    channels = sorted({c for p in report["policies"] for c in p.get("costs", {})})
    if channels:
        ch = st.selectbox("Cost channel", channels, key="cmp_channel")
        st.plotly_chart(
            interval_chart(cost_rows(report, ch), title=f"{ch}: estimate and pessimistic upper bound", x_label=ch),
            key="cmp_cost",
        )
    st.subheader("Gate verdict")
    names = [p["name"] for p in report["policies"]]
    c1, c2 = st.columns(2)
    cand = c1.selectbox("Candidate", names, key="cmp_candidate")
    base_opts = [n for n in names if n != cand] + (["behavior"] if "behavior" in report else [])
    if not base_opts:
        st.info("The report holds one policy; evaluate a baseline with it to gate.")
    else:
        base = c2.selectbox("Baseline", base_opts, key="cmp_baseline")
        try:
            v = gate_verdict(report, cand, base)
        except ValueError as exc:
            st.warning(str(exc))
        else:
            if v["passed"]:
                st.success(f"PASSED: {cand} against {base} (default thresholds)")
            else:
                st.error(f"FAILED: {', '.join(v['failed_checks'])}")
            st.dataframe(
                [
                    {k: c[k] for k in ("id", "passed", "observed", "comparison", "threshold", "reason")}
                    for c in v["checks"]
                ],
                hide_index=True,
            )
    st.subheader("Estimators side by side")
    st.dataframe(estimator_table(report), hide_index=True)
