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

from roadworthy.data.carla import format as fmt
from roadworthy.data.carla.recorder import RecorderReader


def _g(v: float) -> str:
    """C++ stream formatting of a float (6 significant digits)."""
    return f"{v:g}"


class _Summary:
    """Counts and events gathered chunk by chunk (bounded memory but for the event lists)."""

    def __init__(self, events: bool) -> None:
        self.events = events
        self.n_frames = 0
        self.last_elapsed = 0.0
        self.durations: list[np.ndarray] = []
        self.types: Counter = Counter()
        self.created = self.destroyed = 0
        self.heroes: list[dict] = []
        self.vehicles: list[dict] = []
        self.collisions: list[dict] = []
        self.lines: list[str] = []
        self.frame_meta: dict[int, tuple[int, float]] = {}
        self.type_codes = {v: k for k, v in fmt.ACTOR_TYPES.items()}

    def add(self, chunk) -> None:
        self._frames(chunk.frames)
        per_frame: dict[int, list[str]] = {}
        self._created(chunk.tables.get(fmt.EVENT_ADD), per_frame)
        self._destroyed(chunk.tables.get(fmt.EVENT_DEL), per_frame)
        par = chunk.tables.get(fmt.EVENT_PARENT)
        if self.events and par is not None:
            for r in par.to_pylist():
                per_frame.setdefault(r["frame"], []).append(f" Parenting {r['id']} with {r['parent']} (parent)")
        self._collided(chunk.tables.get(fmt.COLLISION), per_frame)
        for frame in sorted(per_frame):
            fid, el = self.frame_meta.get(frame, (frame + 1, 0.0))
            self.lines.append(f"Frame {fid} at {_g(el)} seconds")
            self.lines.extend(per_frame[frame])

    def _frames(self, fr) -> None:
        self.n_frames += fr.num_rows
        if not fr.num_rows:
            return
        self.last_elapsed = float(fr.column("elapsed")[-1].as_py())
        self.durations.append(fr.column("duration").to_numpy())
        if self.events:
            ids = zip(fr.column("frame_id").to_pylist(), fr.column("elapsed").to_pylist(), strict=True)
            self.frame_meta.update(zip(fr.column("frame").to_pylist(), ids, strict=True))

    def _created(self, adds, per_frame: dict[int, list[str]]) -> None:
        for r in adds.to_pylist() if adds is not None else []:
            self.created += 1
            self.types[r["type"]] += 1
            if r["type"] == "vehicle":
                self.vehicles.append({"id": r["id"], "blueprint": r["blueprint"], "role_name": r["role_name"]})
                if r["role_name"] == "hero":
                    self.heroes.append({"id": r["id"], "blueprint": r["blueprint"], "frame": r["frame"]})
            if self.events:
                code = self.type_codes.get(r["type"], 0)
                text = [
                    f" Create {r['id']}: {r['blueprint']} ({code}) at "
                    f"({_g(r['x'] * 100)}, {_g(r['y'] * 100)}, {_g(r['z'] * 100)})"
                ]
                text += [f"  {k} = {v}" for k, v in r["attributes"]]
                per_frame.setdefault(r["frame"], []).extend(text)

    def _destroyed(self, dels, per_frame: dict[int, list[str]]) -> None:
        if dels is None or not dels.num_rows:
            return
        self.destroyed += dels.num_rows
        if self.events:
            for r in dels.to_pylist():
                per_frame.setdefault(r["frame"], []).append(f" Destroy {r['id']}")

    def _collided(self, coll, per_frame: dict[int, list[str]]) -> None:
        keys = ("frame", "collision_id", "id1", "id2", "hero1", "hero2")
        for r in coll.to_pylist() if coll is not None else []:
            self.collisions.append({k: r[k] for k in keys})
            if self.events:
                h1 = " (hero) " if r["hero1"] else ""
                h2 = " (hero) " if r["hero2"] else ""
                per_frame.setdefault(r["frame"], []).append(
                    f" Collision id {r['collision_id']} between {r['id1']}{h1} with {r['id2']}{h2}"
                )

    def frame_durations(self) -> dict:
        all_dur = np.concatenate(self.durations) if self.durations else np.zeros(0)
        positive = all_dur[all_dur > 0]
        if not positive.size:
            return {"min": None, "median": None, "max": None}
        return {"min": float(positive.min()), "median": float(np.median(positive)), "max": float(positive.max())}


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
    acc = _Summary(events)
    for chunk in reader.chunks():
        acc.add(chunk)
    header = reader.header
    out = {
        "file": str(reader.path),
        "bytes": reader.file_size,
        "version": header.version,
        "map": header.map_name,
        "date_utc": dt.datetime.fromtimestamp(header.date, tz=dt.UTC).isoformat(),
        "profile": reader.profile.name,
        "releases": reader.profile.releases,
        "frames": acc.n_frames,
        "duration_s": acc.last_elapsed,
        "frame_duration_s": acc.frame_durations(),
        "actors_created": acc.created,
        "actors_destroyed": acc.destroyed,
        "actors_by_type": dict(sorted(acc.types.items())),
        "heroes": acc.heroes,
        "vehicles": acc.vehicles,
        "collisions": acc.collisions,
        "packets": {str(k): v for k, v in sorted(reader.stats.by_id.items(), key=lambda kv: str(kv[0]))},
        "unknown_packets": {str(k): v for k, v in reader.stats.unknown.items()},
    }
    if events:
        date = dt.datetime.fromtimestamp(header.date, tz=dt.UTC).strftime("%x %X")
        head = [f"Version: {header.version}", f"Map: {header.map_name}", f"Date: {date}", ""]
        tail = [f"Frames: {acc.n_frames}", f"Duration: {_g(acc.last_elapsed)} seconds"]
        out["text"] = "\n".join(head + acc.lines + tail) + "\n"
    return out
