"""The README's main job (`roadworthy demo`) and the simulator commands, end to end, small."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from roadworthy.cli import app

pytest.importorskip("highway_env")
runner = CliRunner()


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = runner.invoke(
        app, ["demo", "--out", str(out), "--episodes", "6", "--rollout-episodes", "2", "--workers", "2", "--quick"]
    )
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 6
    rollout = json.loads((out / "rollout.json").read_text())
    names = [p["name"] for p in rollout["policies"]]
    assert names == ["autopilot-clone", "cautious", "fast", "tailgater", "swerve", "stochastic"]
    assert all(len(p["returns"]) == 2 for p in rollout["policies"])
    flags = json.loads((out / "flags.json").read_text())
    assert set(flags["policies"]) == set(names) and (out / "model" / "model.json").is_file()
    assert flags["policies"]["swerve"]["ood_rate"] > flags["policies"]["autopilot-clone"]["ood_rate"]
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert [p["name"] for p in evaluation["policies"]] == names
    assert (out / "evaluation.md").read_text().startswith("# roadworthy evaluation")
    # Running it again into its own folder works; a foreign folder is refused.
    again = runner.invoke(app, ["demo", "--out", str(out), "--episodes", "3", "--rollout-episodes", "1", "--quick"])
    assert again.exit_code == 0, again.output
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "x").write_text("keep")
    assert runner.invoke(app, ["demo", "--out", str(foreign)]).exit_code == 2


def test_collect_and_rollout_commands(tmp_path):
    res = runner.invoke(
        app,
        [
            "collect",
            "highway",
            "-n",
            "2",
            "--out",
            str(tmp_path / "l"),
            "--duration",
            "4",
            "--json",
            str(tmp_path / "c.json"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "c.json").read_text())["summary"]["episodes"] == 2
    pol = tmp_path / "pol"
    assert runner.invoke(app, ["example-policies", "--out", str(pol)]).exit_code == 0
    res = runner.invoke(
        app,
        [
            "rollout",
            "highway",
            "-p",
            str(pol / "cautious.onnx"),
            "-n",
            "2",
            "--duration",
            "4",
            "--gamma",
            "0.9",
            "--json",
            "-",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["gamma"] == 0.9 and report["policies"][0]["name"] == "cautious"
