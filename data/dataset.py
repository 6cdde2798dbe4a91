"""Opening a driving-log dataset: one Parquet file, or a folder of them.

:func:`scan_logs` reads only file footers: it finds the files (recursively, hive
partitions such as ``date=2026-11-01/`` allowed, names starting with ``.`` or
``_`` skipped), checks every file's columns, types and ``roadworthy.*`` metadata,
and that the files agree with each other. Rows are read later, in batches, by
:meth:`LogDataset.iter_batches`; the row-level checks are in :mod:`roadworthy.data.validate`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from roadworthy.data.errors import LogError
from roadworthy.data.schema import LogMetadata, check_column_types, list_width

PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
DEFAULT_BATCH_ROWS = 65_536


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def find_log_files(source: str | Path) -> tuple[Path, list[Path]]:
    """Root folder and the sorted Parquet files of a dataset.

    Raises
    ------
    LogError
        When ``source`` does not exist or holds no Parquet file.
    """
    src = Path(source)
    if not src.exists():
        raise LogError(src, "no such file or folder", "check the path of the driving log")
    if src.is_file():
        return src.parent, [src]
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix in PARQUET_SUFFIXES and not _hidden(p, src))
    if not files:
        raise LogError(
            src,
            "the folder holds no Parquet files (looked recursively for *.parquet, skipping "
            "names that start with '.' or '_')",
            "point to a .parquet file or a folder of them, e.g. a folder written by `roadworthy collect highway`",
        )
    return src, files


_DONE = object()


def _prefetch(source: Iterator, depth: int = 1) -> Iterator:
    """Run ``source`` in a background thread, ``depth`` items ahead of the consumer.

    Arrow decodes without the GIL, so reading the next batch overlaps with the
    consumer's work on this one; the bounded queue keeps memory at a few batches.
    Exceptions in the reader are re-raised in the consumer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    worker = threading.Thread(target=run, name="roadworthy-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)


def hive_partitions(path: Path, root: Path) -> dict[str, str]:
    """``key=value`` folder names between ``root`` and ``path``, values as strings."""
    out = {}
    for part in path.parent.relative_to(root).parts:
        key, sep, value = part.partition("=")
        if sep and key:
            out[key] = unquote(value)
    return out


def _unreadable(path: Path, problem: str, exc: Exception) -> LogError:
    return LogError(path, f"{problem} ({exc})", "re-export or re-copy the file, or move it out of the dataset folder")


def _open_footer(path: Path) -> pq.FileMetaData:
    try:
        return pq.read_metadata(path)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(path, "not a readable Parquet file, perhaps truncated or corrupt", exc) from None


def _check_list_width(schema: pa.Schema, meta: LogMetadata, path: Path) -> None:
    for column, names, key in (("obs", meta.obs_names, "obs_names"), ("action", meta.action_names, "action_names")):
        width = list_width(schema.field(column).type)
        if width is not None and width != len(names):
            raise LogError(
                path,
                f"'{column}' is a fixed-size list of {width} values but the metadata "
                f"roadworthy.{key} lists {len(names)} names",
                f"make roadworthy.{key} name every one of the {width} entries, in order",
                column=column,
            )


@dataclass(frozen=True)
class LogDataset:
    """A driving-log dataset whose files passed the footer-level checks.

    Attributes
    ----------
    source : Path
        What the user named.
    root : Path
        Folder that hive partitions are relative to.
    files : tuple of Path
        The Parquet files, sorted.
    metadata : LogMetadata
        The schema metadata, equal in every file.
    schema : pyarrow.Schema
        Union of the files' columns plus partition columns.
    num_rows : int
        Rows in all files.
    """

    source: Path
    root: Path
    files: tuple[Path, ...]
    metadata: LogMetadata
    schema: pa.Schema
    num_rows: int

    @property
    def columns(self) -> list[str]:
        """Column names, partition columns included."""
        return self.schema.names

    def iter_batches(
        self,
        columns: Sequence[str] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_ROWS,
    ) -> Iterator[tuple[Path, pa.RecordBatch]]:
        """Stream ``(file, record batch)`` pairs, file by file, in file order.

        Memory is bounded by about one Parquet row group and ``batch_size`` rows.

        Raises
        ------
        LogError
            When a file turns out to be corrupt part-way.
        """
        want = list(columns) if columns is not None else list(self.schema.names)
        unknown = [c for c in want if c not in self.schema.names]
        if unknown:
            raise LogError(
                self.source,
                f"column(s) {unknown} not in the dataset",
                f"the dataset has {', '.join(self.schema.names)}",
                column=unknown[0],
            )
        out_schema = pa.schema([self.schema.field(c) for c in want], metadata=self.schema.metadata)
        yield from _prefetch(self._batches(want, out_schema, batch_size))

    def _batches(
        self, want: list[str], out_schema: pa.Schema, batch_size: int
    ) -> Iterator[tuple[Path, pa.RecordBatch]]:
        for path in self.files:
            parts = hive_partitions(path, self.root)
            try:
                # pre_buffer=False and ParquetFile's row-group-at-a-time reader keep
                # memory at about one row group even when the consumer is slow; the
                # dataset scanner reads ahead without bound in that case.
                pf = pq.ParquetFile(path, pre_buffer=False)
                present = set(pf.schema_arrow.names)
                read = [c for c in want if c in present]
                for batch in pf.iter_batches(batch_size=batch_size, columns=read, use_threads=True):
                    n = batch.num_rows
                    if not n:
                        continue
                    arrays = []
                    for name in want:
                        field = out_schema.field(name)
                        if name in present:
                            arrays.append(batch.column(name))
                        elif name in parts:
                            arrays.append(pa.array([parts[name]] * n, field.type))
                        else:
                            arrays.append(pa.nulls(n, field.type))
                    yield path, pa.RecordBatch.from_arrays(arrays, schema=out_schema)
            except (pa.ArrowException, OSError) as exc:
                raise _unreadable(path, "the file is corrupt and could not be read to the end", exc) from None

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """Read the whole dataset (or some columns) into memory."""
        names = list(columns) if columns is not None else self.schema.names
        schema = pa.schema([self.schema.field(c) for c in names], metadata=self.schema.metadata)
        return pa.Table.from_batches([b for _, b in self.iter_batches(names)], schema=schema)


def scan_logs(source: str | Path) -> LogDataset:
    """Open a driving-log dataset, checking every file's footer.

    Parameters
    ----------
    source : str or Path
        A ``.parquet`` file or a folder of them.

    Returns
    -------
    LogDataset

    Raises
    ------
    LogError
        With the file, column and fix, for any problem visible without reading rows.
    """
    root, files = find_log_files(source)
    first_meta: LogMetadata | None = None
    first_file: Path | None = None
    fields: dict[str, pa.Field] = {}
    owner: dict[str, Path] = {}
    num_rows = 0
    for path in files:
        footer = _open_footer(path)
        schema = footer.schema.to_arrow_schema()
        check_column_types(schema, path)
        meta = LogMetadata.from_arrow(schema.metadata, path)
        _check_list_width(schema, meta, path)
        if first_meta is None:
            first_meta, first_file = meta, path
        else:
            key = first_meta.describe_difference(meta)
            if key is not None:
                raise LogError(
                    path,
                    f"schema metadata roadworthy.{key} differs from the one in {first_file} "
                    f"({getattr(meta, key)!r} against {getattr(first_meta, key)!r})",
                    "files of one dataset must describe the same features and actions; "
                    "keep logs with different layouts in separate folders",
                )
        for f in schema:
            if f.name in fields and not fields[f.name].type.equals(f.type):
                raise LogError(
                    path,
                    f"has Arrow type {f.type} here but {fields[f.name].type} in {owner[f.name]}",
                    "write every file of a dataset with the same column types",
                    column=f.name,
                )
            if f.name not in fields:
                fields[f.name] = f
                owner[f.name] = path
        num_rows += footer.num_rows
    if num_rows == 0:
        raise LogError(
            source,
            "the dataset is empty (0 rows)",
            "collect or export some driving before validating or evaluating",
        )
    part_fields = []
    for path in files:
        for key in hive_partitions(path, root):
            if key not in fields and key not in [f.name for f in part_fields]:
                part_fields.append(pa.field(key, pa.string()))
    schema = pa.schema(list(fields.values()) + part_fields, metadata=first_meta.to_arrow())
    return LogDataset(Path(source), root, tuple(files), first_meta, schema, num_rows)
