"""The driving-log contract, schema version 1 (``shared/docs/contracts.md`` section 1).

One row is one control step of the ego vehicle. This module holds the column
names, the accepted Arrow types, and :class:`LogMetadata`, the per-file key/value
metadata that gives obs and action their meaning.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from roadworthy.data.errors import LogError

SCHEMA_VERSION = "1"
META_PREFIX = "roadworthy."

REQUIRED_COLUMNS: tuple[str, ...] = (
    "episode_id",
    "step",
    "t",
    "source",
    "obs",
    "action",
    "reward",
    "done",
    "terminal",
)

#: Optional columns and the Arrow type the writer gives them.
OPTIONAL_COLUMNS: dict[str, pa.DataType] = {
    "collision": pa.bool_(),
    "off_road": pa.bool_(),
    "disengagement": pa.bool_(),
    "behavior_logp": pa.float32(),
    "x": pa.float32(),
    "y": pa.float32(),
    "yaw": pa.float32(),
    "speed": pa.float32(),
    "map_name": pa.string(),
    "scenario": pa.string(),
}

#: Boolean columns that are also safety-cost channels.
BOOL_COST_COLUMNS: tuple[str, ...] = ("collision", "off_road")
COST_PREFIX = "cost_"


def is_string_type(t: pa.DataType) -> bool:
    """True for string, large string and dictionary-of-string types."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def list_width(t: pa.DataType) -> int | None:
    """Fixed width of a ``fixed_size_list`` type, ``None`` for a plain list."""
    return t.list_size if pa.types.is_fixed_size_list(t) else None


def is_float32_list(t: pa.DataType) -> bool:
    """True for ``fixed_size_list<float32>`` and ``list<float32>``."""
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.types.is_float32(t.value_type)
    return False


def _is_float(t: pa.DataType) -> bool:
    return pa.types.is_float32(t) or pa.types.is_float64(t)


#: Per required column: (predicate on the Arrow type, what is expected in words).
_REQUIRED_TYPES = {
    "episode_id": (is_string_type, "string (dictionary allowed)"),
    "step": (lambda t: pa.types.is_int32(t) or pa.types.is_int64(t), "int32 or int64"),
    "t": (pa.types.is_float64, "float64"),
    "source": (is_string_type, "string (dictionary allowed)"),
    "obs": (is_float32_list, "fixed_size_list<float32>[D] or list<float32>"),
    "action": (is_float32_list, "fixed_size_list<float32>[A] or list<float32>"),
    "reward": (_is_float, "float32 or float64"),
    "done": (pa.types.is_boolean, "bool"),
    "terminal": (pa.types.is_boolean, "bool"),
}

_OPTIONAL_TYPES = {
    "collision": (pa.types.is_boolean, "bool"),
    "off_road": (pa.types.is_boolean, "bool"),
    "disengagement": (pa.types.is_boolean, "bool"),
    "behavior_logp": (_is_float, "float32"),
    "x": (_is_float, "float32"),
    "y": (_is_float, "float32"),
    "yaw": (_is_float, "float32"),
    "speed": (_is_float, "float32"),
    "map_name": (is_string_type, "string"),
    "scenario": (is_string_type, "string"),
}


def check_column_types(schema: pa.Schema, file: str | Path) -> None:
    """Raise :class:`LogError` for a missing required column or a wrong type."""
    names = set(schema.names)
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise LogError(
            file,
            f"required column(s) {', '.join(repr(c) for c in missing)} missing "
            f"(the file has {', '.join(schema.names) or 'no columns'})",
            "every driving log needs the columns "
            + ", ".join(REQUIRED_COLUMNS)
            + " (see contracts.md section 1); rename or add the column",
            column=missing[0],
        )
    for name in schema.names:
        if name in _REQUIRED_TYPES:
            check, expected = _REQUIRED_TYPES[name]
        elif name in _OPTIONAL_TYPES:
            check, expected = _OPTIONAL_TYPES[name]
        elif name.startswith(COST_PREFIX):
            check, expected = (lambda t: _is_float(t) or pa.types.is_boolean(t)), "float32"
        else:
            continue
        t = schema.field(name).type
        if not check(t):
            raise LogError(
                file,
                f"has Arrow type {t}, expected {expected}",
                f"cast the column to {expected} when writing the file",
                column=name,
            )


def cost_columns(names: Sequence[str]) -> list[str]:
    """Cost channels present among ``names``: ``collision``, ``off_road``, ``cost_*``."""
    out = [c for c in BOOL_COST_COLUMNS if c in names]
    out += sorted(c for c in names if c.startswith(COST_PREFIX))
    return out


def cost_name(column: str) -> str:
    """Report name of a cost column: ``cost_lane_violation`` -> ``lane_violation``."""
    return column[len(COST_PREFIX) :] if column.startswith(COST_PREFIX) else column


@dataclass(frozen=True)
class LogMetadata:
    """Schema metadata of a driving log (Arrow key/value metadata, JSON values).

    Parameters
    ----------
    obs_names : tuple of str
        Meaning of each of the D ``obs`` entries, with units where they have one.
    action_names : tuple of str
        Meaning of each of the A ``action`` entries.
    action_low, action_high : tuple of float
        Physical bounds of ``action``, in the units of each action entry.
    dt : float
        Control period, seconds.
    extra : dict
        Further ``roadworthy.*`` keys, kept as JSON text and written back unchanged.
    """

    obs_names: tuple[str, ...]
    action_names: tuple[str, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    dt: float
    extra: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def obs_dim(self) -> int:
        """D, the length of ``obs``."""
        return len(self.obs_names)

    @property
    def action_dim(self) -> int:
        """A, the length of ``action``."""
        return len(self.action_names)

    def to_arrow(self) -> dict[bytes, bytes]:
        """Arrow key/value metadata, values as JSON text."""
        meta = {
            "schema_version": json.dumps(SCHEMA_VERSION),
            "obs_names": json.dumps(list(self.obs_names)),
            "action_names": json.dumps(list(self.action_names)),
            "action_low": json.dumps([float(v) for v in self.action_low]),
            "action_high": json.dumps([float(v) for v in self.action_high]),
            "dt": json.dumps(float(self.dt)),
        }
        out = {f"{META_PREFIX}{k}".encode(): v.encode() for k, v in meta.items()}
        for k, v in self.extra.items():
            out[f"{META_PREFIX}{k}".encode()] = v.encode()
        return out

    def to_dict(self) -> dict:
        """Plain JSON-ready dictionary."""
        return {
            "schema_version": SCHEMA_VERSION,
            "obs_names": list(self.obs_names),
            "action_names": list(self.action_names),
            "action_low": list(self.action_low),
            "action_high": list(self.action_high),
            "dt": self.dt,
        }

    @classmethod
    def from_arrow(cls, metadata: Mapping[bytes, bytes] | None, file: str | Path) -> LogMetadata:
        """Parse and check the ``roadworthy.*`` keys of one file."""
        raw = {
            k.decode(errors="replace")[len(META_PREFIX) :]: v.decode(errors="replace")
            for k, v in (metadata or {}).items()
            if k.startswith(META_PREFIX.encode())
        }
        required = ("schema_version", "obs_names", "action_names", "action_low", "action_high", "dt")
        missing = [k for k in required if k not in raw]
        if missing:
            raise LogError(
                file,
                "schema metadata key(s) " + ", ".join(f"'{META_PREFIX}{k}'" for k in missing) + " missing",
                "write the file with data.writer.write_log (or add the roadworthy.* Arrow "
                "key/value metadata of contracts.md section 1 to the Parquet schema)",
            )
        parsed = {}
        for key in required:
            try:
                parsed[key] = json.loads(raw[key])
            except json.JSONDecodeError:
                raise LogError(
                    file,
                    f"schema metadata '{META_PREFIX}{key}' is not valid JSON (got {raw[key][:60]!r})",
                    'metadata values are JSON text, e.g. ["accel", "steer"] or "1"',
                ) from None
        if str(parsed["schema_version"]) != SCHEMA_VERSION:
            raise LogError(
                file,
                f"schema version {parsed['schema_version']!r} is not supported "
                f"(this roadworthy reads version {SCHEMA_VERSION})",
                "convert the log to schema version 1 or upgrade roadworthy",
            )
        for key in ("obs_names", "action_names"):
            v = parsed[key]
            if not isinstance(v, list) or not v or not all(isinstance(s, str) for s in v):
                raise LogError(
                    file,
                    f"schema metadata '{META_PREFIX}{key}' must be a non-empty list of strings",
                    "list one name per entry of the vector, in order",
                )
            if len(set(v)) != len(v):
                raise LogError(
                    file,
                    f"schema metadata '{META_PREFIX}{key}' repeats a name",
                    "give each vector entry a distinct name",
                )
        a = len(parsed["action_names"])
        for key in ("action_low", "action_high"):
            v = parsed[key]
            if (
                not isinstance(v, list)
                or len(v) != a
                or not all(isinstance(x, int | float) and math.isfinite(x) for x in v)
            ):
                raise LogError(
                    file,
                    f"schema metadata '{META_PREFIX}{key}' must list {a} finite numbers, "
                    f"one per action name (got {raw[key][:60]})",
                    "give the physical bound of every action entry",
                )
        if any(lo >= hi for lo, hi in zip(parsed["action_low"], parsed["action_high"], strict=True)):
            raise LogError(
                file,
                "schema metadata action_low is not below action_high for every action entry",
                "swap or correct the bounds",
            )
        dt = parsed["dt"]
        if not isinstance(dt, int | float) or not math.isfinite(dt) or dt <= 0:
            raise LogError(
                file,
                f"schema metadata '{META_PREFIX}dt' must be a positive number of seconds (got {raw['dt'][:40]})",
                "set dt to the control period, e.g. 0.1",
            )
        extra = {k: v for k, v in raw.items() if k not in required}
        return cls(
            obs_names=tuple(parsed["obs_names"]),
            action_names=tuple(parsed["action_names"]),
            action_low=tuple(float(x) for x in parsed["action_low"]),
            action_high=tuple(float(x) for x in parsed["action_high"]),
            dt=float(dt),
            extra=extra,
        )

    def describe_difference(self, other: LogMetadata) -> str | None:
        """Name the first key that differs from ``other``, or ``None`` if none does."""
        for key in ("obs_names", "action_names", "action_low", "action_high", "dt"):
            if getattr(self, key) != getattr(other, key):
                return key
        return None


def arrow_schema(meta: LogMetadata, optional: Sequence[str] = (), costs: Sequence[str] = ()) -> pa.Schema:
    """Arrow schema the writer produces for ``meta``.

    Parameters
    ----------
    meta : LogMetadata
        Gives D and A.
    optional : sequence of str
        Optional contract columns to include, in this order.
    costs : sequence of str
        Further ``cost_<name>`` columns (float32).
    """
    fields = [
        pa.field("episode_id", pa.string(), nullable=False),
        pa.field("step", pa.int32(), nullable=False),
        pa.field("t", pa.float64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("obs", pa.list_(pa.float32(), meta.obs_dim), nullable=False),
        pa.field("action", pa.list_(pa.float32(), meta.action_dim), nullable=False),
        pa.field("reward", pa.float32(), nullable=False),
        pa.field("done", pa.bool_(), nullable=False),
        pa.field("terminal", pa.bool_(), nullable=False),
    ]
    for name in optional:
        if name not in OPTIONAL_COLUMNS:
            raise ValueError(f"{name!r} is not an optional contract column")
        fields.append(pa.field(name, OPTIONAL_COLUMNS[name]))
    for name in costs:
        col = name if name.startswith(COST_PREFIX) else COST_PREFIX + name
        fields.append(pa.field(col, pa.float32()))
    return pa.schema(fields, metadata=meta.to_arrow())
