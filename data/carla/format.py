"""CARLA's recorder file format: packet ids, version profiles and record layouts.

A recorder file (``client.start_recorder``) is little-endian: a header (uint16
version = 1, string magic ``CARLA_RECORDER``, int64 Unix date, string map name;
a string is a uint16 length and UTF-8 bytes), then packets: uint8 id, uint32
payload size, payload. Most payloads are a uint16 record count and that many
records. Locations are float32 centimetres, rotations float32 degrees in the order
roll, pitch, yaw, in Unreal's left-handed frame (x forward, y right, z up), which
is also the CARLA Python API's frame.

Packet ids were appended release by release, and once reordered on a development
branch, while the header version stayed 1, so a file is read with a *profile*
mapping ids to packet kinds; :func:`detect_profile` picks the one the file fits.
Layouts follow CARLA's ``Unreal/CarlaUE4/Plugins/Carla/Source/Carla/Recorder``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAGIC = "CARLA_RECORDER"
HEADER_VERSION = 1

# Packet kinds (names as in CARLA's CarlaRecorderPacketId).
FRAME_START = "FrameStart"
FRAME_END = "FrameEnd"
EVENT_ADD = "EventAdd"
EVENT_DEL = "EventDel"
EVENT_PARENT = "EventParent"
COLLISION = "Collision"
POSITION = "Position"
STATE = "State"
ANIM_VEHICLE = "AnimVehicle"
ANIM_WALKER = "AnimWalker"
VEHICLE_LIGHT = "VehicleLight"
SCENE_LIGHT = "SceneLight"
KINEMATICS = "Kinematics"
BOUNDING_BOX = "BoundingBox"
PLATFORM_TIME = "PlatformTime"
PHYSICS_CONTROL = "PhysicsControl"
TRAFFIC_LIGHT_TIME = "TrafficLightTime"
TRIGGER_VOLUME = "TriggerVolume"
FRAME_COUNTER = "FrameCounter"
WALKER_BONES = "WalkerBones"
VISUAL_TIME = "VisualTime"
VEHICLE_DOOR = "VehicleDoor"
ANIM_VEHICLE_WHEELS = "AnimVehicleWheels"
ANIM_BIKER = "AnimBiker"
WEATHER = "Weather"

_BASE = (
    FRAME_START,
    FRAME_END,
    EVENT_ADD,
    EVENT_DEL,
    EVENT_PARENT,
    COLLISION,
    POSITION,
    STATE,
    ANIM_VEHICLE,
    ANIM_WALKER,
    VEHICLE_LIGHT,
    SCENE_LIGHT,
    KINEMATICS,
    BOUNDING_BOX,
    PLATFORM_TIME,
    PHYSICS_CONTROL,
    TRAFFIC_LIGHT_TIME,
    TRIGGER_VOLUME,
)
_V14 = (*_BASE, FRAME_COUNTER, WALKER_BONES, VISUAL_TIME)


@dataclass(frozen=True)
class Profile:
    """How one family of CARLA releases numbers its packets."""

    name: str
    releases: str
    kinds: tuple[str, ...]

    def kind(self, packet_id: int) -> str | None:
        """Packet kind of an id, ``None`` when the profile does not know it."""
        return self.kinds[packet_id] if packet_id < len(self.kinds) else None

    def packet_id(self, kind: str) -> int | None:
        """Id of a packet kind in this profile."""
        return self.kinds.index(kind) if kind in self.kinds else None


#: Profiles, oldest first. Later releases only append ids, except the 2023
#: development branch, which put the door packet at 21 before the release moved
#: it behind wheels and bikers.
PROFILES: tuple[Profile, ...] = (
    Profile("0.9.13", "0.9.10 - 0.9.13", _BASE),
    Profile("0.9.14", "0.9.14", _V14),
    Profile("0.9.15", "0.9.15", (*_V14, ANIM_VEHICLE_WHEELS, ANIM_BIKER)),
    Profile("0.9.16", "0.9.16 and later", (*_V14, ANIM_VEHICLE_WHEELS, ANIM_BIKER, VEHICLE_DOOR, WEATHER)),
    Profile("ue4-dev-2023", "ue4-dev builds of 2023", (*_V14, VEHICLE_DOOR, ANIM_VEHICLE_WHEELS, ANIM_BIKER)),
)
PROFILES_BY_NAME = {p.name: p for p in PROFILES}

_VEC = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]


def _packed(fields: list[tuple[str, str]]) -> np.dtype:
    return np.dtype(fields)  # numpy structured dtypes from a list are packed (no padding)


#: Fixed-size record layouts: a uint16 count and that many records.
RECORD_DTYPES: dict[str, np.dtype] = {
    EVENT_DEL: _packed([("id", "<u4")]),
    EVENT_PARENT: _packed([("id", "<u4"), ("parent", "<u4")]),
    COLLISION: _packed([("collision_id", "<u4"), ("id1", "<u4"), ("id2", "<u4"), ("hero1", "u1"), ("hero2", "u1")]),
    POSITION: _packed(
        [("id", "<u4"), ("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("roll", "<f4"), ("pitch", "<f4"), ("yaw", "<f4")]
    ),
    STATE: _packed([("id", "<u4"), ("frozen", "u1"), ("elapsed", "<f4"), ("state", "u1")]),
    ANIM_VEHICLE: _packed(
        [("id", "<u4"), ("steer", "<f4"), ("throttle", "<f4"), ("brake", "<f4"), ("handbrake", "u1"), ("gear", "<i4")]
    ),
    ANIM_WALKER: _packed([("id", "<u4"), ("speed", "<f4")]),
    VEHICLE_LIGHT: _packed([("id", "<u4"), ("lights", "<u4")]),
    SCENE_LIGHT: _packed(
        [
            ("light_id", "<i4"),
            ("intensity", "<f4"),
            ("r", "<f4"),
            ("g", "<f4"),
            ("b", "<f4"),
            ("a", "<f4"),
            ("on", "u1"),
            ("group", "u1"),
        ]
    ),
    KINEMATICS: _packed(
        [("id", "<u4"), ("vx", "<f4"), ("vy", "<f4"), ("vz", "<f4"), ("wx", "<f4"), ("wy", "<f4"), ("wz", "<f4")]
    ),
    BOUNDING_BOX: _packed(
        [("id", "<u4"), ("ox", "<f4"), ("oy", "<f4"), ("oz", "<f4"), ("ex", "<f4"), ("ey", "<f4"), ("ez", "<f4")]
    ),
    TRAFFIC_LIGHT_TIME: _packed([("id", "<u4"), ("green", "<f4"), ("yellow", "<f4"), ("red", "<f4")]),
    TRIGGER_VOLUME: _packed(
        [("id", "<u4"), ("ox", "<f4"), ("oy", "<f4"), ("oz", "<f4"), ("ex", "<f4"), ("ey", "<f4"), ("ez", "<f4")]
    ),
    VEHICLE_DOOR: _packed([("id", "<u4"), ("doors", "u1"), ("open", "u1")]),
    ANIM_BIKER: _packed([("id", "<u4"), ("forward_speed", "<f4"), ("engine_rotation", "<f4")]),
    WEATHER: _packed(
        [
            (name, "<f4")
            for name in (
                "cloudiness",
                "precipitation",
                "precipitation_deposits",
                "wind_intensity",
                "sun_azimuth_angle",
                "sun_altitude_angle",
                "fog_density",
                "fog_distance",
                "fog_falloff",
                "wetness",
                "scattering_intensity",
                "mie_scattering_scale",
                "rayleigh_scattering_scale",
                "dust_storm",
            )
        ]
    ),
}

#: Packets with one value and no count: their exact payload size.
SCALAR_PACKETS: dict[str, tuple[int, str]] = {
    FRAME_START: (24, "<u8,<f8,<f8"),
    FRAME_END: (0, ""),
    PLATFORM_TIME: (8, "<f8"),
    FRAME_COUNTER: (8, "<u8"),
    VISUAL_TIME: (8, "<f8"),
}

#: CARLA's actor types in EventAdd (FCarlaActor::ActorType).
ACTOR_TYPES = {0: "other", 1: "vehicle", 2: "walker", 3: "traffic_light", 4: "traffic_sign", 5: "sensor"}

#: Bytes of one wheel in PhysicsControl records, by release: 12 float32 (48) in 0.9.12 -
#: 0.9.16; 9 float32 (36: no lateral/longitudinal stiffness fields) in 0.9.10 and 0.9.11;
#: 208 in ue4-dev builds. Each packet is read with the first size that fills it exactly,
#: so the layout is detected from the file (``wheel_bytes`` in the decoded records).
PHYSICS_WHEEL_SIZES = (48, 36, 208)
