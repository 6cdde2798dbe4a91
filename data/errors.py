"""Errors users see: one paragraph naming the file, the place and the fix.

Every error that comes from bad input derives from :class:`RoadworthyError`.
The command line prints ``str(error)`` and exits with code 2; it never shows a
traceback for these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class RoadworthyError(Exception):
    """Base class of every user-facing input error (exit code 2)."""

    exit_code: int = 2


@dataclass
class LogError(RoadworthyError):
    """A driving log that does not follow the contract.

    Parameters
    ----------
    file : str or Path or None
        The offending file (or dataset directory when no single file is at fault).
    problem : str
        What is wrong, as a sentence.
    hint : str
        How to fix it, as a sentence.
    column : str or None
        The offending column, when one is.
    episode_id, step : str, int or None
        The first offending row, when one is.
    """

    file: str | Path | None
    problem: str
    hint: str
    column: str | None = None
    episode_id: str | None = None
    step: int | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [f"{self.file}" if self.file is not None else "<input>"]
        if self.column is not None:
            where.append(f"column '{self.column}'")
        if self.episode_id is not None:
            row = f"episode_id='{self.episode_id}'"
            if self.step is not None:
                row += f", step={self.step}"
            where.append(f"first offending row ({row})")
        problem = self.problem.rstrip(".")
        hint = self.hint.rstrip(".")
        return f"{': '.join(where)}: {problem}. Hint: {hint}."


@dataclass
class PolicyError(RoadworthyError):
    """A policy file that cannot be loaded safely or does not match the log."""

    file: str | Path
    problem: str
    hint: str

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.file}: {self.problem.rstrip('.')}. Hint: {self.hint.rstrip('.')}."


@dataclass
class UsageError(RoadworthyError):
    """Options that do not fit together, or a value out of range."""

    problem: str
    hint: str

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.problem.rstrip('.')}. Hint: {self.hint.rstrip('.')}."


def quoted(name: str) -> str:
    """A parameter's name as errors quote it (```gamma```), for the CLI to show as its flag."""
    return f"`{name}`" if name.isidentifier() else name


#: Seeds are 0 <= seed < 2**63 (numpy's and torch's generators both take them).
SEED_LIMIT = 2**63


def check_seed(seed, option: str = "seed") -> int:
    """``seed`` as an int in [0, 2**63), or :class:`UsageError` naming the option."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise UsageError(f"{quoted(option)} must be a whole number in [0, 2**63), got {seed!r}", "use e.g. 0")
    return seed


def check_finite(value, option: str, *, low: float | None = None, high: float | None = None) -> float:
    """``value`` as a finite float within [low, high], or :class:`UsageError` naming the option."""
    import math

    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{quoted(option)} must be a number, got {value!r}", "write a finite number") from None
    if not math.isfinite(x) or (low is not None and x < low) or (high is not None and x > high):
        span = f" in [{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise UsageError(
            f"{quoted(option)} must be a finite number{span}, got {value!r}", "write a finite number in range"
        )
    return x


def declared_json(extra: Mapping[str, str], key: str, hint: str) -> dict | None:
    """The JSON object a log declares in its metadata ``roadworthy.<key>``, or None when absent.

    Raises :class:`UsageError` (naming the key, with ``hint``) for text that is not a JSON object.
    """
    import json

    raw = extra.get(key)
    if raw is None:
        return None
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError:
        raise UsageError(f"metadata roadworthy.{key} is not valid JSON ({raw[:60]!r})", hint) from None
    if not isinstance(spec, dict):
        raise UsageError(f"metadata roadworthy.{key} must be a JSON object, got {raw[:60]!r}", hint)
    return spec
