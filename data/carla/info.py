"""``roadworthy carla info``: what a recorder file holds, streamed.

:func:`summarize_recording` gives a JSON-ready summary (header, detected profile,
frames, duration, actors by type, heroes, collisions, packet counts) in one pass
with bounded memory. :func:`carla_info_text` renders the same events the way
CARLA's ``client.show_recorder_file_info`` does (creations, destructions,
parenting and collisions per frame, then frames and duration).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import numpy as np

from data.carla import format as fmt
from data.carla.recorder import RecorderReader


def _g(v: float) -> str:
    """C++ stream formatting of a float (6 significant digits)."""
    return f"{v:g}"


def summarize_recording(path: str | Path, *, profile: str | None = None, events: bool = False) -> dict:
    """One-pass summary of a recording.

    Parameters
    ----------
    path : str or Path
    profile : str, optional
        Force a packet profile (default: detect).
    events : bool
        Also return the CARLA-style event text under ``"text"``.

    Raises
    ------
    RecorderError
    """
    reader = RecorderReader(path, profile=profile)
    n_frames = 0
    last_elapsed = 0.0
    durations: list[np.ndarray] = []
    types: Counter = Counter()
    created = destroyed = 0
    heroes, vehicles, collisions = [], [], []
    lines: list[str] = []
    frame_meta: dict[int, tuple[int, float]] = {}
    for chunk in reader.chunks():
        fr = chunk.frames
        n_frames += fr.num_rows
        if fr.num_rows:
            last_elapsed = float(fr.column("elapsed")[-1].as_py())
            durations.append(fr.column("duration").to_numpy())
            if events:
                frame_meta.update(
                    zip(
                        fr.column("frame").to_pylist(),
                        zip(fr.column("frame_id").to_pylist(), fr.column("elapsed").to_pylist(), strict=True),
                        strict=True,
                    )
                )
        adds = chunk.tables.get(fmt.EVENT_ADD)
        per_frame: dict[int, list[str]] = {}
        if adds is not None and adds.num_rows:
            for r in adds.to_pylist():
                created += 1
                types[r["type"]] += 1
                if r["type"] == "vehicle":
                    vehicles.append({"id": r["id"], "blueprint": r["blueprint"], "role_name": r["role_name"]})
                    if r["role_name"] == "hero":
                        heroes.append({"id": r["id"], "blueprint": r["blueprint"], "frame": r["frame"]})
                if events:
                    code = {v: k for k, v in fmt.ACTOR_TYPES.items()}.get(r["type"], 0)
                    text = [
                        f" Create {r['id']}: {r['blueprint']} ({code}) at "
                        f"({_g(r['x'] * 100)}, {_g(r['y'] * 100)}, {_g(r['z'] * 100)})"
                    ]
                    text += [f"  {k} = {v}" for k, v in r["attributes"]]
                    per_frame.setdefault(r["frame"], []).extend(text)
        dels = chunk.tables.get(fmt.EVENT_DEL)
        if dels is not None and dels.num_rows:
            destroyed += dels.num_rows
            if events:
                for r in dels.to_pylist():
                    per_frame.setdefault(r["frame"], []).append(f" Destroy {r['id']}")
        if events:
            par = chunk.tables.get(fmt.EVENT_PARENT)
            for r in par.to_pylist() if par is not None else []:
                per_frame.setdefault(r["frame"], []).append(f" Parenting {r['id']} with {r['parent']} (parent)")
        coll = chunk.tables.get(fmt.COLLISION)
        if coll is not None and coll.num_rows:
            for r in coll.to_pylist():
                collisions.append(
                    {
                        "frame": r["frame"],
                        "collision_id": r["collision_id"],
                        "id1": r["id1"],
                        "id2": r["id2"],
                        "hero1": r["hero1"],
                        "hero2": r["hero2"],
                    }
                )
                if events:
                    h1 = " (hero) " if r["hero1"] else ""
                    h2 = " (hero) " if r["hero2"] else ""
                    per_frame.setdefault(r["frame"], []).append(
                        f" Collision id {r['collision_id']} between {r['id1']}{h1} with {r['id2']}{h2}"
                    )
        for frame in sorted(per_frame):
            fid, el = frame_meta.get(frame, (frame + 1, 0.0))
            lines.append(f"Frame {fid} at {_g(el)} seconds")
            lines.extend(per_frame[frame])
    all_dur = np.concatenate(durations) if durations else np.zeros(0)
    positive = all_dur[all_dur > 0]
    header = reader.header
    out = {
        "file": str(reader.path),
        "bytes": reader.file_size,
        "version": header.version,
        "map": header.map_name,
        "date_utc": dt.datetime.fromtimestamp(header.date, tz=dt.UTC).isoformat(),
        "profile": reader.profile.name,
        "releases": reader.profile.releases,
        "frames": n_frames,
        "duration_s": last_elapsed,
        "frame_duration_s": {
            "min": float(positive.min()) if positive.size else None,
            "median": float(np.median(positive)) if positive.size else None,
            "max": float(positive.max()) if positive.size else None,
        },
        "actors_created": created,
        "actors_destroyed": destroyed,
        "actors_by_type": dict(sorted(types.items())),
        "heroes": heroes,
        "vehicles": vehicles,
        "collisions": collisions,
        "packets": {str(k): v for k, v in sorted(reader.stats.by_id.items(), key=lambda kv: str(kv[0]))},
        "unknown_packets": {str(k): v for k, v in reader.stats.unknown.items()},
    }
    if events:
        date = dt.datetime.fromtimestamp(header.date, tz=dt.UTC).strftime("%x %X")
        head = [f"Version: {header.version}", f"Map: {header.map_name}", f"Date: {date}", ""]
        tail = [f"Frames: {n_frames}", f"Duration: {_g(last_elapsed)} seconds"]
        out["text"] = "\n".join(head + lines + tail) + "\n"
    return out
