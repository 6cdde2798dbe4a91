"""A small writer of CARLA recorder files, for tests and benchmarks.

It writes the binary layout that :mod:`roadworthy.data.carla.recorder` reads, under any
profile, so the packets of releases newer than the real sample files (0.9.14 to
0.9.16 and the 2023 development numbering) can be exercised without a CARLA
server. It is not a recorder: it writes what it is given.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from roadworthy.data.carla import format as fmt
from roadworthy.data.writer import AtomicFile, AtomicStream


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<H", len(raw)) + raw


class RecorderWriter(AtomicStream):
    """Write a recorder file frame by frame, atomically.

    Parameters
    ----------
    path : str or Path
    map_name : str
    profile : str
        Packet numbering to use (a name in :data:`roadworthy.data.carla.format.PROFILES_BY_NAME`).
    date : int, optional
        Unix time in the header (default: now).

    Examples
    --------
    >>> with RecorderWriter(path, profile="0.9.16") as w:   # doctest: +SKIP
    ...     w.begin_frame(1, 0.05, 0.0)
    ...     w.records("Position", positions)
    ...     w.end_frame()
    """

    def __init__(
        self, path: str | Path, *, map_name: str = "Town01", profile: str = "0.9.16", date: int | None = None
    ) -> None:
        self.profile = fmt.PROFILES_BY_NAME[profile]
        self._file = AtomicFile(path)
        self._fh = open(self._file.tmp, "wb")
        header = struct.pack("<H", fmt.HEADER_VERSION) + _string(fmt.MAGIC)
        header += struct.pack("<q", int(time.time()) if date is None else date) + _string(map_name)
        self._fh.write(header)

    def _id(self, kind: str) -> int:
        pid = self.profile.packet_id(kind)
        if pid is None:
            raise ValueError(f"profile {self.profile.name} has no {kind} packet")
        return pid

    def packet(self, kind: str, payload: bytes) -> None:
        """Write one packet of ``kind`` with a raw payload."""
        self._fh.write(struct.pack("<BI", self._id(kind), len(payload)) + payload)

    def raw_packet(self, packet_id: int, payload: bytes) -> None:
        """Write a packet with an explicit id (for unknown-id tests)."""
        self._fh.write(struct.pack("<BI", packet_id, len(payload)) + payload)

    def begin_frame(self, frame_id: int, duration: float, elapsed: float) -> None:
        """FrameStart: CARLA's frame counter, the frame's duration and elapsed time (s)."""
        self.packet(fmt.FRAME_START, struct.pack("<Qdd", frame_id, duration, elapsed))

    def end_frame(self) -> None:
        """FrameEnd."""
        self.packet(fmt.FRAME_END, b"")

    def records(self, kind: str, rows: np.ndarray) -> None:
        """A count and fixed-size records (a structured array in the kind's dtype)."""
        dtype = fmt.RECORD_DTYPES[kind]
        arr = np.asarray(rows, dtype=dtype)
        self.packet(kind, struct.pack("<H", len(arr)) + arr.tobytes())

    def scalar(self, kind: str, value: float | int) -> None:
        """PlatformTime, VisualTime (double) or FrameCounter (uint64)."""
        code = "<Q" if kind == fmt.FRAME_COUNTER else "<d"
        self.packet(kind, struct.pack(code, value))

    def event_add(self, actors: Iterable[Mapping]) -> None:
        """EventAdd: dicts with id, type (int), location (cm), rotation (deg), blueprint, attributes."""
        body = b""
        actors = list(actors)
        for a in actors:
            body += struct.pack("<IB", a["id"], a["type"])
            body += struct.pack("<3f", *a.get("location", (0.0, 0.0, 0.0)))
            body += struct.pack("<3f", *a.get("rotation", (0.0, 0.0, 0.0)))
            body += struct.pack("<I", a.get("uid", 0)) + _string(a["blueprint"])
            attrs = a.get("attributes", {})
            body += struct.pack("<H", len(attrs))
            for k, v in attrs.items():
                body += struct.pack("<B", 10) + _string(k) + _string(v)
        self.packet(fmt.EVENT_ADD, struct.pack("<H", len(actors)) + body)

    def walker_bones(self, walkers: Mapping[int, list[tuple[str, tuple, tuple]]]) -> None:
        """WalkerBones: per walker id, (bone name, location cm, rotation deg) triples."""
        body = b""
        for actor, bones in walkers.items():
            body += struct.pack("<IH", actor, len(bones))
            for name, loc, rot in bones:
                body += _string(name) + struct.pack("<6f", *loc, *rot)
        self.packet(fmt.WALKER_BONES, struct.pack("<H", len(walkers)) + body)

    def anim_wheels(self, vehicles: Mapping[int, list[tuple[int, float, float]]]) -> None:
        """AnimVehicleWheels: per vehicle id, (wheel location, steer angle, tire rotation)."""
        body = b""
        for actor, wheels in vehicles.items():
            body += struct.pack("<II", actor, len(wheels))
            for loc, steer, spin in wheels:
                body += struct.pack("<Bff", loc, steer, spin)
        self.packet(fmt.ANIM_VEHICLE_WHEELS, struct.pack("<H", len(vehicles)) + body)

    def physics_control(self, actor: int, *, mass: float = 1500.0, wheels: int = 4, wheel_floats: int = 12) -> None:
        """PhysicsControl for one vehicle: 12-float wheels (0.9.12 - 0.9.16), 9 in 0.9.10 and 0.9.11."""
        body = struct.pack("<I5fB4f3f", actor, 6000.0, 1.0, 0.15, 2.0, 0.35, 1, 10.0, 4.0, mass, 0.3, 0.0, 0.0, -0.3)
        body += struct.pack("<I", 2) + struct.pack("<4f", 0.0, 400.0, 6000.0, 500.0)
        body += struct.pack("<I", 1) + struct.pack("<3f", 3.0, 0.2, 0.6)
        body += struct.pack("<I", 2) + struct.pack("<4f", 0.0, 1.0, 120.0, 0.7)
        body += struct.pack("<I", wheels) + struct.pack(f"<{wheel_floats}f", *range(wheel_floats)) * wheels
        self.packet(fmt.PHYSICS_CONTROL, struct.pack("<H", 1) + body)

    def _close_stream(self) -> None:
        self._fh.close()


def write_synthetic(
    path: str | Path,
    *,
    frames: int = 100,
    vehicles: int = 4,
    walkers: int = 2,
    profile: str = "0.9.16",
    dt: float = 0.05,
    seed: int = 0,
    map_name: str = "Town01",
    hero_start: tuple[float, float] = (107.0, 133.0),
) -> Path:
    """A synthetic recording: a hero driving +x from ``hero_start`` (m), traffic and walkers.

    Every packet kind of ``profile`` appears at least once. Used by tests and the
    parse-speed benchmark.
    """
    rng = np.random.default_rng(seed)
    prof = fmt.PROFILES_BY_NAME[profile]
    ids = np.arange(100, 100 + vehicles + walkers + 2, dtype=np.uint32)
    hero, veh, walk, light = ids[0], ids[1 : 1 + vehicles], ids[1 + vehicles : 1 + vehicles + walkers], ids[-1]
    with RecorderWriter(path, map_name=map_name, profile=profile, date=1_700_000_000) as w:
        for k in range(frames):
            w.begin_frame(k + 1, dt if k < frames - 1 else -1.0, k * dt)
            if k == 0:
                w.event_add(_actors(hero, veh, walk, light))
            else:
                w.event_add([])
            w.records(fmt.EVENT_DEL, np.zeros(0, fmt.RECORD_DTYPES[fmt.EVENT_DEL]))
            w.records(fmt.EVENT_PARENT, np.zeros(0, fmt.RECORD_DTYPES[fmt.EVENT_PARENT]))
            coll = np.zeros(1 if k == frames // 2 else 0, fmt.RECORD_DTYPES[fmt.COLLISION])
            if len(coll):
                coll[0] = (1, hero, veh[0] if vehicles else light, 1, 0)
            w.records(fmt.COLLISION, coll)
            n = len(ids)
            pos = np.zeros(n, fmt.RECORD_DTYPES[fmt.POSITION])
            pos["id"] = ids
            t = k * dt
            pos["x"] = (hero_start[0] + 8.0 * t) * 100.0
            pos["y"] = hero_start[1] * 100.0
            pos["x"][1:] += rng.uniform(-3000, 3000, n - 1)
            pos["y"][1:] += rng.uniform(-400, 400, n - 1)
            w.records(fmt.POSITION, pos)
            st = np.zeros(1, fmt.RECORD_DTYPES[fmt.STATE])
            st[0] = (light, 0, t % 10, (k // 40) % 3)
            w.records(fmt.STATE, st)
            av = np.zeros(vehicles + 1, fmt.RECORD_DTYPES[fmt.ANIM_VEHICLE])
            av["id"] = ids[: vehicles + 1]
            av["steer"] = rng.uniform(-0.2, 0.2, vehicles + 1)
            av["throttle"] = rng.uniform(0, 1, vehicles + 1)
            av["gear"] = 1
            w.records(fmt.ANIM_VEHICLE, av)
            aw = np.zeros(walkers, fmt.RECORD_DTYPES[fmt.ANIM_WALKER])
            aw["id"], aw["speed"] = walk, 140.0
            w.records(fmt.ANIM_WALKER, aw)
            vl = np.zeros(vehicles + 1, fmt.RECORD_DTYPES[fmt.VEHICLE_LIGHT])
            vl["id"] = ids[: vehicles + 1]
            w.records(fmt.VEHICLE_LIGHT, vl)
            if k == 0:
                sl = np.zeros(1, fmt.RECORD_DTYPES[fmt.SCENE_LIGHT])
                sl[0] = (7, 1000.0, 1, 1, 1, 1, 1, 2)
                w.records(fmt.SCENE_LIGHT, sl)
            kin = np.zeros(vehicles + walkers + 1, fmt.RECORD_DTYPES[fmt.KINEMATICS])
            kin["id"] = ids[:-1]
            kin["vx"] = 8.0
            w.records(fmt.KINEMATICS, kin)
            bb = np.zeros(n if k == 0 else 0, fmt.RECORD_DTYPES[fmt.BOUNDING_BOX])
            if k == 0:
                bb["id"], bb["ex"], bb["ey"], bb["ez"] = ids, 240, 100, 75
            w.records(fmt.BOUNDING_BOX, bb)
            w.scalar(fmt.PLATFORM_TIME, t * 1.01)
            if k == 0:
                tl = np.zeros(1, fmt.RECORD_DTYPES[fmt.TRAFFIC_LIGHT_TIME])
                tl[0] = (light, 10, 3, 2)
                w.records(fmt.TRAFFIC_LIGHT_TIME, tl)
                tv = np.zeros(1, fmt.RECORD_DTYPES[fmt.TRIGGER_VOLUME])
                tv[0] = (light, 0, 0, 0, 300, 200, 100)
                w.records(fmt.TRIGGER_VOLUME, tv)
                w.physics_control(int(hero))
            _profile_records(w, prof, k, t, ids, hero, veh, walk)
            w.end_frame()
    return Path(path)


def _actors(hero, veh, walk, light) -> list[dict]:
    """The actors created in the first frame: the hero, traffic, walkers and a traffic light."""
    actors = [
        {"id": int(hero), "type": 1, "blueprint": "vehicle.lincoln.mkz_2017", "attributes": {"role_name": "hero"}}
    ]
    actors += [
        {"id": int(v), "type": 1, "blueprint": "vehicle.tesla.model3", "attributes": {"role_name": "autopilot"}}
        for v in veh
    ]
    actors += [{"id": int(v), "type": 2, "blueprint": "walker.pedestrian.0001", "attributes": {}} for v in walk]
    actors += [{"id": int(light), "type": 3, "blueprint": "traffic.traffic_light", "attributes": {}}]
    return actors


def _profile_records(w: RecorderWriter, prof, k: int, t: float, ids, hero, veh, walk) -> None:
    """The packets only some releases write (frame counter, bones, wheels, doors, weather)."""
    kinds = set(prof.kinds)
    if fmt.FRAME_COUNTER in kinds:
        w.scalar(fmt.FRAME_COUNTER, k + 1)
        w.walker_bones({int(a): [("crl_root", (1.0, 2.0, 3.0), (0.0, 0.0, 90.0))] for a in walk})
        w.scalar(fmt.VISUAL_TIME, t)
    if fmt.ANIM_VEHICLE_WHEELS in kinds:
        w.anim_wheels({int(a): [(i, 5.0, k * 10.0) for i in range(4)] for a in ids[: len(veh) + 1]})
        bk = np.zeros(1, fmt.RECORD_DTYPES[fmt.ANIM_BIKER])
        bk[0] = (veh[0] if len(veh) else hero, 5.0, 3000.0)
        w.records(fmt.ANIM_BIKER, bk)
    if fmt.VEHICLE_DOOR in kinds:
        dr = np.zeros(1 if k == 1 else 0, fmt.RECORD_DTYPES[fmt.VEHICLE_DOOR])
        if k == 1:
            dr[0] = (hero, 0, 1)
        w.records(fmt.VEHICLE_DOOR, dr)
    if fmt.WEATHER in kinds and k == 0:
        wt = np.zeros(1, fmt.RECORD_DTYPES[fmt.WEATHER])
        wt["cloudiness"] = 30.0
        w.records(fmt.WEATHER, wt)
