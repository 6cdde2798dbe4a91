"""``roadworthy import carla``: a CARLA recording to a contract-v1 driving log of its hero.

One recording becomes one episode: a row per recorder frame in which the hero
exists, with the features of :mod:`roadworthy.data.carla.features`, the applied control as
the action (steer, throttle, brake), a progress-minus-discomfort reward, the costs
``collision`` (collision records involving the hero) and ``off_road`` (the lane
under the car is not drivable), and the pose in CARLA's left-handed frame. The log
ends with the recording, so the last row is ``done`` and not ``terminal``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from roadworthy.data.carla import format as fmt
from roadworthy.data.carla.features import (
    ACTION_HIGH,
    ACTION_LOW,
    ACTION_NAMES,
    ACTOR_RANGE,
    N_ACTORS,
    OBS_NAMES,
    FrameBatch,
    compute_features,
    reward,
)
from roadworthy.data.carla.opendrive import MapLayer
from roadworthy.data.carla.recorder import Recording, read_recording
from roadworthy.data.errors import UsageError
from roadworthy.data.roads import MAPS_DIR
from roadworthy.data.schema import LogMetadata, arrow_schema
from roadworthy.data.writer import LogWriter, guard_output, staging_dir

OPTIONAL = ("collision", "off_road", "disengagement", "behavior_logp", "x", "y", "yaw", "speed", "map_name", "scenario")
FRAME = "CARLA (left-handed: x east, y south, z up), metres; yaw in rad"


#: The hero's pose features (``data.geometry``): the kinematics are fitted to each log.
GEOMETRY = {
    "handedness": "left",
    "vehicle": {"length_m": 4.5, "width_m": 2.0},
    "off_road": "centre",
    "features": {
        "speed": "speed_mps",
        "accel": "accel_mps2",
        "lane_offset": "lane_offset_m",
        "heading_error": "heading_error_rad",
        "lane_type": {t: f"lane_{t}" for t in ("driving", "sidewalk", "shoulder", "parking")},
        "lane_type_other": "lane_other_or_none",
    },
}
#: The four nearest actors, in the hero's frame (``data.contacts``).
CONTACTS = {
    "vehicle_m": [4.5, 2.0],
    "absent_dx_m": ACTOR_RANGE,
    "actors": [{"dx": f"actor{k}_dx_m", "dy": f"actor{k}_dy_m"} for k in range(N_ACTORS)],
}


def carla_metadata(dt: float, extra: dict | None = None) -> LogMetadata:
    """Schema metadata of logs made from CARLA (replays and live runs alike)."""
    info = {"simulator": json.dumps("carla"), "frame": json.dumps(FRAME)}
    info["geometry"] = json.dumps(GEOMETRY)
    info["contacts"] = json.dumps(CONTACTS)
    for k, v in (extra or {}).items():
        info[k] = json.dumps(v)
    return LogMetadata(OBS_NAMES, ACTION_NAMES, ACTION_LOW, ACTION_HIGH, dt, extra=info)


def find_hero(rec: Recording, hero: str | int | None) -> int:
    """Actor id of the hero: a number, a role name, or the actor whose role is ``hero``.

    Raises
    ------
    UsageError
        Listing the vehicles when none matches.
    """
    adds = rec.table(fmt.EVENT_ADD)
    vehicles = adds.filter(pc.equal(adds.column("type"), "vehicle")) if adds.num_rows else adds
    listing = ", ".join(
        f"{r['id']} ({r['blueprint']}, role '{r['role_name']}')"
        for r in vehicles.select(["id", "blueprint", "role_name"]).to_pylist()
    )
    want = "hero" if hero is None else str(hero)
    if want.isdigit():
        if int(want) in set(vehicles.column("id").to_pylist()):
            return int(want)
    else:
        match = [r["id"] for r in vehicles.to_pylist() if r["role_name"] == want]
        if len(match) == 1:
            return match[0]
        if len(match) > 1:
            raise UsageError(
                f"{len(match)} vehicles have role '{want}' in {rec.path}: {listing}", "pick one with `hero` (an id)"
            )
    raise UsageError(
        f"no vehicle '{want}' in {rec.path} (vehicles: {listing or 'none'})",
        "set `hero` to one of these ids or role names",
    )


def _by_frame(table: pa.Table, actor: int) -> dict[int, dict]:
    rows = table.filter(pc.equal(table.column("id"), actor)).to_pylist() if table.num_rows else []
    return {r["frame"]: r for r in rows}


def frame_batch(rec: Recording, hero: int) -> tuple[FrameBatch, np.ndarray]:
    """The hero's frames of a recording as a :class:`FrameBatch`, and their frame indices."""
    pos = rec.table(fmt.POSITION)
    hero_pos = pos.filter(pc.equal(pos.column("id"), hero)).sort_by("frame")
    frames = hero_pos.column("frame").to_numpy()
    frame_t = dict(zip(rec.frames.column("frame").to_pylist(), rec.frames.column("elapsed").to_pylist(), strict=True))
    t = np.array([frame_t[f] for f in frames], dtype=np.float64)
    x, y = hero_pos.column("x").to_numpy(), hero_pos.column("y").to_numpy()
    yaw = hero_pos.column("yaw").to_numpy()

    kin = _by_frame(rec.table(fmt.KINEMATICS), hero)
    vx, vy = np.empty(len(frames)), np.empty(len(frames))
    for i, f in enumerate(frames):
        k = kin.get(f)
        if k is not None:
            vx[i], vy[i] = k["vx"], k["vy"]
        elif 0 < i < len(frames):
            dt = max(t[i] - t[i - 1], 1e-6)
            vx[i], vy[i] = (x[i] - x[i - 1]) / dt, (y[i] - y[i - 1]) / dt
        else:
            vx[i] = vy[i] = 0.0
    anim = _by_frame(rec.table(fmt.ANIM_VEHICLE), hero)
    control = np.zeros((len(frames), 3))
    last = np.zeros(3)
    for i, f in enumerate(frames):
        a = anim.get(f)
        if a is not None:
            last = np.array([a["steer"], a["throttle"], a["brake"]], dtype=np.float64)
        control[i] = last
    control = np.clip(np.nan_to_num(control), ACTION_LOW, ACTION_HIGH)

    coll = rec.table(fmt.COLLISION)
    hit = set()
    if coll.num_rows:
        mask = pc.or_(pc.equal(coll.column("id1"), hero), pc.equal(coll.column("id2"), hero))
        hit = set(coll.filter(mask).column("frame").to_pylist())
    collision = np.array([f in hit for f in frames])

    index = {f: i for i, f in enumerate(frames.tolist())}
    adds = rec.table(fmt.EVENT_ADD)
    kinds = (
        dict(zip(adds.column("id").to_pylist(), adds.column("type").to_pylist(), strict=True)) if adds.num_rows else {}
    )
    parents = {}
    par = rec.table(fmt.EVENT_PARENT)
    if par.num_rows:
        parents = dict(zip(par.column("id").to_pylist(), par.column("parent").to_pylist(), strict=True))
    movers = [a for a, k in kinds.items() if k in ("vehicle", "walker") and a != hero and parents.get(a) != hero]
    others = pos.filter(pc.is_in(pos.column("id"), pa.array(movers, pos.schema.field("id").type)))
    others = others.filter(pc.is_in(others.column("frame"), pa.array(frames, others.schema.field("frame").type)))
    o_frame = np.array([index[f] for f in others.column("frame").to_pylist()], dtype=np.int64)
    o_vel = _velocities(rec, others)
    lights_ids = [a for a, k in kinds.items() if k == "traffic_light"]
    st = rec.table(fmt.STATE)
    lights: dict[str, np.ndarray] = {"frame": np.zeros(0, np.int64)}
    if st.num_rows and lights_ids:
        st = st.filter(pc.is_in(st.column("frame"), pa.array(frames, st.schema.field("frame").type)))
        # Traffic lights do not move and CARLA records no Position for them: their
        # place is the spawn transform of their EventAdd.
        place = {
            r["id"]: (r["x"], r["y"]) for r in adds.select(["id", "x", "y"]).to_pylist() if r["id"] in set(lights_ids)
        }
        ids = st.column("id").to_pylist()
        keep = np.array([i in place for i in ids], dtype=bool)
        lights = {
            "frame": np.array([index[f] for f in st.column("frame").to_pylist()], dtype=np.int64)[keep],
            "x": np.array([place[i][0] for i in ids if i in place]),
            "y": np.array([place[i][1] for i in ids if i in place]),
            "state": st.column("state").to_numpy()[keep],
        }
    batch = FrameBatch(
        t=t,
        x=x,
        y=y,
        yaw=yaw,
        vx=vx,
        vy=vy,
        control=control,
        collision=collision,
        others={
            "frame": o_frame,
            "x": others.column("x").to_numpy(),
            "y": others.column("y").to_numpy(),
            "vx": o_vel[0],
            "vy": o_vel[1],
        },
        lights=lights,
    )
    return batch, frames


def _velocities(rec: Recording, others: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Velocities of the other actors: recorded kinematics where present, else zero."""
    kin = rec.table(fmt.KINEMATICS)
    n = others.num_rows
    if n == 0 or kin.num_rows == 0:
        return np.zeros(n), np.zeros(n)
    joined = others.select(["frame", "id"]).join(
        kin.select(["frame", "id", "vx", "vy"]), ["frame", "id"], join_type="left outer"
    )
    lookup = {(r["frame"], r["id"]): (r["vx"], r["vy"]) for r in joined.to_pylist()}
    pairs = zip(others.column("frame").to_pylist(), others.column("id").to_pylist(), strict=True)
    vel = np.array([lookup.get(k, (0.0, 0.0)) for k in pairs], dtype=np.float64)
    return np.nan_to_num(vel[:, 0]), np.nan_to_num(vel[:, 1])


@dataclass(frozen=True)
class ImportResult:
    """What an import wrote."""

    out: Path
    rows: int
    hero: int
    skipped_frames: int
    collisions: int
    off_road_rows: int

    def to_dict(self) -> dict:
        """JSON-ready description."""
        return {
            "out": str(self.out),
            "rows": self.rows,
            "hero": self.hero,
            "skipped_frames": self.skipped_frames,
            "collision_rows": self.collisions,
            "off_road_rows": self.off_road_rows,
        }


def log_table(
    batch: FrameBatch,
    layer: MapLayer,
    *,
    episode_id: str,
    source: str | list[str],
    schema: pa.Schema,
    scenario: str,
    disengagement: np.ndarray | None = None,
) -> pa.Table:
    """Contract-v1 rows of one episode from a :class:`FrameBatch` (replay and live)."""
    obs, aux = compute_features(batch, layer)
    r = reward(batch, aux)
    n = len(batch)
    done = np.zeros(n, bool)
    done[-1] = True
    src = [source] * n if isinstance(source, str) else list(source)
    cols = {
        "episode_id": pa.array([episode_id] * n),
        "step": pa.array(np.arange(n, dtype=np.int32)),
        "t": pa.array(batch.t - batch.t[0]),
        "source": pa.array(src),
        "obs": pa.FixedSizeListArray.from_arrays(pa.array(obs.reshape(-1)), obs.shape[1]),
        "action": pa.FixedSizeListArray.from_arrays(pa.array(batch.control.astype(np.float32).reshape(-1)), 3),
        "reward": pa.array(r.astype(np.float32)),
        "done": pa.array(done),
        "terminal": pa.array(np.zeros(n, bool)),
        "collision": pa.array(batch.collision.astype(bool)),
        "off_road": pa.array(aux["off_road"].astype(bool)),
        "disengagement": pa.array(np.zeros(n, bool) if disengagement is None else disengagement),
        "behavior_logp": pa.nulls(n, pa.float32()),
        "x": pa.array(batch.x.astype(np.float32)),
        "y": pa.array(batch.y.astype(np.float32)),
        "yaw": pa.array(batch.yaw.astype(np.float32)),
        "speed": pa.array(aux["speed"].astype(np.float32)),
        "map_name": pa.array([layer.name] * n),
        "scenario": pa.array([scenario] * n),
    }
    return pa.table(cols).cast(schema)


def import_recording(
    recording: str | Path,
    *,
    map_path: str | Path,
    out: str | Path,
    hero: str | int | None = None,
    source: str = "autopilot",
    overwrite: bool = False,
) -> ImportResult:
    """Convert a recording into a dataset folder ``out`` (log + ``_maps/`` geometry).

    Raises
    ------
    RecorderError, MapError, UsageError
    """
    out = Path(out)
    guard_output(out, inputs=[recording, map_path], overwrite=overwrite, folder=True, option="out")
    rec = read_recording(recording)
    layer = MapLayer.from_xodr(map_path)
    if layer.name.lower() != rec.header.map_name.lower().split("/")[-1].lower():
        raise UsageError(
            f"the recording was made on map '{rec.header.map_name}' but `map_path` is '{layer.name}'",
            f"pass the OpenDRIVE file of {rec.header.map_name}",
        )
    hero_id = find_hero(rec, hero)
    batch, frames = frame_batch(rec, hero_id)
    if len(batch) < 2:
        raise UsageError(f"the hero {hero_id} appears in {len(batch)} frame(s) only", "pick another `hero`")
    durations = rec.frames.column("duration").to_numpy()
    dt = float(np.median(durations[durations > 0])) if (durations > 0).any() else 0.05
    schema = arrow_schema(
        carla_metadata(dt, {"recording": Path(recording).name, "carla_profile": rec.profile.name}), optional=OPTIONAL
    )
    stem = Path(recording).stem
    table = log_table(batch, layer, episode_id=f"{stem}-hero{hero_id}", source=source, schema=schema, scenario=stem)
    with staging_dir(out, prefix=".import-") as staging:
        with LogWriter(staging / f"{stem}.parquet", schema) as w:
            w.write(table)
        layer.write(staging / MAPS_DIR)
    return ImportResult(
        out=out,
        rows=table.num_rows,
        hero=hero_id,
        skipped_frames=rec.frames.num_rows - len(frames),
        collisions=int(batch.collision.sum()),
        off_road_rows=int(pc.sum(table.column("off_road")).as_py() or 0),
    )
