"""Per-cell aggregates of a driving log over the road, computed once with DuckDB and cached.

The risk map draws squares of ``cell`` metres in each map's frame. Per cell, map
and behaviour source: rows (data density), episodes, logged collisions, off-road
steps, disengagements and mean speed. DuckDB scans the Parquet files in parallel
with bounded memory, so a 10M-row log aggregates in seconds; the result (a few
thousand rows) is cached as Parquet under a key made of the files' names, sizes
and modification times and the cell size, so a dashboard renders from the cache.

Everything here is a pure function of its arguments (no Streamlit).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from roadworthy.data.dataset import find_log_files, hive_partitions

if TYPE_CHECKING:
    import pyarrow as pa

#: Optional log columns the aggregates use, with the SQL used when a file lacks them.
OPTIONAL = {
    "x": "NULL::DOUBLE",
    "y": "NULL::DOUBLE",
    "yaw": "0.0::DOUBLE",
    "map_name": "'unknown'",
    "scenario": "'unknown'",
    "collision": "FALSE",
    "off_road": "FALSE",
    "disengagement": "FALSE",
    "speed": "NULL::DOUBLE",
}
EVENTS = ("collision", "off_road", "disengagement")


def cache_dir() -> Path:
    """Where aggregates are cached: ``$ROADWORTHY_CACHE`` or ``~/.cache/roadworthy``."""
    env = os.environ.get("ROADWORTHY_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "roadworthy"


def dataset_key(logs: str | Path, *parts: object) -> str:
    """A key that changes when any file of the dataset (or any of ``parts``) changes."""
    _, files = find_log_files(logs)
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(json.dumps([str(p) for p in parts]).encode())
    return h.hexdigest()[:24]


def _relation(logs: str | Path) -> tuple[str, set[str]]:
    """DuckDB's view of a log's files, and the columns it has (hive folders included, as strings)."""
    root, files = find_log_files(logs)
    cols: set[str] = set()
    hive = False
    for f in files:
        cols |= set(pq.read_schema(f).names)
        parts = hive_partitions(f, root)
        cols |= set(parts)
        hive = hive or bool(parts)
    names = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    options = "hive_partitioning = true, hive_types_autocast = false" if hive else "hive_partitioning = false"
    return f"read_parquet([{names}], union_by_name = true, {options})", cols


def _col(name: str, present: set[str]) -> str:
    return f'"{name}"' if name in present else OPTIONAL[name]


def _cell_sql(rel: str, present: set[str], cell: float, *, by_episode: bool) -> str:
    """The per-cell aggregation, per episode too when ``by_episode`` (partials to combine)."""
    ev = ", ".join(f"sum(CAST({_col(e, present)} AS INTEGER)) AS {e}" for e in EVENTS)
    episodes = "CAST(episode_id AS VARCHAR) AS episode_id" if by_episode else "count(DISTINCT episode_id) AS episodes"
    return f"""
        SELECT CAST({_col("map_name", present)} AS VARCHAR) AS map_name,
               CAST(source AS VARCHAR) AS source,
               CAST(floor(x / {float(cell)}) AS BIGINT) AS cell_x,
               CAST(floor(y / {float(cell)}) AS BIGINT) AS cell_y,
               {episodes},
               count(*) AS rows,
               {ev},
               sum(coalesce({_col("speed", present)}, 0.0)) AS speed_sum
        FROM {rel}
        WHERE x IS NOT NULL AND y IS NOT NULL AND isfinite(x) AND isfinite(y)
        GROUP BY ALL
    """


_COMBINE = f"""
    SELECT map_name, source, cell_x, cell_y, count(DISTINCT episode_id) AS episodes, sum(rows) AS rows,
           {", ".join(f"sum({e}) AS {e}" for e in EVENTS)}, sum(speed_sum) AS speed_sum
    FROM partials GROUP BY ALL
"""


def partial_cells(batch: pa.Table, cell: float) -> pd.DataFrame:
    """Per-episode partial aggregates of one batch of rows (a pyarrow Table), for the Ray engine."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("batch", batch)
        res = con.execute(_cell_sql("batch", set(batch.column_names), cell, by_episode=True))
        # DuckDB 2 renamed fetch_arrow_table to to_arrow_table.
        return res.to_arrow_table() if hasattr(res, "to_arrow_table") else res.fetch_arrow_table()
    finally:
        con.close()


def _finish(frame: pd.DataFrame, cell: float) -> pd.DataFrame:
    frame = frame.sort_values(["map_name", "source", "cell_x", "cell_y"], ignore_index=True)
    frame["x"] = (frame["cell_x"] + 0.5) * cell
    frame["y"] = (frame["cell_y"] + 0.5) * cell
    for c in ("rows", "episodes", *EVENTS):
        frame[c] = frame[c].fillna(0).astype(np.int64)
    frame["speed_sum"] = frame["speed_sum"].astype(float)
    return frame[["map_name", "source", "cell_x", "cell_y", "episodes", "rows", *EVENTS, "speed_sum", "x", "y"]]


def compute_cell_aggregates(
    logs: str | Path, cell: float = 10.0, *, threads: int | None = None, engine: str = "local", address=None
) -> pd.DataFrame:
    """Aggregate a log per (map, cell, source), without caching.

    Parameters
    ----------
    logs : str or Path
        A driving log (file or folder).
    cell : float
        Cell size, m.
    threads : int, optional
        DuckDB threads (default: all cores).
    engine : {"local", "ray"}
        ``ray``: per-batch partial aggregates in Ray Data tasks (the same SQL, grouped by
        episode too so that partials combine exactly), combined on the driver.
    address : str, optional
        Ray cluster address (default: a local Ray).

    Returns
    -------
    pandas.DataFrame
        Columns ``map_name, source, cell_x, cell_y, episodes, rows, collision, off_road,
        disengagement`` (counts of rows), ``speed_sum`` (m/s, for means that combine
        across sources), ``x, y`` (cell centre, m). Rows without a pose are left out;
        :func:`pose_coverage` says how many.
    """
    import duckdb

    rel, present = _relation(logs)
    if not {"x", "y"} <= present:
        return _empty()
    con = duckdb.connect()
    try:
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        if engine == "ray":
            partials = _ray_partials(logs, cell, address)
            if partials.num_rows == 0:
                return _empty()
            con.register("partials", partials)
            frame = con.execute(_COMBINE).df()
        else:
            frame = con.execute(_cell_sql(rel, present, cell, by_episode=False)).df()
    finally:
        con.close()
    return _finish(frame, cell)


def _ray_partials(logs, cell: float, address):
    from roadworthy.data.ray_engine import collect, ray_session, read_logs

    cols = ["episode_id", "source", "x", "y", "map_name", "speed", *EVENTS]
    with ray_session(address):
        ds = read_logs(logs, cols).map_batches(
            partial_cells, fn_kwargs={"cell": cell}, batch_format="pyarrow", batch_size=262_144
        )
        return collect(ds)


def _empty() -> pd.DataFrame:
    cols = ["map_name", "source", "cell_x", "cell_y", "rows", "episodes", *EVENTS, "speed_sum", "x", "y"]
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols})


def cell_aggregates(
    logs: str | Path, cell: float = 10.0, *, cache: Path | None = None, engine: str = "local", address=None
) -> pd.DataFrame:
    """:func:`compute_cell_aggregates`, cached as Parquet (computed once per dataset state and cell)."""
    folder = cache or cache_dir()
    target = folder / f"cells-{dataset_key(logs, cell)}.parquet"
    if target.exists():
        return pd.read_parquet(target)
    frame = compute_cell_aggregates(logs, cell, engine=engine, address=address)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, target)
    return frame


def combine(frame: pd.DataFrame, sources: list[str] | None = None, map_name: str | None = None) -> pd.DataFrame:
    """Sum the per-source aggregates over the chosen sources (all when None), for one map."""
    sel = frame
    if map_name is not None:
        sel = sel[sel["map_name"] == map_name]
    if sources:
        sel = sel[sel["source"].isin(sources)]
    if sel.empty:
        return sel.drop(columns=["source"]).assign(mean_speed=pd.Series(dtype="float64"))
    out = (
        sel.groupby(["map_name", "cell_x", "cell_y", "x", "y"], as_index=False)[
            ["rows", "episodes", *EVENTS, "speed_sum"]
        ]
        .sum()
        .sort_values(["cell_x", "cell_y"], ignore_index=True)
    )
    # Episodes summed over sources can count one episode twice (a takeover switches source).
    out["mean_speed"] = out["speed_sum"] / out["rows"]
    return out


def wilson(k: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a rate k / n (95 % by default); (nan, nan) where n = 0."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        den = 1 + z**2 / n
        mid = (p + z**2 / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    return np.clip(mid - half, 0, 1), np.clip(mid + half, 0, 1)


def query(logs: str | Path, sql: str, params: list | None = None, tables: dict | None = None) -> pd.DataFrame:
    """Run ``sql`` over a log with DuckDB and return a DataFrame.

    In ``sql``, ``{rel}`` stands for the log's Parquet files and ``{x}``, ``{speed}``, ...
    (the keys of :data:`OPTIONAL`) for those columns, or for their stand-ins where the
    files lack them. ``tables`` registers further DataFrames or Arrow tables by name.
    """
    import duckdb

    rel, present = _relation(logs)
    cols = {c: _col(c, present) for c in OPTIONAL}
    con = duckdb.connect()
    try:
        for name, table in (tables or {}).items():
            con.register(name, table)
        return con.execute(sql.format(rel=rel, **cols), params or []).df()
    finally:
        con.close()


def rows_in_cell(
    logs: str | Path, map_name: str, cell_x: int, cell_y: int, cell: float, *, limit: int = 5000
) -> pd.DataFrame:
    """The logged rows inside one cell: episode, step, time, source, speed and events."""
    return query(
        logs,
        f"""
        SELECT CAST(episode_id AS VARCHAR) AS episode_id, step, t, CAST(source AS VARCHAR) AS source,
               {{x}} AS x, {{y}} AS y, {{speed}} AS speed,
               {", ".join(f"{{{e}}} AS {e}" for e in EVENTS)}
        FROM {{rel}}
        WHERE CAST({{map_name}} AS VARCHAR) = ? AND floor({{x}} / ?) = ? AND floor({{y}} / ?) = ?
        ORDER BY episode_id, step
        LIMIT {int(limit)}
        """,
        [map_name, float(cell), int(cell_x), float(cell), int(cell_y)],
    )


def pose_coverage(logs: str | Path) -> dict:
    """How many rows carry a pose (only those appear on the risk map)."""
    counts = query(
        logs, "SELECT count(*) AS n, count(*) FILTER (WHERE {x} IS NOT NULL AND {y} IS NOT NULL) AS p FROM {rel}"
    ).iloc[0]
    return {"rows": int(counts["n"]), "rows_with_pose": int(counts["p"])}


def policy_cells(report: dict, policy: str) -> pd.DataFrame:
    """A policy's per-cell figures from an evaluation report (``coverage_by.map_region``).

    Columns ``map_name, cell_x, cell_y, x, y, rows, ood_rate`` and, where the report has
    them, ``cost_<channel>`` (FQE's expected discounted cost-to-go of the policy from the
    logged states of the cell).
    """
    entry = next((p for p in report.get("policies", []) if p["name"] == policy), None)
    if entry is None:
        raise KeyError(policy)
    region = entry["coverage_by"]["map_region"]
    frame = pd.DataFrame(region["cells"])
    if frame.empty:
        return frame
    frame = frame.rename(columns={"map": "map_name"})
    frame["ood_rate"] = 1.0 - frame["coverage"]
    frame.attrs["cell_m"] = region["cell_m"]
    return frame
