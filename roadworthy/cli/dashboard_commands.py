"""``roadworthy dashboard``: start the Streamlit app on localhost."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from roadworthy.cli.common import handle_errors, stderr
from roadworthy.cli.data_commands import AddressOpt, EngineOpt


def app_path() -> Path:
    """The dashboard's Streamlit script, found without importing the package.

    Streamlit runs the app in its own process; this process imports only the light
    :mod:`roadworthy.dashboards.inputs`.
    """
    spec = importlib.util.find_spec("roadworthy.dashboards")
    if spec is None or not spec.submodule_search_locations:
        from roadworthy.data.errors import UsageError

        raise UsageError("the dashboards package is not installed", "pip install 'roadworthy[dashboard]'")
    return Path(next(iter(spec.submodule_search_locations))) / "app.py"


def streamlit_command(port: int, host: str) -> list[str]:
    """The command line that serves the app (headless, no telemetry)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path()),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
    ]


@handle_errors
def dashboard(
    logs: Annotated[
        list[Path] | None, typer.Argument(help="Driving logs (.parquet files or folders).", show_default=False)
    ] = None,
    report: Annotated[Path | None, typer.Option(help="An evaluation report (roadworthy evaluate --json).")] = None,
    model: Annotated[Path | None, typer.Option(help="A behaviour model (roadworthy fit), to flag steps.")] = None,
    truth: Annotated[
        Path | None, typer.Option(help="A rollout JSON (roadworthy rollout --json), as ground truth.")
    ] = None,
    port: Annotated[int, typer.Option(help="Port on localhost.")] = 8501,
    host: Annotated[str, typer.Option(help="Address to listen on (localhost by default).")] = "127.0.0.1",
    engine: EngineOpt = "local",
    address: AddressOpt = None,
    dmv: Annotated[
        Path | None, typer.Option(help="A folder from `roadworthy import dmv`, for the Fleet reports page.")
    ] = None,
    sgo: Annotated[
        Path | None, typer.Option(help="A folder from `roadworthy import sgo`, for the Crash reports page.")
    ] = None,
) -> None:
    """Start the dashboards (risk map, disengagements, comparison, replay, data health, public reports) on localhost."""
    from roadworthy import api

    inputs = api.dashboard_inputs(
        logs or [], report=report, model=model, truth=truth, dmv=dmv, sgo=sgo, engine=engine, address=address
    )
    env = {**os.environ, **inputs.env}
    url = f"http://{'localhost' if host in ('127.0.0.1', 'localhost') else host}:{port}"
    stderr().print(f"roadworthy dashboard on {url} (Ctrl-C to stop)")
    proc = subprocess.Popen(streamlit_command(port, host), env=env)
    # Stopping this command stops the server too (CI runners send SIGTERM).
    signal.signal(signal.SIGTERM, lambda signum, frame: proc.terminate())
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        code = 0
    finally:
        if proc.poll() is None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    raise typer.Exit(0 if code in (0, -signal.SIGTERM) else code)


def register(app: typer.Typer) -> None:
    """Add this command to the main app."""
    app.command("dashboard")(dashboard)
