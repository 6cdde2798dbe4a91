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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from roadworthy.data.carla import format as fmt
from roadworthy.data.carla.errors import TRUNCATED_HINT, RecorderError, read_string
from roadworthy.data.carla.records import VARIABLE_DECODERS, gather, to_units, wheels_records

BLOCK_BYTES = 8 << 20
#: No single packet of a real recording comes near this; a larger size is corruption.
MAX_PACKET_BYTES = 256 << 20
_HDR = struct.Struct("<BI")


@dataclass(frozen=True)
class RecorderHeader:
    """The file header."""

    version: int
    magic: str
    date: int
    map_name: str
    size: int


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
        raise RecorderError(path, 0, None, "the file is too short for a CARLA recorder header", TRUNCATED_HINT)
    (version,) = struct.unpack_from("<H", buf, 0)
    magic = read_string(buf, 2, len(buf))
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
        raise RecorderError(path, pos, None, "the header ends before its date", TRUNCATED_HINT)
    (date,) = struct.unpack_from("<q", buf, pos)
    name = read_string(buf, pos + 8, len(buf))
    if name is None:
        raise RecorderError(path, pos + 8, None, "the header ends inside the map name", TRUNCATED_HINT)
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
        return wheels_records(buf, off, size) is not None
    return True


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

    def error_at(self, offset: int, problem: str, hint: str = TRUNCATED_HINT) -> RecorderError:
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
            raise self.error_at(self.file_size - len(carry), "the file ends inside a packet header")
        if self.frames_seen and self.last_complete_frame != self.frames_seen - 1:
            raise self.error_at(
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
                raise self.error_at(
                    base + pos,
                    f"packet id {pid} declares {size} bytes of payload but only "
                    f"{self.file_size - base - pos - 5} bytes remain in the file",
                )
            if pos + 5 + size > end:
                break  # the rest of this packet is in the next block
            if pid == 0:
                if size != 24:
                    raise self.error_at(base + pos, f"a FrameStart packet must hold 24 bytes, this one declares {size}")
                if in_frame:
                    raise self.error_at(base + pos, "a new frame starts before the previous one ended (no FrameEnd)")
                in_frame = True
                self.frames_seen += 1
            elif not in_frame:
                raise self.error_at(
                    base + pos,
                    f"packet id {pid} outside a frame (expected a FrameStart packet, id 0)",
                )
            elif pid == 1:
                if size != 0:
                    raise self.error_at(base + pos, f"a FrameEnd packet must be empty, this one declares {size} bytes")
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
            gather(raw, fs, 24).tobytes(), dtype=np.dtype([("id", "<u8"), ("dur", "<f8"), ("el", "<f8")])
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
                    raise self.error_at(int(offs[bad[0]]) - 5 + base, f"a {kind} packet must hold 8 bytes")
                dt = "<u8" if kind == fmt.FRAME_COUNTER else "<f8"
                vals = gather(raw, offs[sel], 8).view(dt).reshape(-1)
                tables[kind] = pa.table({"frame": pa.array(frame[sel]), "value": pa.array(vals)})
        for kind, decoder in VARIABLE_DECODERS.items():
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
            problem = f"a {kind} packet of {int(sizes[i])} bytes has no record count"
            raise self.error_at(int(offs[i]) - 5 + base, problem)
        counts = raw[offs].astype(np.int64) | (raw[offs + 1].astype(np.int64) << 8)
        bad = np.flatnonzero(sizes != 2 + counts * dtype.itemsize)
        if bad.size:
            i = int(bad[0])
            raise self.error_at(
                int(offs[i]) - 5 + base,
                f"a {kind} packet declares {int(sizes[i])} bytes but {int(counts[i])} records of "
                f"{dtype.itemsize} bytes need {2 + int(counts[i]) * dtype.itemsize}",
            )
        total = int(counts.sum())
        first = np.repeat(offs + 2, counts)
        within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        rec = gather(raw, first + within * dtype.itemsize, dtype.itemsize).view(dtype).reshape(-1)
        cols = {"frame": pa.array(np.repeat(frames, counts))}
        for name in dtype.names:
            cols[name] = pa.array(rec[name])
        return to_units(kind, pa.table(cols))


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
        Force a profile (see :data:`roadworthy.data.carla.format.PROFILES`); default: detect.
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
        raise RecorderError(path, reader.header.size, None, "the recording holds no frames", TRUNCATED_HINT)
    return Recording(reader.path, reader.header, reader.profile, pa.concat_tables(frames), tables, reader.stats)
