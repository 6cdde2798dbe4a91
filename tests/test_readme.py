"""The README's commands and examples stay true: each is run or checked here."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roadworthy.cli import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
runner = CliRunner()


def _block(marker: str) -> str:
    m = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```\s*<!-- /{marker} -->", README, re.S)
    assert m, f"README has no {marker} block"
    return m.group(1).strip()


def test_two_commands_set_up_from_scratch():
    main, test = _block("main-command"), _block("test-command")
    for cmd in (main, test):
        assert cmd.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0")
    assert "roadworthy demo" in main
    assert "pytest" in test


def test_ci_runs_the_readme_test_command():
    ci = (Path(__file__).resolve().parents[1] / ".ci" / "run").read_text()
    assert "test-command" in ci


def _roadworthy_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("roadworthy "):
                    lines.append(part)
    return lines


@pytest.mark.parametrize("line", _roadworthy_lines())
def test_every_documented_command_and_option_exists(line):
    args = shlex.split(line)[1:]
    words = [a for a in args if not a.startswith("-")]
    # The sub-command path is the leading words that name commands.
    path = []
    for w in words:
        if runner.invoke(app, [*path, w, "--help"]).exit_code == 0:
            path.append(w)
        else:
            break
    assert path, line
    help_text = runner.invoke(app, [*path, "--help"], terminal_width=200).output
    for opt in (a.split("=")[0] for a in args if a.startswith("--")):
        assert opt in help_text, f"{opt} of `{line}` is not an option of `roadworthy {' '.join(path)}`"


def test_python_example_runs(sim_logs, capsys):
    # The driving-log example (the API example needs the demo's output; tests/test_api.py
    # runs those functions).
    code = next(b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "iter_transitions" in b)
    exec(compile(code.replace("runs/demo/logs", str(sim_logs)), "README.md", "exec"), {})
    assert "(" in capsys.readouterr().out
