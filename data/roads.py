"""Road geometry written beside a driving log, for risk maps and replays.

One row per lane: its centre line and both borders as polylines in the log's map
frame (metres), with the lane type (``driving``, ``sidewalk``, ``shoulder``,
``parking``, ...). A dataset keeps the geometry of each map it drives on in
``<dataset>/_maps/<map_name>.parquet``; the leading underscore keeps the dataset
reader from mistaking it for driving rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from roadworthy.data.writer import AtomicFile

MAPS_DIR = "_maps"

ROAD_SCHEMA = pa.schema(
    [
        pa.field("map_name", pa.string(), nullable=False),
        pa.field("road_id", pa.string(), nullable=False),
        pa.field("lane_id", pa.int32(), nullable=False),
        pa.field("lane_type", pa.string(), nullable=False),
        pa.field("junction_id", pa.int32()),
        pa.field("centre_x", pa.list_(pa.float32())),
        pa.field("centre_y", pa.list_(pa.float32())),
        pa.field("left_x", pa.list_(pa.float32())),
        pa.field("left_y", pa.list_(pa.float32())),
        pa.field("right_x", pa.list_(pa.float32())),
        pa.field("right_y", pa.list_(pa.float32())),
    ]
)


def road_table(map_name: str, lanes: Iterable[Mapping]) -> pa.Table:
    """Table of lanes from dictionaries with ``road_id``, ``lane_id``, ``lane_type``,
    ``centre``, ``left``, ``right`` (each an ``(n, 2)`` array of metres) and
    optionally ``junction_id``."""
    rows: dict[str, list] = {name: [] for name in ROAD_SCHEMA.names}
    for lane in lanes:
        rows["map_name"].append(map_name)
        rows["road_id"].append(str(lane["road_id"]))
        rows["lane_id"].append(int(lane["lane_id"]))
        rows["lane_type"].append(str(lane["lane_type"]))
        rows["junction_id"].append(lane.get("junction_id"))
        for part in ("centre", "left", "right"):
            xy = np.asarray(lane[part], dtype=np.float32).reshape(-1, 2)
            rows[f"{part}_x"].append(xy[:, 0])
            rows[f"{part}_y"].append(xy[:, 1])
    return pa.table(rows, schema=ROAD_SCHEMA)


def write_roads(table: pa.Table, path: str | Path, *, frame: str, source: str = "") -> Path:
    """Write a road table atomically.

    Parameters
    ----------
    table : pyarrow.Table
        From :func:`road_table`.
    path : str or Path
        Destination ``.parquet`` file.
    frame : str
        Handedness and origin of the coordinates, stored in the metadata, e.g.
        ``"left-handed: x along the road, y to the right of travel"``.
    source : str
        Where the geometry came from (a simulator, an OpenDRIVE file).
    """
    meta = {b"roadworthy.roads": json.dumps({"frame": frame, "source": source}).encode()}
    table = table.cast(ROAD_SCHEMA).replace_schema_metadata(meta)
    with AtomicFile(path) as f:
        pq.write_table(table, f.tmp, compression="zstd")
    return Path(path)


def roads_path(dataset_root: str | Path, map_name: str) -> Path:
    """Where a dataset keeps the geometry of ``map_name``."""
    return Path(dataset_root) / MAPS_DIR / f"{map_name}.parquet"


def read_roads(path: str | Path) -> pa.Table:
    """Read a road table written by :func:`write_roads`."""
    return pq.read_table(path, schema=ROAD_SCHEMA)
