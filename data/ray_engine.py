"""The Ray engine's plumbing: sessions, sizing, reading logs and writing outputs with Ray Data.

Commands that take ``engine="ray"`` run their per-batch work (the same functions
the local engine calls) in Ray Data ``map_batches`` on actors that hold the loaded
models, and their reductions as Ray aggregations. Ray stays an optional extra
(``pip install 'roadworthy[distributed]'``): nothing here imports it at module
level.

Sizing: actor pools get at most (cluster CPUs - 1) actors of one CPU each, so
that read tasks always find a free CPU. On a 2-core machine that is one actor;
with actors holding both CPUs, ``map_batches`` waits forever for a read task that
cannot be scheduled.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from roadworthy.data.dataset import find_log_files
from roadworthy.data.errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

ENGINES = ("local", "ray")
#: Worker environment: few malloc arenas, so that long-lived workers that see many
#: batches on many threads return memory instead of keeping one arena per thread.
WORKER_ENV = {"MALLOC_ARENA_MAX": "2"}
#: Object-store memory the streaming executor may fill with blocks in flight.
IN_FLIGHT_BYTES = 512 * 2**20


def check_engine(engine: str, address: str | None = None) -> None:
    """Raise :class:`UsageError` for an unknown engine or a missing Ray install."""
    if engine not in ENGINES:
        raise UsageError(f"`engine` must be local or ray, got '{engine}'", "use `engine` local (the default) or ray")
    if engine == "local" and address:
        raise UsageError("`address` only applies to `engine` ray", "set `engine` to ray or drop `address`")
    if engine == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UsageError("`engine` ray needs Ray", "pip install 'roadworthy[distributed]'")


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Connect to a cluster (``address``), or start a local one; shut down only what was started here."""
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
        "runtime_env": {"env_vars": WORKER_ENV},
    }
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise UsageError(
            f"cannot connect to the Ray cluster at {address} ({exc})",
            "start it with `ray start` (head node) and give its `address`, e.g. ray://HOST:10001 or HOST:6379",
        ) from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    # Bound the data in flight, so that no worker buffers a growing share of a large log.
    ctx.execution_options.resource_limits = ctx.execution_options.resource_limits.copy(
        object_store_memory=IN_FLIGHT_BYTES
    )
    try:
        yield
    finally:
        ray.shutdown()


def actor_count() -> int:
    """Actors for a pool: all CPUs but one (at least one), so that read tasks can always run."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, cpus - 1)


def read_logs(logs: str | Path, columns: Sequence[str] | None = None) -> ray.data.Dataset:
    """A Ray Dataset over a log's Parquet files (the same files the local reader takes)."""
    import pyarrow.fs as pafs
    import ray
    from ray.data.datasource import Partitioning

    from roadworthy.data.dataset import hive_partitions, scan_logs

    ds = scan_logs(logs)  # footer checks and metadata first: clear errors before any task runs
    root, files = find_log_files(logs)
    cols = None if columns is None else [c for c in columns if c in ds.columns]
    # Hive folders (map_name=Town01/) become string columns, as in the local reader.
    hive = any(hive_partitions(f, root) for f in files)
    # The files are local paths (find_log_files walks a folder): say so, rather than let Ray
    # guess a filesystem (its guess imports fsspec's HTTP support, which may be half-installed).
    fs = pafs.LocalFileSystem()
    partitioning = Partitioning("hive", base_dir=str(root), filesystem=fs) if hive else None
    out = ray.data.read_parquet([str(f) for f in files], partitioning=partitioning, filesystem=fs)
    return out if cols is None else out.select_columns(cols)


def collect(dataset: ray.data.Dataset) -> pa.Table:
    """A (small) Ray Dataset's rows on the driver as one pyarrow Table (empty: a table without columns)."""
    import pyarrow as pa

    tables = [
        pa.Table.from_batches([b]) if isinstance(b, pa.RecordBatch) else b
        for b in dataset.iter_batches(batch_format="pyarrow", batch_size=None)
    ]
    return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


def write_folder(dataset, out: str | Path) -> Path:
    """Write a Ray Dataset as a folder of Parquet files, atomically (temporary folder, then rename)."""
    import shutil

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is a file", "with `engine` ray the output is a folder of Parquet files")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    # Files of at most 1M rows: a write task then buffers one file, not its whole input.
    dataset.write_parquet(str(tmp), max_rows_per_file=1_000_000)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
