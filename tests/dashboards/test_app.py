"""Every page of the Streamlit app through streamlit.testing's AppTest, on real sample data."""

from __future__ import annotations

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from roadworthy.cli.dashboard_commands import app_path
from roadworthy.dashboards.inputs import ENV, dashboard_env

PAGES = [
    "Risk map",
    "Disengagements",
    "Policy comparison",
    "Episode replay",
    "Data health",
    "Fleet reports",
    "Crash reports",
]


def run_page(monkeypatch, page: str, logs, **inputs) -> AppTest:
    for k in ENV.values():
        monkeypatch.delenv(k, raising=False)
    for k, v in dashboard_env([logs], **inputs).items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_file(str(app_path()), default_timeout=240)
    at.run()
    assert not at.exception, at.exception
    at.sidebar.radio(key="page").set_value(page).run()
    assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


def test_risk_map_on_simulator_logs(monkeypatch, sim_logs, dash_report):
    at = run_page(monkeypatch, "Risk map", sim_logs, report=dash_report)
    assert at.header[0].value == "Risk map" and len(charts(at)) == 1
    fig = charts(at)[0].proto.spec
    assert '"type":"heatmap"' in fig.replace(" ", "") and "driving lanes" in fig
    at.selectbox(key="risk_metric").set_value("logged collisions").run()
    assert not at.exception and len(charts(at)) == 1
    at.selectbox(key="risk_metric").set_value("policy: out-of-distribution rate").run()
    assert not at.exception
    at.selectbox(key="risk_policy").set_value("swerve").run()
    assert not at.exception and "swerve" in charts(at)[0].proto.spec
    at.selectbox(key="risk_metric").set_value("policy: estimated cost-to-go of collision").run()
    assert not at.exception and len(charts(at)) == 1


def test_risk_map_on_a_carla_import(monkeypatch, carla_logs):
    at = run_page(monkeypatch, "Risk map", carla_logs)
    spec = charts(at)[0].proto.spec
    assert "sidewalk lanes" in spec and "heatmap" in spec
    assert any("left-handed" in c.value for c in at.caption)


def test_disengagements_page(monkeypatch, sim_logs, dash_model):
    at = run_page(monkeypatch, "Disengagements", sim_logs, model=dash_model)
    assert at.header[0].value == "Disengagements"
    if at.info and "No disengagements" in at.info[0].value:
        pytest.skip("the sample log has no takeover")
    labels = [m.label for m in at.metric]
    assert "takeovers" in labels and len(charts(at)) >= 4  # where, when, speed, ttc, p-value
    assert len(at.dataframe) >= 2


def test_policy_comparison_page(monkeypatch, sim_logs, dash_report):
    at = run_page(monkeypatch, "Policy comparison", sim_logs, report=dash_report)
    assert [m.label for m in at.metric][:2] == ["autopilot-clone", "swerve"]
    assert len(charts(at)) == 3
    at.selectbox(key="cmp_candidate").set_value("swerve").run()
    assert any("FAILED" in e.value and "coverage_min" in e.value for e in at.error)
    no_report = run_page(monkeypatch, "Policy comparison", sim_logs)
    assert no_report.info and "evaluation report" in no_report.info[0].value


def test_episode_replay_on_both_kinds_of_log(monkeypatch, sim_logs, carla_logs, dash_model):
    at = run_page(monkeypatch, "Episode replay", sim_logs, model=dash_model)
    assert len(charts(at)) == 1 and "ego (" in charts(at)[0].proto.spec
    at.slider(key="replay_step").set_value(20).run()
    assert not at.exception and "step 20" in charts(at)[0].proto.spec
    assert any(m.label == "action p-value" for m in at.metric)
    at = run_page(monkeypatch, "Episode replay", carla_logs)
    spec = charts(at)[0].proto.spec
    assert "nearby actors" in spec and "sidewalk lanes" in spec


def test_data_health_page(monkeypatch, sim_logs, carla_logs, make_log):
    at = run_page(monkeypatch, "Data health", sim_logs)
    assert at.success and "passed every check" in at.success[0].value
    at = run_page(monkeypatch, "Data health", carla_logs)
    assert at.success
    from tests.conftest import make_table

    bad = make_table()
    bad = bad.set_column(1, "step", __import__("pyarrow").array(bad.column("step").to_numpy() + 1))
    at = run_page(monkeypatch, "Data health", make_log(bad, name="bad.parquet"))
    assert at.error and "Rejected" in at.error[0].value


def test_fleet_reports_page(monkeypatch, sim_logs, dmv_dir):
    at = run_page(monkeypatch, "Fleet reports", sim_logs, dmv=str(dmv_dir))
    assert at.header[0].value == "Fleet reports"
    assert len(charts(at)) == 1 and len(at.dataframe) >= 4
    rates = at.dataframe[0].value
    assert "Waymo LLC" in set(rates["manufacturer"]) and rates["per_1000_miles"].notna().any()
    at.text_input(key="fleet_search").set_value("pedestrian").run()
    assert not at.exception, at.exception
    hits = at.dataframe[-1].value
    assert len(hits) > 0 and hits["description"].str.contains("pedestrian", case=False).all()


def test_fleet_reports_page_without_reports(monkeypatch, sim_logs):
    at = run_page(monkeypatch, "Fleet reports", sim_logs)
    assert any("roadworthy import dmv" in i.value for i in at.info)


def test_crash_reports_page(monkeypatch, sim_logs, sgo_dir, dmv_dir):
    at = run_page(monkeypatch, "Crash reports", sim_logs, sgo=str(sgo_dir), dmv=str(dmv_dir))
    assert at.header[0].value == "Crash reports"
    # Over time, breakdown, state map, rates.
    assert len(charts(at)) == 4
    specs = [c.proto.spec for c in charts(at)]
    assert '"barmode":"stack"' in specs[0].replace(" ", "") and "CA" in specs[2]
    assert "crashes per million" in specs[3]
    rates = at.dataframe[-1].value
    assert {"Waymo LLC", "CRUISE LLC"} <= set(rates["company"])
    assert (rates["crash ci low"] <= rates["crashes per million miles"]).all()
    assert any("whoever caused it" in c.value for c in at.caption)
    at.selectbox(key="sgo_system").set_value("ADAS").run()
    assert not at.exception, at.exception
    at.selectbox(key="sgo_breakdown").set_value("severity").run()
    assert not at.exception, at.exception
    at.text_input(key="sgo_search").set_value("pedestrian").run()
    assert not at.exception, at.exception
    hits = at.dataframe[-1].value
    assert len(hits) > 0 and hits["narrative"].str.contains("pedestrian", case=False).all()


def test_crash_reports_page_without_reports_or_miles(monkeypatch, sim_logs, sgo_dir):
    at = run_page(monkeypatch, "Crash reports", sim_logs)
    assert any("roadworthy import sgo" in i.value for i in at.info)
    at = run_page(monkeypatch, "Crash reports", sim_logs, sgo=str(sgo_dir))
    assert any("DMV folder" in i.value for i in at.info) and len(charts(at)) == 3


def test_cell_selection_is_read_from_the_chart_event():
    from types import SimpleNamespace

    from roadworthy.dashboards.views.risk_map import _selected_cells

    event = SimpleNamespace(selection=SimpleNamespace(points=[{"customdata": [3, -1]}, {"customdata": [3, -1]}, {}]))
    assert _selected_cells(event) == [(3, -1)]
    assert _selected_cells(None) == []
