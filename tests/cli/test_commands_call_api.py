"""Every command is one call of the public API: the CLI parses, calls, renders."""

from __future__ import annotations

import ast
import inspect
import textwrap

import typer.main

import roadworthy
from roadworthy.cli import app


def leaf_commands() -> dict:
    out = {}

    def walk(cmd, path: str) -> None:
        if getattr(cmd, "commands", None):  # a group (typer may vendor its own click)
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}".strip())
        else:
            out[path] = cmd

    walk(typer.main.get_command(app), "")
    return out


def api_calls(func) -> list[str]:
    src = textwrap.dedent(inspect.getsource(inspect.unwrap(func)))
    calls = []
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "api" and node.func.attr in roadworthy.API:
                calls.append(node.func.attr)
    return calls


def test_every_command_calls_exactly_one_api_function():
    commands = leaf_commands()
    assert len(commands) >= 15, sorted(commands)
    found = {name: api_calls(cmd.callback) for name, cmd in commands.items()}
    wrong = {name: calls for name, calls in found.items() if len(calls) != 1}
    assert not wrong, f"commands that do not call exactly one roadworthy.api function: {wrong}"
    # Each public function is some command's (and the command is named after it, give or take).
    assert set(roadworthy.API) == {c for calls in found.values() for c in calls}


def test_the_api_names_every_function_the_package_exports():
    from roadworthy import api

    for name in roadworthy.API:
        assert callable(getattr(api, name)) and callable(getattr(roadworthy, name))
        assert getattr(api, name).__doc__, name
