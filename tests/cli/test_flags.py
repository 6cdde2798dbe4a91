"""Library errors name API parameters; the CLI shows its own flags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from typer.testing import CliRunner

from roadworthy.cli import app
from roadworthy.cli.evaluate_commands import evaluate
from roadworthy.cli.flags import cli_message, command_flags

ROOT = Path(__file__).resolve().parents[2]
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")


def test_no_string_below_the_cli_names_a_flag():
    found = []
    for layer in ("data", "density", "evaluator", "dashboards"):
        for path in sorted((ROOT / layer).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and FLAG.search(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {FLAG.search(node.value).group(0)}")
    assert not found, "\n".join(found)


def test_quoted_parameters_become_the_commands_flags():
    flags = command_flags(evaluate)
    assert flags["support_alpha"] == "--support-alpha" and flags["logs"] == "LOGS"
    msg = "`support_alpha` must lie in (0, 1), got 2. Hint: set `overwrite`, or see `roadworthy fit` and `nothing`."
    assert cli_message(msg, evaluate) == (
        "--support-alpha must lie in (0, 1), got 2. Hint: set --overwrite, or see `roadworthy fit` and `nothing`."
    )
    assert cli_message("`policies`: none given", evaluate) == "--policy: none given"


def test_an_api_error_reads_in_flags_on_the_command_line(tmp_path):
    from roadworthy.data.errors import UsageError
    from roadworthy.evaluator.evaluate_config import EvaluateConfig

    try:
        EvaluateConfig(gamma=2.0).validate()
    except UsageError as exc:
        assert str(exc).startswith("`gamma` must lie in (0, 1]")
    res = CliRunner().invoke(app, ["evaluate", str(tmp_path), "--policy", "p.onnx", "--gamma", "2"])
    assert res.exit_code == 2 and "--gamma must lie in (0, 1]" in res.stderr and "`gamma`" not in res.stderr
