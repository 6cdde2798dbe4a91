"""The command line: exit codes are its contract; JSON goes to its file or stdout alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from roadworthy.cli import app
from tests.conftest import make_table, write_table

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_validate_ok_and_json_to_stdout_alone(make_log):
    path = make_log(make_table(episodes=3, steps=4))
    res = run("validate", path, "--json", "-")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["episodes"] == 3 and data["rows"] == 12
    assert "Valid driving log" in res.stderr


def test_validate_json_to_file(make_log, tmp_path):
    path = make_log(make_table())
    res = run("validate", path, "--json", tmp_path / "out" / "s.json")
    assert res.exit_code == 0
    assert json.loads((tmp_path / "out" / "s.json").read_text())["files"] == 1
    assert "Valid driving log" in res.stdout


def _broken(tmp_path: Path, kind: str) -> Path:
    t = make_table(episodes=2, steps=4)
    if kind == "nan":
        r = t.column("reward").to_numpy().copy()
        r[2] = np.nan
        t = t.set_column(t.schema.get_field_index("reward"), "reward", pa.array(r))
    elif kind == "missing":
        t = t.drop_columns(["done"])
    elif kind == "truncated":
        p = write_table(t, tmp_path / "t.parquet")
        p.write_bytes(p.read_bytes()[:100])
        return p
    elif kind == "empty-dir":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    return write_table(t, tmp_path / f"{kind}.parquet")


@pytest.mark.parametrize("kind", ["nan", "missing", "truncated", "empty-dir"])
def test_bad_input_exits_2_with_one_paragraph_and_no_traceback(tmp_path, kind):
    path = _broken(tmp_path, kind)
    res = run("validate", path)
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    assert str(path) in res.stderr and "Hint:" in res.stderr
    assert res.stdout == ""


def test_usage_error_exits_2():
    assert run("validate").exit_code == 2
    assert run("collect", "highway", "--episodes", "1").exit_code == 2


def test_collect_option_errors_exit_2(tmp_path):
    res = run("collect", "highway", "--episodes", "0", "--out", tmp_path / "x")
    assert res.exit_code == 2 and "--episodes" in res.stderr
    res = run("collect", "highway", "--episodes", "1", "--out", tmp_path / "y", "--autopilot-share", "2")
    assert res.exit_code == 2


def test_rollout_with_a_pickle_policy_exits_2(tmp_path):
    evil = tmp_path / "evil.onnx"
    evil.write_bytes(b"\x80\x04\x95" + b"x" * 50)
    res = run("rollout", "highway", "--policy", evil, "--episodes", "1")
    assert res.exit_code == 2 and "pickle" in res.stderr


def test_help_everywhere():
    for cmd in (["--help"], ["validate", "--help"], ["collect", "highway", "--help"], ["rollout", "highway", "--help"]):
        res = run(*cmd)
        assert res.exit_code == 0 and "Usage" in res.output


def test_version():
    res = run("--version")
    assert res.exit_code == 0 and res.stdout.startswith("roadworthy ")


@pytest.mark.skipif(shutil.which("roadworthy") is None, reason="console script not installed")
def test_real_console_script_on_a_tiny_parquet_file(make_log, tmp_path):
    path = make_log(make_table(episodes=2, steps=3))
    ok = subprocess.run(["roadworthy", "validate", str(path), "--json", "-"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["rows"] == 6
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"junk")
    res = subprocess.run(["roadworthy", "validate", str(bad)], capture_output=True, text=True)
    assert res.returncode == 2 and "bad.parquet" in res.stderr and "Traceback" not in res.stderr


def test_import_evaluator_loads_no_heavy_optional_dependency():
    code = (
        "import sys, roadworthy, roadworthy.cli, roadworthy.data, roadworthy.density, roadworthy.evaluator\n"
        "import roadworthy.dashboards\n"
        "heavy = [m for m in ('carla', 'streamlit', 'ray', 'highway_env', 'gymnasium', 'pygame') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**os.environ})
    assert out.stdout.strip() == ""
