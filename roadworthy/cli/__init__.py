"""The ``roadworthy`` command line: a thin Typer layer over the packages.

Exit codes: 0 success (gate: pass), 1 gate failed, 2 bad input or usage, 3 internal
error (``--debug`` or ``ROADWORTHY_DEBUG=1`` shows its traceback).
"""

from __future__ import annotations

from typing import Annotated

import typer

from roadworthy.cli import (
    carla_commands,
    dashboard_commands,
    data_commands,
    demo,
    density_commands,
    dmv_commands,
    evaluate_commands,
    gate_commands,
    sgo_commands,
)

app = typer.Typer(
    name="roadworthy",
    help="Is a new driving policy fit for the road? Answers from logged driving alone.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from roadworthy import __version__

        typer.echo(f"roadworthy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an internal error (exit 3; or ROADWORTHY_DEBUG=1).")
    ] = False,
) -> None:
    """Is a new driving policy fit for the road? Answers from logged driving alone."""
    from roadworthy.cli.common import set_debug

    set_debug(debug)


data_commands.register(app)
carla_commands.register(app)
density_commands.register(app)
evaluate_commands.register(app)
gate_commands.register(app)
dashboard_commands.register(app)
dmv_commands.register(app)
sgo_commands.register(app)
app.command("demo")(demo.demo)
app.command("example-policies")(demo.example_policies)


def main() -> None:
    """Console-script entry point."""
    app()
