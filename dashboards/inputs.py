"""What the dashboard shows: the inputs ``roadworthy dashboard`` passes through the environment.

Streamlit runs the app as a script, so the command line hands over its inputs in
environment variables (``os.pathsep``-separated lists): ``ROADWORTHY_LOGS``,
``ROADWORTHY_REPORT``, ``ROADWORTHY_MODEL``, ``ROADWORTHY_TRUTH`` (a rollout JSON),
``ROADWORTHY_ENGINE`` and ``ROADWORTHY_RAY_ADDRESS`` (where the aggregates are computed),
``ROADWORTHY_DMV`` and ``ROADWORTHY_SGO`` (imported public reports).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

#: The environment variable of each input.
ENV = {
    "logs": "ROADWORTHY_LOGS",
    "report": "ROADWORTHY_REPORT",
    "model": "ROADWORTHY_MODEL",
    "truth": "ROADWORTHY_TRUTH",
    "engine": "ROADWORTHY_ENGINE",
    "address": "ROADWORTHY_RAY_ADDRESS",
    "dmv": "ROADWORTHY_DMV",
    "sgo": "ROADWORTHY_SGO",
}


@dataclass(frozen=True)
class DashboardInputs:
    """Paths given to the dashboard (strings, so that they hash for Streamlit's caches)."""

    logs: tuple[str, ...] = ()
    report: str | None = None
    model: str | None = None
    truth: str | None = None
    engine: str = "local"
    address: str | None = None
    dmv: str | None = None
    sgo: str | None = None


def dashboard_env(
    logs, report=None, model=None, truth=None, engine: str = "local", address=None, dmv=None, sgo=None
) -> dict[str, str]:
    """The environment that hands the inputs to the app (paths made absolute; nothing checked)."""
    env = {ENV["logs"]: os.pathsep.join(str(Path(p).resolve()) for p in logs), ENV["engine"]: engine}
    if address:
        env[ENV["address"]] = address
    for key, value in (("report", report), ("model", model), ("truth", truth), ("dmv", dmv), ("sgo", sgo)):
        if value:
            env[ENV[key]] = str(Path(value).resolve())
    return env


def inputs_from_env(environ: dict | None = None) -> DashboardInputs:
    """Read the inputs back (missing variables: nothing given)."""
    env = os.environ if environ is None else environ
    logs = tuple(p for p in env.get(ENV["logs"], "").split(os.pathsep) if p)
    return DashboardInputs(
        logs=logs,
        report=env.get(ENV["report"]) or None,
        model=env.get(ENV["model"]) or None,
        truth=env.get(ENV["truth"]) or None,
        engine=env.get(ENV["engine"]) or "local",
        address=env.get(ENV["address"]) or None,
        dmv=env.get(ENV["dmv"]) or None,
        sgo=env.get(ENV["sgo"]) or None,
    )


def read_json(path: str | None) -> dict | None:
    """A JSON file, or None when no path is given."""
    return None if not path else json.loads(Path(path).read_text())
