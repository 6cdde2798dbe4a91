"""A clean-room reader of CARLA recorder files, with no CARLA server.

The file is read in blocks of a few megabytes: a short Python loop finds the
packets (id, payload offset, size) of each block, then every fixed-size record
type is decoded for the whole block at once with a numpy structured dtype; only
the rare variable-length records (actor creation, physics control, walker bones,
wheel animation) are decoded one by one. Memory is therefore bounded by the block
size, whatever the file size, when chunks are consumed as they come
(:func:`iter_chunks`); :func:`read_recording` concatenates them.

Units in the tables: metres, radians, seconds, metres per second (CARLA stores
centimetres and degrees; velocities are stored in m/s by 0.9.13's recorder).

Malformed input (empty, wrong magic, truncated at any byte, absurd sizes,
records that do not fill their packet) raises :class:`RecorderError`, naming the
byte offset and the last complete frame; the reader never reads past a buffer and
always advances, so it cannot hang.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from data.carla import format as fmt
from data.errors import RoadworthyError

BLOCK_BYTES = 8 << 20
#: No single packet of a real recording comes near this; a larger size is corruption.
MAX_PACKET_BYTES = 256 << 20
_HDR = struct.Struct("<BI")


class RecorderError(RoadworthyError):
    """A recorder file that cannot be read, with the byte offset and last good frame."""

    def __init__(self, file: str | Path, offset: int, last_frame: int | None, problem: str, hint: str) -> None:
        self.file, self.offset, self.last_frame = Path(file), offset, last_frame
        self.problem, self.hint = problem, hint
        super().__init__(str(self))

    def __str__(self) -> str:
        last = "none" if self.last_frame is None else str(self.last_frame)
        return (
            f"{self.file}: byte {self.offset} (last complete frame: {last}): {self.problem.rstrip('.')}. "
            f"Hint: {self.hint.rstrip('.')}."
        )


_TRUNCATED_HINT = (
    "the recording is truncated or corrupt; copy it again, or record again with "
    "client.start_recorder(path, True) and stop the recorder before copying"
)


@dataclass(frozen=True)
class RecorderHeader:
    """The file header."""

    version: int
    magic: str
    date: int
    map_name: str
    size: int


def _string(buf: bytes, pos: int, end: int) -> tuple[str, int] | None:
    if pos + 2 > end:
        return None
    (n,) = struct.unpack_from("<H", buf, pos)
    if pos + 2 + n > end:
        return None
    return buf[pos + 2 : pos + 2 + n].decode("utf-8", errors="replace"), pos + 2 + n


def read_header(buf: bytes, path: str | Path) -> RecorderHeader:
    """Parse the header at the start of ``buf``.

    Raises
    ------
    RecorderError
        For an empty file, a wrong magic string or a truncated header.
    """
    if len(buf) == 0:
        raise RecorderError(path, 0, None, "the file is empty", "point to a file written by client.start_recorder")
    if len(buf) < 2:
        raise RecorderError(path, 0, None, "the file is too short for a CARLA recorder header", _TRUNCATED_HINT)
    (version,) = struct.unpack_from("<H", buf, 0)
    magic = _string(buf, 2, len(buf))
    if magic is None or magic[0] != fmt.MAGIC:
        got = "nothing readable" if magic is None else repr(magic[0][:20])
        raise RecorderError(
            path,
            2,
            None,
            f"not a CARLA recorder file: expected the magic string '{fmt.MAGIC}', found {got}",
            "point to a .log written by client.start_recorder (not a replay log or a text file)",
        )
    pos = magic[1]
    if pos + 8 > len(buf):
        raise RecorderError(path, pos, None, "the header ends before its date", _TRUNCATED_HINT)
    (date,) = struct.unpack_from("<q", buf, pos)
    name = _string(buf, pos + 8, len(buf))
    if name is None:
        raise RecorderError(path, pos + 8, None, "the header ends inside the map name", _TRUNCATED_HINT)
    if version != fmt.HEADER_VERSION:
        raise RecorderError(
            path,
            0,
            None,
            f"header version {version} is not supported (CARLA 0.9.10-0.9.16 write version 1)",
            "this file comes from an unknown CARLA build; open an issue with a sample",
        )
    return RecorderHeader(version, magic[0], date, name[0], name[1])


@dataclass
class PacketStats:
    """Packet counts and skipped bytes, for summaries."""

    by_id: Counter = field(default_factory=Counter)
    bytes_by_id: Counter = field(default_factory=Counter)
    unknown: Counter = field(default_factory=Counter)


@dataclass
class Chunk:
    """Decoded records of a run of consecutive packets.

    Attributes
    ----------
    frames : pyarrow.Table
        ``frame`` (0-based index), ``frame_id`` (CARLA's counter), ``duration`` (s,
        -1 for the last frame as CARLA writes it), ``elapsed`` (s), ``offset`` (byte).
    tables : dict of str to pyarrow.Table
        One table per packet kind, each with a ``frame`` column.
    """

    frames: pa.Table
    tables: dict[str, pa.Table]


class ProfileResolver:
    """Narrows the candidate profiles as ambiguous packets are seen."""

    def __init__(self, forced: str | None = None) -> None:
        if forced is not None and forced not in fmt.PROFILES_BY_NAME:
            raise ValueError(f"unknown profile {forced!r}; known: {', '.join(fmt.PROFILES_BY_NAME)}")
        self.candidates = [fmt.PROFILES_BY_NAME[forced]] if forced else list(fmt.PROFILES)
        self.forced = forced is not None
        self.max_id = -1

    @property
    def profile(self) -> fmt.Profile:
        """Earliest profile consistent with everything seen so far."""
        fitting = [p for p in self.candidates if len(p.kinds) > self.max_id]
        return (fitting or self.candidates)[0]

    def observe(self, buf: bytes, pid: int, off: int, size: int) -> None:
        """Drop profiles whose layout for ``pid`` does not fit this packet."""
        self.max_id = max(self.max_id, pid)
        if self.forced or pid < len(fmt._V14):
            return
        if len({p.kind(pid) for p in self.candidates} - {None}) <= 1:
            return  # every remaining profile reads this id the same way
        keep = [p for p in self.candidates if _fits(p.kind(pid), buf, off, size)]
        if keep:
            self.candidates = keep


def _fits(kind: str | None, buf: bytes, off: int, size: int) -> bool:
    if kind is None:
        return True
    if size < 2:
        return False
    (count,) = struct.unpack_from("<H", buf, off)
    if kind in fmt.RECORD_DTYPES:
        return size == 2 + count * fmt.RECORD_DTYPES[kind].itemsize
    if kind == fmt.ANIM_VEHICLE_WHEELS:
        return _wheels(buf, off, size) is not None
    return True


def _wheels(buf: bytes, off: int, size: int) -> list | None:
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


class RecorderReader:
    """Streams a recorder file as decoded chunks.

    Parameters
    ----------
    path : str or Path
    profile : str, optional
        Force a profile name (default: detect).
    block_bytes : int
        Bytes read at a time; memory is a small multiple of this.
    """

    def __init__(self, path: str | Path, *, profile: str | None = None, block_bytes: int = BLOCK_BYTES) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise RecorderError(self.path, 0, None, "no such file", "check the path of the recording")
        self.file_size = os.path.getsize(self.path)
        self.block_bytes = max(block_bytes, 1 << 16)
        self.resolver = ProfileResolver(profile)
        self.stats = PacketStats()
        with open(self.path, "rb") as fh:
            head = fh.read(min(self.file_size, 1 << 16))
        self.header = read_header(head, self.path)
        self.frames_seen = 0
        self.last_complete_frame: int | None = None
        if profile is None:
            self._detect_profile()

    def _detect_profile(self, max_bytes: int = 4 << 20) -> None:
        """Walk packet headers of the first ``max_bytes`` to settle the profile before
        decoding; errors are left to the decoding pass, which reports them precisely."""
        with open(self.path, "rb") as fh:
            fh.seek(self.header.size)
            buf = fh.read(max_bytes)
        pos, end = 0, len(buf)
        while pos + 5 <= end:
            pid, size = _HDR.unpack_from(buf, pos)
            if pos + 5 + size > end:
                break
            if pid >= 18:
                self.resolver.observe(buf, pid, pos + 5, size)
            pos += 5 + size

    @property
    def profile(self) -> fmt.Profile:
        """The profile the file fits."""
        return self.resolver.profile

    def _error(self, offset: int, problem: str, hint: str = _TRUNCATED_HINT) -> RecorderError:
        return RecorderError(self.path, offset, self.last_complete_frame, problem, hint)

    def chunks(self) -> Iterator[Chunk]:
        """Decode the file block by block."""
        pos_file = self.header.size
        carry = b""
        with open(self.path, "rb") as fh:
            fh.seek(pos_file)
            while True:
                block = fh.read(self.block_bytes)
                buf = carry + block
                base = pos_file - len(carry)
                at_eof = len(block) == 0 or pos_file + len(block) >= self.file_size
                pos_file += len(block)
                ids, offs, sizes, used = self._scan(buf, base, at_eof)
                carry = buf[used:]
                if ids:
                    yield self._decode(
                        buf, base, np.array(ids, np.int64), np.array(offs, np.int64), np.array(sizes, np.int64)
                    )
                if at_eof:
                    break
        if carry:
            raise self._error(self.file_size - len(carry), "the file ends inside a packet header")
        if self.frames_seen and self.last_complete_frame != self.frames_seen - 1:
            raise self._error(
                self.file_size,
                f"the last frame ({self.frames_seen - 1}) has no FrameEnd packet: the file was cut mid-frame",
            )

    def _scan(self, buf: bytes, base: int, at_eof: bool) -> tuple[list, list, list, int]:
        """Packets wholly inside ``buf``; returns ids, payload offsets, sizes, bytes used."""
        ids: list[int] = []
        offs: list[int] = []
        sizes: list[int] = []
        pos, end = 0, len(buf)
        unpack = _HDR.unpack_from
        in_frame = self.frames_seen > 0 and self.last_complete_frame != self.frames_seen - 1
        observe = self.resolver.observe
        while pos + 5 <= end:
            pid, size = unpack(buf, pos)
            if size > MAX_PACKET_BYTES or base + pos + 5 + size > self.file_size:
                raise self._error(
                    base + pos,
                    f"packet id {pid} declares {size} bytes of payload but only "
                    f"{self.file_size - base - pos - 5} bytes remain in the file",
                )
            if pos + 5 + size > end:
                break  # the rest of this packet is in the next block
            if pid == 0:
                if size != 24:
                    raise self._error(base + pos, f"a FrameStart packet must hold 24 bytes, this one declares {size}")
                if in_frame:
                    raise self._error(base + pos, "a new frame starts before the previous one ended (no FrameEnd)")
                in_frame = True
                self.frames_seen += 1
            elif not in_frame:
                raise self._error(
                    base + pos,
                    f"packet id {pid} outside a frame (expected a FrameStart packet, id 0)",
                )
            elif pid == 1:
                if size != 0:
                    raise self._error(base + pos, f"a FrameEnd packet must be empty, this one declares {size} bytes")
                in_frame = False
                self.last_complete_frame = self.frames_seen - 1
            elif pid >= 18:
                observe(buf, pid, pos + 5, size)
            ids.append(pid)
            offs.append(pos + 5)
            sizes.append(size)
            pos += 5 + size
        return ids, offs, sizes, pos

    def _decode(self, buf: bytes, base: int, ids: np.ndarray, offs: np.ndarray, sizes: np.ndarray) -> Chunk:
        raw = np.frombuffer(buf, dtype=np.uint8)
        starts = ids == 0
        frame_base = self.frames_seen - int(starts.sum())
        frame = frame_base + np.cumsum(starts) - 1
        profile = self.resolver.profile
        n_by_id = np.bincount(ids, minlength=256)
        bytes_by_id = np.bincount(ids, weights=sizes + 5, minlength=256)
        for pid in np.flatnonzero(n_by_id):
            kind = profile.kind(int(pid))
            self.stats.by_id[kind or int(pid)] += int(n_by_id[pid])
            self.stats.bytes_by_id[kind or int(pid)] += int(bytes_by_id[pid])
            if kind is None:
                self.stats.unknown[int(pid)] += int(n_by_id[pid])

        fs = offs[starts]
        fr = np.frombuffer(
            _gather(raw, fs, 24).tobytes(), dtype=np.dtype([("id", "<u8"), ("dur", "<f8"), ("el", "<f8")])
        )
        frames = pa.table(
            {
                "frame": pa.array(frame[starts]),
                "frame_id": pa.array(fr["id"]),
                "duration": pa.array(fr["dur"]),
                "elapsed": pa.array(fr["el"]),
                "offset": pa.array(fs - 5 + base),
            }
        )
        tables: dict[str, pa.Table] = {}
        for kind, dtype in fmt.RECORD_DTYPES.items():
            pid = profile.packet_id(kind)
            if pid is None:
                continue
            sel = np.flatnonzero(ids == pid)
            if sel.size == 0:
                continue
            tables[kind] = self._records(raw, base, kind, dtype, offs[sel], sizes[sel], frame[sel])
        for kind in (fmt.PLATFORM_TIME, fmt.VISUAL_TIME, fmt.FRAME_COUNTER):
            pid = profile.packet_id(kind)
            sel = np.flatnonzero(ids == pid) if pid is not None else np.array([], int)
            if sel.size:
                bad = sel[sizes[sel] != 8]
                if bad.size:
                    raise self._error(int(offs[bad[0]]) - 5 + base, f"a {kind} packet must hold 8 bytes")
                dt = "<u8" if kind == fmt.FRAME_COUNTER else "<f8"
                vals = _gather(raw, offs[sel], 8).view(dt).reshape(-1)
                tables[kind] = pa.table({"frame": pa.array(frame[sel]), "value": pa.array(vals)})
        for kind, decoder in _VARIABLE.items():
            pid = profile.packet_id(kind)
            if pid is None:
                continue
            sel = np.flatnonzero(ids == pid)
            if sel.size:
                tables[kind] = decoder(self, buf, base, offs[sel], sizes[sel], frame[sel])
        return Chunk(frames, tables)

    def _records(self, raw, base, kind, dtype, offs, sizes, frames) -> pa.Table:
        too_small = np.flatnonzero(sizes < 2)
        if too_small.size:
            i = int(too_small[0])
            raise self._error(int(offs[i]) - 5 + base, f"a {kind} packet of {int(sizes[i])} bytes has no record count")
        counts = raw[offs].astype(np.int64) | (raw[offs + 1].astype(np.int64) << 8)
        bad = np.flatnonzero(sizes != 2 + counts * dtype.itemsize)
        if bad.size:
            i = int(bad[0])
            raise self._error(
                int(offs[i]) - 5 + base,
                f"a {kind} packet declares {int(sizes[i])} bytes but {int(counts[i])} records of "
                f"{dtype.itemsize} bytes need {2 + int(counts[i]) * dtype.itemsize}",
            )
        total = int(counts.sum())
        first = np.repeat(offs + 2, counts)
        within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        rec = _gather(raw, first + within * dtype.itemsize, dtype.itemsize).view(dtype).reshape(-1)
        cols = {"frame": pa.array(np.repeat(frames, counts))}
        for name in dtype.names:
            cols[name] = pa.array(rec[name])
        return _to_units(kind, pa.table(cols))


def _gather(raw: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Rows of ``width`` bytes starting at each offset, as a contiguous (n, width) array."""
    if width == 0:
        return np.zeros((len(starts), 0), np.uint8)
    return raw[starts[:, None] + np.arange(width)]


_DEG = np.pi / 180.0


def _to_units(kind: str, t: pa.Table) -> pa.Table:
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
            t = t.set_column(i, n, pa.compute.not_equal(t.column(n), 0))
    return t


# -- variable-length records ------------------------------------------------------


class _Cursor:
    """Bounds-checked little-endian reads inside one packet."""

    def __init__(self, reader: RecorderReader, buf: bytes, pos: int, end: int, base: int, kind: str) -> None:
        self.r, self.buf, self.pos, self.end, self.base, self.kind = reader, buf, pos, end, base, kind

    def take(self, fmt_: str) -> tuple:
        n = struct.calcsize(fmt_)
        if self.pos + n > self.end:
            raise self.r._error(self.base + self.pos, f"a {self.kind} record runs past the end of its packet")
        out = struct.unpack_from(fmt_, self.buf, self.pos)
        self.pos += n
        return out

    def string(self) -> str:
        got = _string(self.buf, self.pos, self.end)
        if got is None:
            raise self.r._error(self.base + self.pos, f"a string in a {self.kind} record runs past its packet")
        self.pos = got[1]
        return got[0]

    def done(self) -> None:
        if self.pos != self.end:
            raise self.r._error(
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


def _physics_control(reader, buf, base, offs, sizes, frames) -> pa.Table:
    names = (
        "max_rpm",
        "moi",
        "damping_full_throttle",
        "damping_zero_throttle_engaged",
        "damping_zero_throttle_disengaged",
    )
    rows: dict[str, list] = {
        k: []
        for k in (
            "frame",
            "id",
            *names,
            "auto_gear",
            "clutch_strength",
            "final_ratio",
            "mass",
            "drag_coefficient",
            "com_x",
            "com_y",
            "com_z",
            "torque_curve",
            "forward_gears",
            "steering_curve",
            "wheels",
        )
    }
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
        keys = (
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
        rec.update(dict(zip(keys, head, strict=True)))
        rec["auto_gear"] = bool(rec["auto_gear"])
        for name, width in (("torque_curve", 2), ("forward_gears", 3), ("steering_curve", 2)):
            (n,) = c.take("<I")
            if n > 4096:
                raise reader._error(base + c.pos, f"a PhysicsControl {name} claims {n} points")
            rec[name] = [list(c.take(f"<{width}f")) for _ in range(n)]
        (n,) = c.take("<I")
        if n > 64:
            raise reader._error(base + c.pos, f"a PhysicsControl record claims {n} wheels")
        wheels = []
        for _ in range(n):
            vals = c.take(f"<{wheel_size // 4}f") if wheel_size % 4 == 0 else c.take(f"<{wheel_size}B")
            wheels.append(list(vals[:12]))
        rec["wheels"] = wheels
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
        got = _string(buf, q, end)
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
            raise reader._error(base + off - 5, "a WalkerBones packet has no record count")
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
        rec = _gather(raw, first + within * dtype.itemsize, dtype.itemsize).view(dtype).reshape(-1)
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
        got = _wheels(buf, off, size)
        if got is None:
            raise reader._error(base + off - 5, "an AnimVehicleWheels packet's records do not fill it exactly")
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


_VARIABLE = {
    fmt.EVENT_ADD: _event_add,
    fmt.PHYSICS_CONTROL: _physics_control,
    fmt.WALKER_BONES: _walker_bones,
    fmt.ANIM_VEHICLE_WHEELS: _anim_wheels,
}


@dataclass
class Recording:
    """A whole recording in memory (use :class:`RecorderReader` to stream)."""

    path: Path
    header: RecorderHeader
    profile: fmt.Profile
    frames: pa.Table
    tables: dict[str, pa.Table]
    stats: PacketStats

    def table(self, kind: str) -> pa.Table:
        """Records of one packet kind (an empty table when the file has none)."""
        return self.tables.get(kind, pa.table({"frame": pa.array([], pa.int64())}))

    @property
    def duration(self) -> float:
        """Elapsed time of the last frame, s."""
        return float(self.frames.column("elapsed")[-1].as_py()) if self.frames.num_rows else 0.0


def read_recording(path: str | Path, *, profile: str | None = None, block_bytes: int = BLOCK_BYTES) -> Recording:
    """Read and decode a whole recorder file.

    Parameters
    ----------
    path : str or Path
    profile : str, optional
        Force a profile (see :data:`data.carla.format.PROFILES`); default: detect.
    block_bytes : int
        Read size; the result is the same for any value.

    Raises
    ------
    RecorderError
    """
    reader = RecorderReader(path, profile=profile, block_bytes=block_bytes)
    frames, parts = [], {}
    for chunk in reader.chunks():
        frames.append(chunk.frames)
        for kind, t in chunk.tables.items():
            parts.setdefault(kind, []).append(t)
    tables = {k: pa.concat_tables(v, promote_options="default") for k, v in parts.items()}
    if not frames:
        raise RecorderError(path, reader.header.size, None, "the recording holds no frames", _TRUNCATED_HINT)
    return Recording(reader.path, reader.header, reader.profile, pa.concat_tables(frames), tables, reader.stats)
