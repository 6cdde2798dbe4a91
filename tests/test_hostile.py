"""Hostile and careless input: every command exits with its contract code, and nothing is lost.

Exit codes: 0 pass, 1 gate failed, 2 bad input or usage (one paragraph naming the file,
the place and the fix), 3 internal error (one paragraph; the traceback only with --debug).
Small synthetic files, so the corpus runs in well under a minute.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from roadworthy.cli import app
from tests.conftest import make_table, write_table

runner = CliRunner()
OBS, ACT = ["f0", "f1", "f2"], ["u0", "u1"]


def save_policy(graph, path, name: str | None):
    """A model of ``graph`` written to ``path``, with roadworthy metadata naming it ``name`` (None: none)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if name is not None:
        helper.set_model_props(model, {"roadworthy": json.dumps({"name": name, "obs_names": OBS, "action_names": ACT})})
    # Raw bytes: onnx.save_model would act on external-data entries, which one of these models holds on purpose.
    path.write_bytes(model.SerializeToString())
    return path


def policy(path, *, name="lin", scale=0.1, weights=None, meta=True):
    """obs [B,3] @ W [3,2] -> action, with roadworthy metadata matching the synthetic log."""
    w = weights if weights is not None else np.arange(6, dtype=np.float32).reshape(3, 2) * scale
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "W"], ["action"])],
        "g",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["B", 3])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["B", 2])],
        initializer=[numpy_helper.from_array(np.asarray(w, np.float32), "W")],
    )
    return save_policy(graph, path, name if meta else None)


def subgraph_external_policy(path):
    """A policy whose If branch holds a Constant whose tensor lives in an external file."""
    ext = numpy_helper.from_array(np.ones((3, 2), np.float32), "C")
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    for k, v in {"location": "../secret.bin", "offset": "0", "length": "24"}.items():
        e = ext.external_data.add()
        e.key, e.value = k, v
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value=ext)],
        "b",
        [],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [3, 2])],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    graph = helper.make_graph(
        [
            helper.make_node("If", ["cond"], ["W"], then_branch=branch, else_branch=branch),
            helper.make_node("MatMul", ["obs", "W"], ["action"]),
        ],
        "g",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["B", 3])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["B", 2])],
        initializer=[cond],
    )
    return save_policy(graph, path, "x")


def endless_loop_policy(path):
    """538 bytes: a Loop of 10^15 iterations before the action (it would run for days)."""
    body = helper.make_graph(
        [helper.make_node("Add", ["x_in", "one"], ["x_out"]), helper.make_node("Identity", ["c_in"], ["c_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, [1]),
        ],
        initializer=[numpy_helper.from_array(np.ones(1, np.float32), "one")],
    )
    consts = {"M": np.array(10**15, np.int64), "c": np.array(True), "x0": np.zeros(1, np.float32)}
    graph = helper.make_graph(
        [
            helper.make_node("Loop", ["M", "c", "x0"], ["xf"], body=body),
            helper.make_node("MatMul", ["obs", "W"], ["mm"]),
            helper.make_node("Mul", ["xf", "zero"], ["z"]),
            helper.make_node("Add", ["mm", "z"], ["action"]),
        ],
        "g",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["B", 3])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["B", 2])],
        initializer=[
            *(numpy_helper.from_array(v, k) for k, v in consts.items()),
            numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
            numpy_helper.from_array(np.ones((3, 2), np.float32), "W"),
        ],
    )
    return save_policy(graph, path, "loop")


def memory_hog_policy(path):
    """391 bytes that ask for 2.8 GB: a ConstantOfShape of 700 million floats before the action."""
    graph = helper.make_graph(
        [
            helper.make_node(
                "ConstantOfShape", ["shape"], ["big"], value=numpy_helper.from_array(np.array([1.0], np.float32))
            ),
            helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0),
            helper.make_node("Mul", ["s", "zero"], ["z"]),
            helper.make_node("MatMul", ["obs", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "z"], ["action"]),
        ],
        "g",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["B", 3])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["B", 2])],
        initializer=[
            numpy_helper.from_array(np.array([700_000_000], np.int64), "shape"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(np.ones((3, 2), np.float32), "W"),
        ],
    )
    return save_policy(graph, path, "hog")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel

    root = tmp_path_factory.mktemp("hostile")
    logs = root / "logs"
    logs.mkdir()
    write_table(make_table(episodes=12, steps=20), logs / "part.parquet")
    model = root / "model"
    BehaviorModel.fit(logs, BehaviorConfig(model="gmm", min_bin=10)).save(model)
    one = write_table(make_table(episodes=1, steps=20), root / "one.parquet")
    junk = root / "junk.parquet"
    junk.write_bytes(b"PAR1 not really")
    good = policy(root / "good.onnx")
    markup = policy(root / "markup.onnx", name="[/]weird | pass\n## roadworthy gate: PASSED")
    nan = policy(root / "nan.onnx", weights=np.full((3, 2), np.nan))
    huge = policy(root / "huge.onnx", scale=1000.0)
    ext = subgraph_external_policy(root / "ext.onnx")
    (root / "secret.bin").write_bytes(np.ones(6, np.float32).tobytes())
    return {
        "root": root,
        "logs": logs,
        "model": model,
        "one": one,
        "junk": junk,
        "good": good,
        "markup": markup,
        "nan": nan,
        "huge": huge,
        "ext": ext,
    }


def run(*args):
    res = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in res.output, res.output
    return res


QUICK = ["--estimator", "fqe", "--heads", "2", "--iterations", "3"]


def test_malformed_logs_exit_2_for_every_reader(corpus):
    j = corpus["junk"]
    for args in (
        ["validate", j],
        ["fit", j, "-o", corpus["root"] / "m-junk"],
        ["score", j, "-m", corpus["model"], "-o", corpus["root"] / "f-junk.parquet"],
        ["evaluate", j, "--policy", corpus["good"], "--model", corpus["model"]],
        ["gate", j, "--candidate", corpus["good"], "--model", corpus["model"]],
    ):
        res = run(*args)
        assert res.exit_code == 2 and "junk.parquet" in res.stderr, (args, res.output)


def test_damaged_model_folders_exit_2(corpus, tmp_path):
    import shutil

    for damage in ("truncated", "json_list", "missing"):
        folder = tmp_path / damage
        shutil.copytree(corpus["model"], folder)
        arrays = next(folder.glob("*.npz"))
        meta = next(folder.glob("*.json"))
        if damage == "truncated":
            arrays.write_bytes(arrays.read_bytes()[: arrays.stat().st_size // 2])
        elif damage == "json_list":
            meta.write_text("[1, 2, 3]")
        else:
            arrays.unlink()
        for args in (
            ["score", corpus["logs"], "-m", folder, "-o", tmp_path / f"{damage}.parquet"],
            ["evaluate", corpus["logs"], "--policy", corpus["good"], "--model", folder],
        ):
            res = run(*args)
            assert res.exit_code == 2 and damage in res.stderr, (damage, args, res.output)


def test_broken_and_malicious_policies_exit_2_before_any_fitting(corpus):
    logs, model = corpus["logs"], corpus["model"]
    res = run("score", logs, "-m", model, "-o", corpus["root"] / "f-nan.parquet", "--policy", corpus["nan"])
    assert res.exit_code == 2 and "NaN or infinite" in res.stderr and "nan.onnx" in res.stderr
    res = run("evaluate", logs, "--policy", corpus["nan"], "--model", model, *QUICK)
    assert res.exit_code == 2 and "NaN or infinite" in res.stderr
    res = run("evaluate", logs, "--policy", corpus["ext"], "--model", model)
    assert res.exit_code == 2 and "external data" in res.stderr
    res = run("gate", logs, "--candidate", corpus["root"] / "typo.onnx", "--model", model)
    assert res.exit_code == 2 and "typo.onnx" in res.stderr


def test_a_runaway_policy_is_stopped_at_the_time_limit(corpus, monkeypatch):
    monkeypatch.setenv("ROADWORTHY_POLICY_TIMEOUT", "1.5")
    loop = endless_loop_policy(corpus["root"] / "loop.onnx")
    res = run("evaluate", corpus["logs"], "--policy", loop, "--model", corpus["model"])
    # The message names the limit that stopped it; how long that took is a benchmark's question.
    assert res.exit_code == 2 and "loop.onnx" in res.stderr and "longer than 1.5 s" in res.stderr


def test_a_memory_hog_is_refused_in_a_capped_child_process(corpus, monkeypatch):
    monkeypatch.setenv("ROADWORTHY_POLICY_MEMORY_MB", "768")
    hog = memory_hog_policy(corpus["root"] / "hog.onnx")
    assert hog.stat().st_size < 1000
    res = run("score", corpus["logs"], "-m", corpus["model"], "-o", corpus["root"] / "f-hog.parquet", "--policy", hog)
    assert res.exit_code == 2 and "hog.onnx" in res.stderr and "768 MB memory cap" in res.stderr


def test_out_of_bounds_actions_are_counted_and_flagged(corpus, tmp_path):
    res = run(
        "evaluate",
        corpus["logs"],
        "--policy",
        corpus["huge"],
        "--model",
        corpus["model"],
        *QUICK,
        "--json",
        tmp_path / "r.json",
    )
    assert res.exit_code == 0, res.output
    entry = json.loads((tmp_path / "r.json").read_text())["policies"][0]
    assert entry["out_of_bounds"]["share"] > 0.5 and entry["out_of_bounds"]["decisions"] > 0


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[evaluation]\nseed = -1\n", "[evaluation].seed"),
        ("[value]\nmargin = inf\n", "[value].margin"),
        ("[costs.limits]\ncollision = -0.1\n", "[costs.limits].collision"),
        ("[evaluation]\nheads = 100000\n", "beyond what one machine"),
        ('[value]\nbound = "upper"\n', "[value].bound"),
    ],
)
def test_bad_gate_configs_exit_2_before_evaluating(corpus, tmp_path, toml, needle):
    cfg = tmp_path / "gate.toml"
    cfg.write_text(toml)
    res = run("gate", corpus["logs"], "--candidate", corpus["good"], "--model", corpus["model"], "--config", cfg)
    assert res.exit_code == 2 and needle in " ".join(res.stderr.split()), res.output


def test_bad_options_exit_2(corpus, tmp_path):
    logs, model = corpus["logs"], corpus["model"]
    res = run("evaluate", logs, "--policy", corpus["good"], "--model", model, "--iterations", "-5")
    assert res.exit_code == 2 and "iterations" in res.stderr
    res = run("evaluate", logs, "--policy", corpus["good"], "--model", model, "--seed", "-3")
    assert res.exit_code == 2 and "--seed" in res.stderr
    res = run("evaluate", corpus["one"], "--policy", corpus["good"], "--model", model)
    assert res.exit_code == 2 and "1 episode" in res.stderr
    res = run("gate", logs, "--candidate", corpus["good"], "--model", model, "--seed", "-1")
    assert res.exit_code == 2 and "--seed" in res.stderr


def test_outputs_never_land_on_inputs_or_existing_files(corpus, tmp_path):
    logs, model = corpus["logs"], corpus["model"]
    before = sorted(p.name for p in logs.iterdir())
    res = run("fit", logs, "-o", logs)
    assert res.exit_code == 2 and "also an input" in res.stderr
    res = run("fit", logs, "-o", logs / "model-inside")
    assert res.exit_code == 2 and "inside the input" in res.stderr
    res = run("fit", logs / "part.parquet", "-o", logs)
    assert res.exit_code == 2 and "holds the input" in res.stderr
    part = logs / "part.parquet"
    size = part.stat().st_size
    res = run("score", part, "-m", model, "-o", part)
    assert res.exit_code == 2 and "also an input" in res.stderr
    assert sorted(p.name for p in logs.iterdir()) == before and part.stat().st_size == size
    res = run("validate", logs, "--json", tmp_path)
    assert res.exit_code == 2 and "is a folder" in res.stderr
    existing = tmp_path / "summary.json"
    existing.write_text("{}")
    res = run("validate", logs, "--json", existing)
    assert res.exit_code == 2 and "--overwrite" in res.stderr and existing.read_text() == "{}"
    assert run("validate", logs, "--json", existing, "--overwrite").exit_code == 0
    assert json.loads(existing.read_text())["episodes"] == 12
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere.json")
    res = run("validate", logs, "--json", link)
    assert res.exit_code == 2 and "symbolic link" in res.stderr
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    res = run("import", "carla", part, "--map", part, "--out", a_file)
    assert res.exit_code == 2 and "is a file, not a folder" in res.stderr


def test_names_are_shown_as_written_and_escaped_in_summaries(corpus, tmp_path):
    res = run(
        "score", corpus["logs"], "-m", corpus["model"], "-o", tmp_path / "f.parquet", "--policy", corpus["markup"]
    )
    assert res.exit_code == 0, res.output
    assert "[/]weird" in res.stdout
    from roadworthy.evaluator.gate_render import junit_xml, markdown

    verdict = {
        "passed": False,
        "failed_checks": ["coverage_min"],
        "candidate": {
            "name": "x | pass |\n## roadworthy gate: PASSED <b>&",
            "value": {"estimate": 1.0, "lower": 0.0, "upper": 2.0},
        },
        "baseline": {"name": "b", "value": {"estimate": 1.0, "lower": 0.0, "upper": 2.0}},
        "logs": {"path": "l", "rows": 1, "episodes": 1},
        "seed": 0,
        "checks": [
            {
                "id": "coverage_min",
                "passed": False,
                "observed": 0.5,
                "comparison": ">=",
                "threshold": 0.95,
                "reason": "too low",
            },
        ],
    }
    md = markdown(verdict)
    assert md.count("## roadworthy gate") == 1 and "FAILED" in md and "<b>" not in md
    assert md.count("\n| ") == 2  # the header and the one check row: a name adds no row
    root = ET.fromstring(junit_xml(verdict))
    assert "<b>&" in root.find("testsuite").get("name")


def test_internal_errors_exit_3_with_one_paragraph(corpus, monkeypatch):
    import roadworthy.data.validate as validate_module

    def broken(*args, **kwargs):
        raise RuntimeError("a planted bug")

    monkeypatch.setattr(validate_module.LogValidator, "finish", broken)
    res = run("validate", corpus["logs"])
    assert res.exit_code == 3 and "internal error" in res.stderr and "a planted bug" in res.stderr
    assert "--debug" in res.stderr and "Traceback" not in res.stderr
    res = runner.invoke(app, ["--debug", "validate", str(corpus["logs"])])
    assert res.exit_code == 3 and "Traceback" in res.stderr and "a planted bug" in res.stderr


def test_sigterm_during_collect_leaves_nothing_behind(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    pytest.importorskip("highway_env")
    out = tmp_path / "logs"
    cli = [sys.executable, "-m", "roadworthy.cli"]
    cmd = [*cli, "collect", "highway", "-n", "40", "--out", str(out), "--workers", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".collect-") for p in tmp_path.iterdir()):
        time.sleep(0.2)
    assert any(p.name.startswith(".collect-") for p in tmp_path.iterdir()), "collect never started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path)) == [], os.listdir(tmp_path)


def test_odd_logs_and_existing_outputs_of_other_commands(corpus, tmp_path):
    wide = write_table(make_table(episodes=4, steps=5, d=300), tmp_path / "wide.parquet")
    res = run("fit", wide, "-o", tmp_path / "m", "--model", "gmm")
    assert res.exit_code == 2 and "too many for a full-covariance" in res.stderr and not (tmp_path / "m").exists()
    pols = tmp_path / "pols"
    assert run("example-policies", "--out", pols).exit_code == 0
    res = run("example-policies", "--out", pols)
    assert res.exit_code == 2 and "--overwrite" in res.stderr
    assert run("example-policies", "--out", pols, "--overwrite").exit_code == 0
    res = run(
        "score",
        corpus["logs"],
        "-m",
        corpus["model"],
        "-o",
        tmp_path / "f.parquet",
        "--policy",
        corpus["huge"],
        "--json",
        "-",
    )
    assert res.exit_code == 0, res.output
    counts = json.loads(res.stdout)
    assert counts["out_of_bounds"] > 0.5 * counts["rows"] and counts["is_ood"] >= counts["out_of_bounds"]


def test_every_other_command_refuses_bad_input_with_exit_2(corpus, tmp_path):
    j = corpus["junk"]
    cases = [
        (["dashboard", j], "junk.parquet"),
        (["dashboard", corpus["logs"], "--report", tmp_path / "missing.json"], "missing.json"),
        (["carla", "info", j], "junk.parquet"),
        (["collect", "highway", "-n", "0", "--out", tmp_path / "c"], "--episodes"),
        (["collect", "highway", "-n", "2", "--out", tmp_path / "c", "--seed", "-1"], "--seed"),
        (["rollout", "highway", "--policy", corpus["good"], "-n", "1"], "good.onnx"),
        (["rollout", "highway", "--policy", corpus["nan"], "-n", "1"], "nan.onnx"),
        (["demo", "--out", corpus["logs"]], "not made by `roadworthy demo`"),
    ]
    for args, needle in cases:
        res = run(*args)
        assert res.exit_code == 2 and needle in " ".join(res.stderr.split()), (args, res.output)
