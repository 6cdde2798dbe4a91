"""``roadworthy collect highway``: sample fleet logs from the embedded simulator.

Episodes are simulated in worker processes (each episode's randomness depends
only on the seed and its index, so the output does not depend on the number of
workers), gathered in episode order and written as contract-v1 Parquet files,
each atomically, with the road geometry in ``_maps/``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from roadworthy.data.contacts import META_KEY as CONTACTS_KEY
from roadworthy.data.errors import UsageError
from roadworthy.data.geometry import KINEMATICS_KEY
from roadworthy.data.geometry import META_KEY as GEOMETRY_KEY
from roadworthy.data.roads import road_table, roads_path, write_roads
from roadworthy.data.schema import LogMetadata, arrow_schema
from roadworthy.data.sim.drivers import ACTION_HIGH, ACTION_LOW
from roadworthy.data.sim.episodes import EpisodeRecord, FleetConfig, FleetController, run_episode
from roadworthy.data.sim.features import (
    ACTION_NAMES,
    LANE_WIDTH,
    OBS_NAMES,
    SENSOR_RANGE,
    VEHICLE_LENGTH,
    VEHICLE_WIDTH,
)
from roadworthy.data.sim.highway import MAX_SPEED, REWARD_RANGE, HighwayConfig, HighwaySim
from roadworthy.data.surrogates import META_KEY as SURROGATE_KEY
from roadworthy.data.writer import LogWriter, guard_output, staging_dir

OPTIONAL = ("collision", "off_road", "disengagement", "behavior_logp", "x", "y", "yaw", "speed", "map_name", "scenario")
#: Which features carry the surrogate safety measures' inputs (``data.surrogates``).
SAFETY_FEATURES = {
    "speed": "speed_mps",
    "lead_gap": "lead_gap_m",
    "lead_rel_speed": "lead_rel_speed_mps",
    "no_lead_gap": SENSOR_RANGE,
}
#: Where the other vehicles are: the six lane slots of the features (``data.contacts``).
CONTACTS = {
    "vehicle_m": [VEHICLE_LENGTH, VEHICLE_WIDTH],
    "lane_offset": "lane_offset_m",
    "heading_error": "heading_error_rad",
    "absent_gap_m": SENSOR_RANGE,
    "slots": [
        {
            "gap": f"{prefix}{slot}_gap_m",
            "rel_speed": f"{prefix}{slot}_rel_speed_mps",
            "position": "ahead" if slot == "lead" else "behind",
            "lateral_m": lateral,
        }
        for prefix, lateral in (("", 0.0), ("left_", -LANE_WIDTH), ("right_", LANE_WIDTH))
        for slot in ("lead", "follow")
    ],
}
FRAME = "left-handed: x along the road, y to the right of travel, metres; yaw in rad, positive turns right"
#: The ego's pose features, box and off-road rule (``data.geometry``, contract v1.1 proposal).
GEOMETRY = {
    "handedness": "left",
    "vehicle": {"length_m": VEHICLE_LENGTH, "width_m": VEHICLE_WIDTH},
    "off_road": "centre",
    "features": {
        "speed": "speed_mps",
        "lane_offset": "lane_offset_m",
        "heading_error": "heading_error_rad",
        "left_edge": "dist_left_edge_m",
        "right_edge": "dist_right_edge_m",
        "has_left_lane": "has_left_lane",
        "has_right_lane": "has_right_lane",
    },
}
#: highway-env's ego: a kinematic bicycle referenced at its centre (``Vehicle.step``), the
#: actions being the acceleration and the steering angle themselves.
KINEMATICS = {
    "model": "bicycle",
    "wheelbase_m": VEHICLE_LENGTH,
    "rear_m": VEHICLE_LENGTH / 2,
    "accel": "accel_mps2",
    "steer": "steer_rad",
    "min_speed_mps": 0.0,
    "max_speed_mps": MAX_SPEED,
}


def log_metadata(config: HighwayConfig, extra: dict | None = None) -> LogMetadata:
    """Schema metadata of logs from the embedded simulator."""
    info = {"simulator": json.dumps("highway-env"), "reward_range": json.dumps(list(REWARD_RANGE))}
    info["frame"] = json.dumps(FRAME)
    info[SURROGATE_KEY] = json.dumps(SAFETY_FEATURES)
    info[GEOMETRY_KEY] = json.dumps(GEOMETRY)
    info[CONTACTS_KEY] = json.dumps(CONTACTS)
    info[KINEMATICS_KEY] = json.dumps(KINEMATICS)
    for k, v in (extra or {}).items():
        info[k] = json.dumps(v)
    return LogMetadata(
        obs_names=OBS_NAMES,
        action_names=ACTION_NAMES,
        action_low=ACTION_LOW,
        action_high=ACTION_HIGH,
        dt=config.dt,
        extra=info,
    )


def episode_table(rec: EpisodeRecord, schema: pa.Schema) -> pa.Table:
    """Arrow table of one simulated episode, in the log schema."""
    n = len(rec)
    d, a = len(rec.obs[0]), len(rec.action[0])
    obs = np.asarray(rec.obs, dtype=np.float32).reshape(-1)
    act = np.asarray(rec.action, dtype=np.float32).reshape(-1)
    pose = np.asarray(rec.pose, dtype=np.float32).reshape(n, 4)
    done = np.zeros(n, dtype=bool)
    done[-1] = True
    terminal = np.zeros(n, dtype=bool)
    terminal[-1] = rec.terminal
    logp = np.asarray(rec.logp, dtype=np.float32)
    cols = {
        "episode_id": pa.array([rec.episode_id] * n, pa.string()),
        "step": pa.array(np.arange(n, dtype=np.int32)),
        "t": pa.array(np.arange(n, dtype=np.float64) * rec.dt),
        "source": pa.array(rec.source, pa.string()),
        "obs": pa.FixedSizeListArray.from_arrays(pa.array(obs), d),
        "action": pa.FixedSizeListArray.from_arrays(pa.array(act), a),
        "reward": pa.array(np.asarray(rec.reward, dtype=np.float32)),
        "done": pa.array(done),
        "terminal": pa.array(terminal),
        "collision": pa.array(np.asarray(rec.collision, dtype=bool)),
        "off_road": pa.array(np.asarray(rec.off_road, dtype=bool)),
        "disengagement": pa.array(np.asarray(rec.disengagement, dtype=bool)),
        "behavior_logp": pa.array(logp, mask=np.isnan(logp)),
        "x": pa.array(pose[:, 0]),
        "y": pa.array(pose[:, 1]),
        "yaw": pa.array(pose[:, 2]),
        "speed": pa.array(pose[:, 3]),
        "map_name": pa.array([rec.map_name] * n, pa.string()),
        "scenario": pa.array([rec.scenario] * n, pa.string()),
    }
    return pa.table(cols).cast(schema)


# -- worker processes ------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(config: HighwayConfig, fleet: FleetConfig) -> None:
    _WORKER["sim"] = HighwaySim(config)
    _WORKER["controller"] = FleetController(fleet, config.dt)


def _simulate(job: tuple[int, int, str]) -> EpisodeRecord:
    seed, index, episode_id = job
    return run_episode(_WORKER["sim"], _WORKER["controller"], seed=seed, index=index, episode_id=episode_id)


def simulate_many(
    jobs: list[tuple[int, int, str]],
    init: Callable[..., None],
    init_args: tuple,
    work: Callable,
    workers: int,
) -> Iterator:
    """Run ``work`` over ``jobs`` in order, in-process or in ``workers`` processes."""
    if workers <= 1 or len(jobs) <= 1:
        init(*init_args)
        yield from map(work, jobs)
        return
    ctx = multiprocessing.get_context("spawn")
    chunk = max(1, min(8, len(jobs) // (4 * workers)))
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init, initargs=init_args) as pool:
        yield from pool.map(work, jobs, chunksize=chunk)


def default_workers(jobs: int) -> int:
    """Worker processes to use: one per core, at most one per job."""
    return max(1, min(os.cpu_count() or 1, jobs))


@dataclass(frozen=True)
class CollectResult:
    """What ``collect`` wrote."""

    out: Path
    files: list[Path]
    episodes: int
    rows: int

    def to_dict(self) -> dict:
        """JSON-ready description."""
        d = asdict(self)
        d["out"] = str(self.out)
        d["files"] = [str(p) for p in self.files]
        return d


def collect_highway(
    out: str | Path,
    *,
    episodes: int,
    seed: int = 0,
    workers: int | None = None,
    config: HighwayConfig | None = None,
    fleet: FleetConfig | None = None,
    episodes_per_file: int = 200,
    overwrite: bool = False,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
) -> CollectResult:
    """Simulate the fleet and write a contract-v1 dataset to ``out``.

    Parameters
    ----------
    out : str or Path
        Destination folder; must be empty unless ``overwrite``.
    episodes : int
        Number of episodes.
    seed : int
        Seed of the whole collection; same seed, same bytes.
    workers : int, optional
        Processes to simulate in (default: one per core).
    config, fleet : HighwayConfig, FleetConfig
        Simulator and fleet settings.
    episodes_per_file : int
        Episodes per Parquet file.
    overwrite : bool
        Replace an existing dataset in ``out``.
    on_episode : callable, optional
        Called after each episode (progress).
    """
    if episodes < 1:
        raise UsageError(f"`episodes` must be at least 1, got {episodes}", "ask for one or more episodes")
    config = config or HighwayConfig()
    fleet = fleet or FleetConfig()
    out = Path(out)
    guard_output(out, overwrite=overwrite, folder=True, option="out")
    out.parent.mkdir(parents=True, exist_ok=True)
    schema = arrow_schema(log_metadata(config, {"collect_seed": seed}), optional=OPTIONAL)
    jobs = [(seed, i, f"hw-s{seed}-e{i:06d}") for i in range(episodes)]
    workers = default_workers(len(jobs)) if workers is None else workers
    # Build the new dataset in a hidden staging folder, then swap it in, so an
    # interrupted run never leaves a partial dataset where the old one was.
    with staging_dir(out, prefix=".collect-") as staging:
        files: list[Path] = []
        writer: LogWriter | None = None
        rows = 0
        for k, rec in enumerate(simulate_many(jobs, _init_worker, (config, fleet), _simulate, workers)):
            if k % episodes_per_file == 0:
                if writer is not None:
                    files.append(writer.close())
                writer = LogWriter(staging / f"part-{k // episodes_per_file:05d}.parquet", schema)
            writer.write(episode_table(rec, schema))
            rows += len(rec)
            if on_episode:
                on_episode(rec)
        files.append(writer.close())
        sim = HighwaySim(config)
        lanes = sim.lane_polylines()
        write_roads(
            road_table(config.map_name, lanes), roads_path(staging, config.map_name), frame=FRAME, source="highway-env"
        )
    return CollectResult(out, [out / f.name for f in files], episodes, rows)
