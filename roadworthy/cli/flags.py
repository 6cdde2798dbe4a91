"""Library errors name parameters as the Python API spells them; the CLI shows its flags.

The layers below the CLI (``data``, ``density``, ``evaluator``, ``dashboards``) quote a
parameter in backticks (```gamma` must lie in (0, 1]``), so that a Python or TOML user
reads the name they typed. :func:`cli_message` turns each quoted name that is one of the
running command's options into that option's flag (``--gamma``), and an argument into its
metavar (``LOGS``); any other quoted text is left as written.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable

import typer.models

#: API parameter names whose flag is spelled otherwise, in order of preference.
ALIASES = {
    "out": ("out", "output"),
    "policies": ("policy",),
    "map_path": ("map",),
    "json_out": ("json",),
}

_QUOTED = re.compile(r"`([a-z][a-z0-9_]*)`")


def command_flags(func: Callable) -> dict[str, str]:
    """``{name: flag}`` for a Typer command: each option under its parameter name and its flag's name."""
    flags: dict[str, str] = {}
    for name, param in inspect.signature(func).parameters.items():
        info = next(
            (m for m in getattr(param.annotation, "__metadata__", ()) if isinstance(m, typer.models.ParameterInfo)),
            None,
        )
        if info is None and isinstance(param.annotation, str):
            hints = typing.get_type_hints(func, include_extras=True)
            info = next(
                (m for m in getattr(hints.get(name), "__metadata__", ()) if isinstance(m, typer.models.ParameterInfo)),
                None,
            )
        if isinstance(info, typer.models.ArgumentInfo):
            flags[name] = name.upper()
            continue
        # In ``Annotated[..., typer.Option("--json")]`` Typer keeps the first declaration as ``default``.
        first = getattr(info, "default", None)
        named = [first] if isinstance(first, str) else []
        decls = [d for d in (*named, *(getattr(info, "param_decls", None) or ())) if d.startswith("--")]
        flag = decls[0].split("/")[0] if decls else "--" + name.replace("_", "-")
        flags[name] = flag
        flags.setdefault(flag[2:].replace("-", "_"), flag)
    return flags


def cli_message(message: str, func: Callable | None) -> str:
    """``message`` with each quoted API parameter of ``func``'s command shown as its flag."""
    if func is None:
        return message
    try:
        flags = command_flags(func)
    except (TypeError, ValueError, NameError):  # not a Typer command: leave the text alone
        return message

    def one(m: re.Match) -> str:
        name = m.group(1)
        for candidate in (name, *ALIASES.get(name, ())):
            if candidate in flags:
                return flags[candidate]
        return m.group(0)

    return _QUOTED.sub(one, message)
