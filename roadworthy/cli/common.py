"""Plumbing shared by the commands: exit codes, JSON output, progress, tables.

Exit codes are the command line's contract: 0 success (gate: pass), 1 gate
failed, 2 bad input or usage. Machine-readable output goes to its file, or to
stdout alone when the file is ``-``; progress and messages go to stderr, and
progress bars switch off when stderr is not a terminal.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from roadworthy.data.errors import RoadworthyError
from roadworthy.data.jsonio import dumps
from roadworthy.data.writer import AtomicFile

EXIT_OK, EXIT_GATE_FAILED, EXIT_BAD_INPUT = 0, 1, 2


#: Width of tables written to a file or pipe (rich would otherwise fold them to 80).
PIPE_WIDTH = 140


def stdout() -> Console:
    """Console on stdout, for human-readable results."""
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)


def stderr() -> Console:
    """Console on stderr, for messages and progress."""
    return Console(stderr=True, width=None if sys.stderr.isatty() else PIPE_WIDTH)


def handle_errors(func: Callable) -> Callable:
    """Turn :class:`RoadworthyError` into a one-paragraph message and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RoadworthyError as exc:
            stderr().print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyboardInterrupt:
            stderr().print("interrupted; nothing partial was left behind")
            raise typer.Exit(130) from None

    return wrapper


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
        TextColumn("{task.description}"),
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
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[fmt(v) for v in r])
    return t


def fmt(v: Any) -> str:
    """Compact text for a table cell."""
    if isinstance(v, float):
        if not math.isfinite(v):
            return "-"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:,.3f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)
