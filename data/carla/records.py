"""Decoding of record blocks: vectorized fixed-size gathers, unit conversion, and
the variable-length records (actor creation, physics control, walker bones, wheels).

Each decoder takes the reader (for error reporting), the block's bytes, the block's
file offset, and the payload offsets, sizes and frame indices of its packets.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from roadworthy.data.carla import format as fmt
from roadworthy.data.carla.errors import RecorderError, read_string

if TYPE_CHECKING:
    from roadworthy.data.carla.recorder import RecorderReader


def wheels_records(buf: bytes, off: int, size: int) -> list | None:
    end = off + size
    (count,) = struct.unpack_from("<H", buf, off)
    pos, out = off + 2, []
    for _ in range(count):
        if pos + 8 > end:
            return None
        actor, n = struct.unpack_from("<II", buf, pos)
        pos += 8
        if pos + 9 * n > end:
            return None
        for _ in range(n):
            loc, steer, spin = struct.unpack_from("<Bff", buf, pos)
            out.append((actor, loc, steer, spin))
            pos += 9
    return out if pos == end else None


def gather(raw: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Rows of ``width`` bytes starting at each offset, as a contiguous (n, width) array."""
    if width == 0:
        return np.zeros((len(starts), 0), np.uint8)
    return raw[starts[:, None] + np.arange(width)]


_DEG = np.pi / 180.0


def to_units(kind: str, t: pa.Table) -> pa.Table:
    """Centimetres to metres and degrees to radians, where CARLA stores them."""

    def scale(table: pa.Table, names: Sequence[str], k: float) -> pa.Table:
        for n in names:
            i = table.schema.get_field_index(n)
            col = table.column(n).to_numpy().astype(np.float64) * k
            table = table.set_column(i, n, pa.array(col))
        return table

    if kind == fmt.POSITION:
        t = scale(t, ("x", "y", "z"), 0.01)
        t = scale(t, ("roll", "pitch", "yaw"), _DEG)
    elif kind in (fmt.BOUNDING_BOX, fmt.TRIGGER_VOLUME):
        t = scale(t, ("ox", "oy", "oz", "ex", "ey", "ez"), 0.01)
    elif kind == fmt.KINEMATICS:
        t = scale(t, ("wx", "wy", "wz"), _DEG)
    elif kind == fmt.ANIM_WALKER:
        t = scale(t, ("speed",), 0.01)
    for n in ("hero1", "hero2", "frozen", "handbrake", "on", "open"):
        if n in t.schema.names:
            i = t.schema.get_field_index(n)
            t = t.set_column(i, n, pc.not_equal(t.column(n), 0))
    return t


# -- variable-length records ------------------------------------------------------


class _Cursor:
    """Bounds-checked little-endian reads inside one packet."""

    def __init__(self, reader: RecorderReader, buf: bytes, pos: int, end: int, base: int, kind: str) -> None:
        self.r, self.buf, self.pos, self.end, self.base, self.kind = reader, buf, pos, end, base, kind

    def take(self, fmt_: str) -> tuple:
        n = struct.calcsize(fmt_)
        if self.pos + n > self.end:
            raise self.r.error_at(self.base + self.pos, f"a {self.kind} record runs past the end of its packet")
        out = struct.unpack_from(fmt_, self.buf, self.pos)
        self.pos += n
        return out

    def string(self) -> str:
        got = read_string(self.buf, self.pos, self.end)
        if got is None:
            raise self.r.error_at(self.base + self.pos, f"a string in a {self.kind} record runs past its packet")
        self.pos = got[1]
        return got[0]

    def done(self) -> None:
        if self.pos != self.end:
            raise self.r.error_at(
                self.base + self.pos, f"a {self.kind} packet has {self.end - self.pos} bytes left after its records"
            )


def _event_add(reader, buf, base, offs, sizes, frames) -> pa.Table:
    rows: dict[str, list] = {
        k: []
        for k in (
            "frame",
            "id",
            "type",
            "x",
            "y",
            "z",
            "roll",
            "pitch",
            "yaw",
            "uid",
            "blueprint",
            "role_name",
            "attributes",
        )
    }
    for off, size, frame in zip(offs.tolist(), sizes.tolist(), frames.tolist(), strict=True):
        c = _Cursor(reader, buf, off, off + size, base, fmt.EVENT_ADD)
        (count,) = c.take("<H")
        for _ in range(count):
            actor, typ, x, y, z, roll, pitch, yaw, uid = c.take("<IB6fI")
            blueprint = c.string()
            (n_attr,) = c.take("<H")
            attrs = {}
            for _ in range(n_attr):
                c.take("<B")
                key = c.string()
                attrs[key] = c.string()
            rows["frame"].append(frame)
            rows["id"].append(actor)
            rows["type"].append(fmt.ACTOR_TYPES.get(typ, f"type{typ}"))
            for k, v in zip(("x", "y", "z"), (x, y, z), strict=True):
                rows[k].append(v / 100.0)
            for k, v in zip(("roll", "pitch", "yaw"), (roll, pitch, yaw), strict=True):
                rows[k].append(v * _DEG)
            rows["uid"].append(uid)
            rows["blueprint"].append(blueprint)
            rows["role_name"].append(attrs.get("role_name", ""))
            rows["attributes"].append(list(attrs.items()))
        c.done()
    return pa.table(
        {
            **{k: pa.array(v) for k, v in rows.items() if k != "attributes"},
            "attributes": pa.array(rows["attributes"], pa.map_(pa.string(), pa.string())),
        }
    )


_PHYSICS_HEAD = (
    "max_rpm",
    "moi",
    "damping_full_throttle",
    "damping_zero_throttle_engaged",
    "damping_zero_throttle_disengaged",
    "auto_gear",
    "clutch_strength",
    "final_ratio",
    "mass",
    "drag_coefficient",
    "com_x",
    "com_y",
    "com_z",
)
_PHYSICS_LISTS = ("torque_curve", "forward_gears", "steering_curve", "wheels", "wheel_bytes")


def _physics_control(reader, buf, base, offs, sizes, frames) -> pa.Table:
    rows: dict[str, list] = {k: [] for k in ("frame", "id", *_PHYSICS_HEAD, *_PHYSICS_LISTS)}
    for off, size, frame in zip(offs.tolist(), sizes.tolist(), frames.tolist(), strict=True):
        parsed = None
        for wheel in fmt.PHYSICS_WHEEL_SIZES:
            try:
                parsed = _physics_packet(reader, buf, base, off, size, frame, wheel)
                break
            except RecorderError as exc:
                last = exc
        if parsed is None:
            raise last
        for rec in parsed:
            for k, v in rec.items():
                rows[k].append(v)
    return pa.table(rows)


def _physics_packet(reader, buf, base, off, size, frame, wheel_size) -> list[dict]:
    c = _Cursor(reader, buf, off, off + size, base, fmt.PHYSICS_CONTROL)
    (count,) = c.take("<H")
    out = []
    for _ in range(count):
        (actor,) = c.take("<I")
        head = c.take("<5fB4f3f")
        rec = {"frame": frame, "id": actor}
        rec.update(dict(zip(_PHYSICS_HEAD, head, strict=True)))
        rec["auto_gear"] = bool(rec["auto_gear"])
        for name, width in (("torque_curve", 2), ("forward_gears", 3), ("steering_curve", 2)):
            (n,) = c.take("<I")
            if n > 4096:
                raise reader.error_at(base + c.pos, f"a PhysicsControl {name} claims {n} points")
            rec[name] = [list(c.take(f"<{width}f")) for _ in range(n)]
        (n,) = c.take("<I")
        if n > 64:
            raise reader.error_at(base + c.pos, f"a PhysicsControl record claims {n} wheels")
        wheels = []
        for _ in range(n):
            vals = c.take(f"<{wheel_size // 4}f") if wheel_size % 4 == 0 else c.take(f"<{wheel_size}B")
            wheels.append(list(vals[:12]))
        rec["wheels"] = wheels
        rec["wheel_bytes"] = wheel_size
        out.append(rec)
    c.done()
    return out


def _bone_template(buf: bytes, pos: int, end: int) -> tuple[int, int, list[tuple[int, str]]] | None:
    """Layout of one walker's bone record: (length, bone count, [(float offset, name)])."""
    if pos + 6 > end:
        return None
    (n,) = struct.unpack_from("<H", buf, pos + 4)
    q, names = pos + 6, []
    for _ in range(n):
        got = read_string(buf, q, end)
        if got is None or got[1] + 24 > end:
            return None
        names.append((got[1] - pos, got[0]))
        q = got[1] + 24
    return q - pos, n, names


def _walker_bones(reader, buf, base, offs, sizes, frames) -> pa.Table:
    """Bones, decoded a packet at a time: when every walker of a packet shares the
    first one's skeleton (same bone names, hence the same byte layout), all poses
    are gathered at once; otherwise record by record."""
    raw = np.frombuffer(buf, dtype=np.uint8)
    parts: list[pa.Table] = []
    fast_frames, fast_ids, fast_names, fast_vals = [], [], [], []
    names_index: dict[str, int] = {}
    for off, size, frame in zip(offs.tolist(), sizes.tolist(), frames.tolist(), strict=True):
        end = off + size
        if size < 2:
            raise reader.error_at(base + off - 5, "a WalkerBones packet has no record count")
        (count,) = struct.unpack_from("<H", buf, off)
        tpl = _bone_template(buf, off + 2, end) if count else None
        fast = False
        if tpl is not None:
            length, n, names = tpl
            starts = off + 2 + np.arange(count) * length
            if 2 + count * length == size and n:
                # Name bytes (with their length prefixes) must match the first walker's.
                mask = np.ones(length, dtype=bool)
                mask[:4] = False  # the actor id differs
                for fo, _ in names:
                    mask[fo : fo + 24] = False
                rel = np.flatnonzero(mask)
                block = raw[starts[:, None] + rel]
                fast = bool((block == block[0]).all())
        if fast:
            ids = raw[starts[:, None] + np.arange(4)].copy().view("<u4").reshape(-1)
            fo = np.array([f for f, _ in names])
            vals = raw[(starts[:, None, None] + fo[None, :, None] + np.arange(24)).reshape(count, -1)]
            fast_vals.append(vals.copy().view("<f4").reshape(count * n, 6))
            fast_frames.append(np.full(count * n, frame, dtype=np.int64))
            fast_ids.append(np.repeat(ids, n))
            codes = np.array([names_index.setdefault(nm, len(names_index)) for _, nm in names], dtype=np.int32)
            fast_names.append(np.tile(codes, count))
            continue
        rows: dict[str, list] = {k: [] for k in ("frame", "id", "bone", "x", "y", "z", "roll", "pitch", "yaw")}
        c = _Cursor(reader, buf, off, end, base, fmt.WALKER_BONES)
        c.take("<H")
        for _ in range(count):
            (actor,) = c.take("<I")
            (n,) = c.take("<H")
            for _ in range(n):
                name = c.string()
                vals = c.take("<6f")
                rows["frame"].append(frame)
                rows["id"].append(actor)
                rows["bone"].append(name)
                for k, v in zip(("x", "y", "z"), vals[:3], strict=True):
                    rows[k].append(v / 100.0)
                for k, v in zip(("roll", "pitch", "yaw"), vals[3:], strict=True):
                    rows[k].append(v * _DEG)
        c.done()
        parts.append(pa.table(rows, schema=_BONES_SCHEMA))
    if fast_vals:
        vals = np.concatenate(fast_vals).astype(np.float64)
        bone = pa.DictionaryArray.from_arrays(
            pa.array(np.concatenate(fast_names)), pa.array(list(names_index), pa.string())
        ).cast(pa.string())
        fast_table = pa.table(
            {
                "frame": pa.array(np.concatenate(fast_frames)),
                "id": pa.array(np.concatenate(fast_ids)),
                "bone": bone,
                **{k: pa.array(vals[:, i] / 100.0) for i, k in enumerate(("x", "y", "z"))},
                **{k: pa.array(vals[:, 3 + i] * _DEG) for i, k in enumerate(("roll", "pitch", "yaw"))},
            },
            schema=_BONES_SCHEMA,
        )
        parts.insert(0, fast_table)
    out = pa.concat_tables(parts)
    return out.sort_by([("frame", "ascending")]) if len(parts) > 1 else out


_BONES_SCHEMA = pa.schema(
    [("frame", pa.int64()), ("id", pa.uint32()), ("bone", pa.string())]
    + [(k, pa.float64()) for k in ("x", "y", "z", "roll", "pitch", "yaw")]
)


def _anim_wheels(reader, buf, base, offs, sizes, frames) -> pa.Table:
    """Wheels: packets whose vehicles all have the same number of wheels (the usual
    case) are decoded with one structured dtype per wheel count; others record by record."""
    raw = np.frombuffer(buf, dtype=np.uint8)
    counts = raw[offs].astype(np.int64) | (raw[offs + 1].astype(np.int64) << 8)
    has = (counts > 0) & (sizes >= 10)
    n_first = np.zeros(len(offs), dtype=np.int64)
    if has.any():
        n_first[has] = raw[offs[has, None] + 6 + np.arange(4)].copy().view("<u4").reshape(-1)
    uniform = has & (n_first <= 64) & (sizes == 2 + counts * (8 + 9 * n_first))
    parts: list[pa.Table] = []
    for n in np.unique(n_first[uniform]):
        sel = np.flatnonzero(uniform & (n_first == n))
        dtype = np.dtype(
            [("id", "<u4"), ("n", "<u4"), ("w", [("loc", "u1"), ("steer", "<f4"), ("spin", "<f4")], (int(n),))]
        )
        c = counts[sel]
        first = np.repeat(offs[sel] + 2, c)
        within = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
        rec = gather(raw, first + within * dtype.itemsize, dtype.itemsize).view(dtype).reshape(-1)
        same = rec["n"] == n
        if not same.all():
            uniform[sel] = False  # fall back for these packets below
            continue
        k = int(n)
        parts.append(
            pa.table(
                {
                    "frame": pa.array(np.repeat(np.repeat(frames[sel], c), k)),
                    "id": pa.array(np.repeat(rec["id"], k)),
                    "wheel": pa.array(rec["w"]["loc"].reshape(-1)),
                    "steer_angle": pa.array(rec["w"]["steer"].reshape(-1)),
                    "tire_rotation": pa.array(rec["w"]["spin"].reshape(-1)),
                }
            )
        )
    rows: dict[str, list] = {k: [] for k in ("frame", "id", "wheel", "steer_angle", "tire_rotation")}
    for i in np.flatnonzero(~uniform):
        off, size, frame = int(offs[i]), int(sizes[i]), int(frames[i])
        got = wheels_records(buf, off, size)
        if got is None:
            raise reader.error_at(base + off - 5, "an AnimVehicleWheels packet's records do not fill it exactly")
        for actor, loc, steer, spin in got:
            rows["frame"].append(frame)
            rows["id"].append(actor)
            rows["wheel"].append(loc)
            rows["steer_angle"].append(steer)
            rows["tire_rotation"].append(spin)
    parts.append(pa.table(rows, schema=_WHEELS_SCHEMA))
    out = pa.concat_tables([t.cast(_WHEELS_SCHEMA) for t in parts])
    return out.sort_by([("frame", "ascending")]) if len(parts) > 1 else out


_WHEELS_SCHEMA = pa.schema(
    [
        ("frame", pa.int64()),
        ("id", pa.uint32()),
        ("wheel", pa.uint8()),
        ("steer_angle", pa.float32()),
        ("tire_rotation", pa.float32()),
    ]
)


VARIABLE_DECODERS = {
    fmt.EVENT_ADD: _event_add,
    fmt.PHYSICS_CONTROL: _physics_control,
    fmt.WALKER_BONES: _walker_bones,
    fmt.ANIM_VEHICLE_WHEELS: _anim_wheels,
}
