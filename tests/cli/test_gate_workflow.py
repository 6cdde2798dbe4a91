"""`roadworthy gate` run exactly as the example GitHub Actions workflow runs it, on sample logs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roadworthy.cli import app

yaml = pytest.importorskip("yaml")
pytest.importorskip("highway_env")
ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "examples" / "roadworthy-gate.yml"
# Small estimator settings so that the test fits in CI; the thresholds are the defaults.
# Fitted Q evaluation as headline: on 12 episodes of 12 s the learned driving model's three
# members disagree about the noisy candidate by several points, so the paired lower bound
# (t with 2 degrees of freedom) cannot show non-inferiority. That is a fair "not enough
# evidence" verdict, but this test is about the workflow; benchmarks/bench_gate.py
# measures the default headline's power on realistic logs.
GATE_TOML = """
[evaluation]
estimator = "fqe"
heads = 3
model_steps = 300
steps_per_iteration = 10
hidden_units = 32
"""


def gate_step() -> tuple[str, dict]:
    flow = yaml.safe_load(WORKFLOW.read_text())
    job = flow["jobs"]["gate"]
    step = next(s for s in job["steps"] if s.get("name") == "Gate")
    return step["run"], job["env"]


@pytest.fixture(scope="module")
def repo(sim_logs, tmp_path_factory):
    """A checkout laid out as the workflow expects: logs, models, gate.toml."""
    from roadworthy.data.sim.policies import example_policy_path

    root = tmp_path_factory.mktemp("repo")
    _, env = gate_step()
    shutil.copytree(sim_logs, root / env["LOGS"])
    (root / env["GATE_CONFIG"]).write_text(GATE_TOML)
    models = root / Path(env["CANDIDATE"]).parent
    models.mkdir(parents=True)
    shutil.copyfile(example_policy_path("autopilot-clone"), root / env["BASELINE"])
    for name in ("stochastic", "swerve"):
        shutil.copyfile(example_policy_path(name), models / f"{name}.onnx")
    return root


def run_workflow_step(repo: Path, candidate: str, summary: Path) -> subprocess.CompletedProcess:
    script, env = gate_step()
    full = {**os.environ, **env, "CANDIDATE": f"models/{candidate}.onnx", "GITHUB_STEP_SUMMARY": str(summary)}
    full["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full['PATH']}"
    for f in ("verdict.json", "junit.xml"):
        (repo / f).unlink(missing_ok=True)
    return subprocess.run(["bash", "-e", "-c", script], cwd=repo, env=full, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def workflow(repo, tmp_path_factory):
    """The workflow's gate step run for a safe and an unsafe candidate, with their outputs."""
    summary = tmp_path_factory.mktemp("summary") / "summary.md"
    runs = {}
    for name in ("stochastic", "swerve"):
        proc = run_workflow_step(repo, name, summary)
        runs[name] = {
            "proc": proc,
            "verdict": (repo / "verdict.json").read_bytes(),
            "junit": (repo / "junit.xml").read_text(),
            "summary": summary.read_text(),
        }
    return runs


@pytest.mark.slow
def test_workflow_passes_a_safe_candidate_and_fails_an_unsafe_one(workflow):
    ok = workflow["stochastic"]
    assert ok["proc"].returncode == 0, ok["proc"].stdout + ok["proc"].stderr
    v = json.loads(ok["verdict"])
    assert v["passed"] and v["verdict_version"] == 1 and v["candidate"]["name"] == "stochastic"
    assert v["baseline"]["name"] == "autopilot-clone" and len(v["candidate"]["sha256"]) == 64
    assert "roadworthy gate: PASSED" in ok["summary"]

    bad = workflow["swerve"]
    assert bad["proc"].returncode == 1, bad["proc"].stdout + bad["proc"].stderr
    v = json.loads(bad["verdict"])
    assert not v["passed"] and "coverage_min" in v["failed_checks"]
    assert "cost_non_inferiority.off_road" in v["failed_checks"]
    cases = ET.fromstring(bad["junit"]).findall(".//testcase")
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == set(v["failed_checks"])
    assert "gate FAILED" in bad["proc"].stdout and "coverage_min" in bad["proc"].stdout
    assert bad["summary"].count("## roadworthy gate") == 2


@pytest.mark.slow
def test_same_inputs_and_seed_give_a_byte_identical_verdict(repo, workflow, monkeypatch):
    """In-process run against the workflow's own (separate-process) verdict file."""
    _, env = gate_step()
    monkeypatch.chdir(repo)  # the verdict records the paths as given, relative to the checkout
    args = ["gate", env["LOGS"], "--candidate", "models/stochastic.onnx", "--baseline", env["BASELINE"]]
    res = CliRunner().invoke(app, [*args, "--config", env["GATE_CONFIG"], "--seed", "0", "--json", "again.json"])
    assert res.exit_code == 0, res.output
    assert (repo / "again.json").read_bytes() == workflow["stochastic"]["verdict"]


def test_gate_errors_exit_2(repo, tmp_path):
    runner = CliRunner()
    logs = str(repo / "fleet-logs")
    bad = tmp_path / "gate.toml"
    bad.write_text("[value]\nmargni = 1\n")
    res = runner.invoke(app, ["gate", logs, "--candidate", str(repo / "models/stochastic.onnx"), "--config", str(bad)])
    assert res.exit_code == 2 and "margni" in res.stderr and "valid keys" in res.stderr
    evil = tmp_path / "evil.pt2"
    evil.write_bytes(b"\x80\x04K\x01.")
    res = runner.invoke(app, ["gate", logs, "--candidate", str(evil)])
    assert res.exit_code == 2 and "--allow-code" in " ".join(res.stderr.split())
