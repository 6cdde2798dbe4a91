"""Plumbing shared by the commands: exit codes, JSON output, progress, tables.

Exit codes are the command line's contract: 0 success (gate: pass), 1 gate
failed, 2 bad input or usage, 3 internal error (a bug: one paragraph, and the
traceback only with ``--debug`` or ``ROADWORTHY_DEBUG=1``). Machine-readable output
goes to its file, or to stdout alone when the file is ``-``; progress and messages go
to stderr, and progress bars switch off when stderr is not a terminal.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from roadworthy.data.errors import RoadworthyError
from roadworthy.data.jsonio import dumps
from roadworthy.data.writer import AtomicFile

EXIT_OK, EXIT_GATE_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
DEBUG_ENV = "ROADWORTHY_DEBUG"
_debug = False


def set_debug(on: bool) -> None:
    """Show tracebacks of internal errors (``--debug``)."""
    global _debug
    _debug = on


def debug_enabled() -> bool:
    """``--debug`` given, or ``ROADWORTHY_DEBUG=1`` in the environment."""
    return _debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


#: Width of tables written to a file or pipe (rich would otherwise fold them to 80).
PIPE_WIDTH = 140


def stdout() -> Console:
    """Console on stdout, for human-readable results.

    Markup is off: names and paths come from users' files (a policy named ``[/]`` must
    print as written); styling goes through ``style=`` and :class:`rich.text.Text`.
    """
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else PIPE_WIDTH, markup=False)


def stderr() -> Console:
    """Console on stderr, for messages and progress (markup off, as :func:`stdout`)."""
    return Console(stderr=True, width=None if sys.stderr.isatty() else PIPE_WIDTH, markup=False)


def styled(text: str, style: str) -> Text:
    """A styled cell or message; the text is shown as written."""
    return Text(text, style=style)


def stage_printer() -> Callable[[str], None]:
    """An ``on_stage`` callback: stage names, dimmed, on stderr."""
    err = stderr()
    return lambda s: err.print(s, style="dim", highlight=False)


def _say(kind: str, message: str) -> None:
    stderr().print(Text.assemble((f"{kind}:", "bold red"), " ", message), highlight=False, soft_wrap=True)


def handle_errors(func: Callable) -> Callable:
    """The exit-code contract around a command.

    :class:`RoadworthyError` (bad input) and file-system errors on a named path print
    one paragraph and exit 2; anything else is an internal error: one paragraph naming
    the error and how to see the traceback, exit 3 (with ``--debug`` the traceback
    too). SIGTERM is handled like Ctrl-C, so temporary files are removed either way.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = _term_as_interrupt()
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, click.exceptions.ClickException):
            raise
        except RoadworthyError as exc:
            from roadworthy.cli.flags import cli_message

            _say("error", cli_message(str(exc), func))
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except OSError as exc:
            if exc.filename is None:
                return _internal(exc)
            where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
            _say("error", f"{where}: {exc.strerror or exc}. Hint: check the path and its permissions.")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyboardInterrupt:
            stderr().print("interrupted; nothing partial was left behind")
            raise typer.Exit(130) from None
        except Exception as exc:  # the contract: every other failure is exit 3
            return _internal(exc)
        finally:
            signal.signal(signal.SIGTERM, previous)

    return wrapper


def _internal(exc: BaseException):
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    _say(
        "internal error",
        f"{type(exc).__name__}: {exc}. This is a bug in roadworthy, not a problem with your input "
        f"as far as it can tell; no partial output was left. Rerun with --debug (or {DEBUG_ENV}=1) to "
        "see the traceback, and please report it with the command line.",
    )
    raise typer.Exit(EXIT_INTERNAL) from None


def _on_term(signum, frame) -> None:
    raise KeyboardInterrupt


def _term_as_interrupt():
    """Route SIGTERM through the same clean-up as Ctrl-C (temporary outputs are removed)."""
    try:
        return signal.signal(signal.SIGTERM, _on_term)
    except ValueError:  # not the main thread (a test runner's worker): leave it
        return signal.getsignal(signal.SIGTERM)


def guard_outputs(inputs, overwrite: bool, **files) -> None:
    """Check a command's output files before it starts (see :func:`roadworthy.data.writer.guard_output`).

    ``files`` maps option names (``json``, ``junit`` ...) to paths. Output folders are checked
    by the library function that writes them, so notebook users get the same checks.
    """
    from roadworthy.data.writer import guard_output

    ins = [inputs] if isinstance(inputs, str | Path) else list(inputs or [])
    for name, path in files.items():
        guard_output(path, inputs=ins, overwrite=overwrite, option=name)


def group_keys(by: str) -> tuple[str, ...]:
    """The names of a comma-separated ``--by`` option (``"manufacturer, year"``), blanks dropped."""
    return tuple(k.strip() for k in by.split(",") if k.strip())


def write_json(obj: Any, target: str | Path | None) -> None:
    """Write JSON to ``target`` atomically, or to stdout when ``target`` is ``-``."""
    if target is None:
        return
    text = dumps(obj)
    if str(target) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with AtomicFile(target) as f:
        f.tmp.write_text(text)


def result_console(json_target: str | Path | None) -> Console:
    """Where tables go: stdout, unless stdout carries the JSON."""
    return stderr() if str(json_target) == "-" else stdout()


@contextmanager
def progress(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields ``advance(n)``. Off when stderr is not a terminal."""
    bar = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        disable=not sys.stderr.isatty(),
        transient=False,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A rich table with right-aligned numbers."""
    t = Table(title=Text(title), title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[c if isinstance(c, Text) else Text(c) for c in (fmt(v) for v in r)])
    return t


def fmt(v: Any) -> str | Text:
    """Compact text for a table cell (strings as written, never read as markup)."""
    if isinstance(v, Text):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        if abs(v) >= 1e5:
            return f"{v:,.0f}"
        if v != 0 and abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:,.3f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)
