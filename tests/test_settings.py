"""Each setting has one default: the CLI, the API, the config dataclasses and the TOML docs agree."""

from __future__ import annotations

import inspect
import re
import tomllib
from pathlib import Path

import typer.main

from roadworthy import api
from roadworthy.cli import app
from roadworthy.evaluator.evaluate_config import EvaluateConfig
from roadworthy.evaluator.gate_config import EvaluationSection, GateConfig

ROOT = Path(__file__).resolve().parents[1]
#: CLI command -> the API function it calls (tests/cli/test_commands_call_api.py checks the call).
COMMANDS = {
    "validate": "validate",
    "fit": "fit",
    "score": "score",
    "evaluate": "evaluate",
    "gate": "gate",
    "collect highway": "collect",
    "collect carla": "collect_carla",
    "rollout highway": "rollout",
    "import carla": "import_carla",
    "import dmv": "import_dmv",
    "carla info": "carla_info",
    "dmv summary": "dmv_summary",
    "import sgo": "import_sgo",
    "sgo summary": "sgo_summary",
    "sgo rates": "sgo_rates",
    "example-policies": "example_policies",
    "dashboard": "dashboard_inputs",
    "demo": "demo",
}


def cli_defaults(path: str) -> dict:
    cmd = typer.main.get_command(app)
    for part in path.split():
        cmd = cmd.commands[part]
    return {p.name: p.default for p in cmd.params if not p.required}


def api_defaults(name: str) -> dict:
    sig = inspect.signature(getattr(api, name))
    return {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}


def documented_toml() -> dict:
    text = (ROOT / "docs" / "gate.md").read_text()
    block = re.search(r"## Settings.*?```toml\n(.*?)```", text, re.S).group(1)
    return tomllib.loads(block)


def same(a, b) -> bool:
    """Equal, reading a CLI's comma-separated list as the API's sequence."""

    def norm(v):
        if isinstance(v, str) and isinstance(b if v is a else a, tuple | list):
            return [x.strip() for x in v.split(",")]
        return list(v) if isinstance(v, tuple) else (str(v) if isinstance(v, Path) else v)

    return norm(a) == norm(b)


def test_cli_and_api_defaults_agree():
    diffs = []
    for command, function in COMMANDS.items():
        cli, py = cli_defaults(command), api_defaults(function)
        for name in set(cli) & set(py):
            if cli[name] is not None and not same(cli[name], py[name]):
                diffs.append(f"{command} --{name}: CLI {cli[name]!r}, api.{function} {py[name]!r}")
    assert not diffs, "\n".join(diffs)


def test_evaluate_flags_are_the_gate_tomls_evaluation_keys_with_the_same_defaults():
    section = EvaluationSection()
    cli = cli_defaults("evaluate")
    shared = [k for k in cli if hasattr(section, k)]
    assert {"gamma", "seed", "heads", "estimator", "model_steps", "iterations", "pessimism", "support_alpha"} <= set(
        shared
    )
    assert {k: cli[k] for k in shared} == {k: getattr(section, k) for k in shared}


def test_the_config_dataclasses_and_the_section_agree():
    # The flat section read back from the default config is the default section ...
    assert EvaluationSection.of(EvaluateConfig()) == EvaluationSection()
    # ... and the default section gives the default config (per-estimator heads follow ``heads``).
    made, default = EvaluationSection().to_config(), EvaluateConfig()
    assert made.fqe_config == default.fqe_config and made.rollout == default.rollout
    assert made.model.steps == default.model.steps and made.headline == default.headline


def test_the_documented_toml_lists_every_key_with_its_default():
    doc, default = documented_toml(), GateConfig().to_dict()
    for section in ("evaluation", "value", "coverage", "costs"):
        keys = {k for k, v in default[section].items() if not isinstance(v, dict)}
        assert set(doc[section]) - {"margins", "limits"} == keys, section
        for k in keys:
            assert same(doc[section][k], default[section][k]), f"[{section}].{k}: docs {doc[section][k]!r}"
    assert doc["costs"]["margins"] == default["costs"]["margins"]
