"""Writing driving logs atomically, with the contract's schema metadata.

A file is written under a hidden temporary name in its destination folder, flushed
to disk and renamed into place, so a reader never sees a half-written file and an
interrupted write leaves nothing at the destination. Hidden (``.``) and ``_``
names are skipped by the dataset reader, so a crash cannot leave debris that gets
read as data either.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DEFAULT_ROW_GROUP = 65_536


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicFile:
    """A temporary file in ``path``'s folder that becomes ``path`` on :meth:`commit`.

    Use as a context manager: leaving the block normally commits, an exception
    removes the temporary file and leaves ``path`` as it was.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        self.done = False

    def commit(self) -> Path:
        """Flush the temporary file to disk and rename it to the destination."""
        with open(self.tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)
        _fsync_dir(self.path.parent)
        self.done = True
        return self.path

    def abort(self) -> None:
        """Remove the temporary file; the destination is untouched."""
        self.tmp.unlink(missing_ok=True)
        self.done = True

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def guard_output(
    out: str | Path | None,
    *,
    inputs: Sequence[str | Path | None] = (),
    overwrite: bool = False,
    folder: bool = False,
    option: str = "out",
) -> None:
    """Refuse an output that would lose data, before any work starts.

    Refused: a symbolic link (never followed); the same path as an input, a path inside
    an input folder, or a folder that holds an input (replacing it would delete the
    input); an existing output unless ``overwrite``; a folder where a file is written
    (or a file where a folder is). ``out`` of None or ``-`` (stdout) passes.

    Raises
    ------
    UsageError
        Naming the option, the path and the fix.
    """
    from roadworthy.data.errors import UsageError

    if out is None or str(out) == "-":
        return
    path = Path(out)
    if path.is_symlink():
        raise UsageError(
            f"`{option}` {path} is a symbolic link; roadworthy does not write through links",
            "give the real path, or remove the link",
        )
    target = path.resolve()
    for given in inputs:
        if given is None or str(given) == "-" or (":" in str(given) and not Path(given).exists()):
            continue
        src = Path(given).resolve()
        if target == src:
            raise UsageError(f"`{option}` {path} is also an input", "write to another path; inputs are never replaced")
        if src in target.parents:
            raise UsageError(f"`{option}` {path} lies inside the input {given}", "write outside the input folder")
        if target in src.parents:
            raise UsageError(
                f"`{option}` {path} holds the input {given}; replacing it would delete the input",
                "write to a path that holds no input",
            )
    if path.exists():
        if folder and not path.is_dir():
            raise UsageError(f"`{option}` {path} is a file, not a folder", "give a folder path")
        if not folder and path.is_dir():
            raise UsageError(f"`{option}` {path} is a folder; a file is written there", "give a file path")
        if folder and any(path.iterdir()) and not overwrite:
            raise UsageError(
                f"`{option}` {path} already exists and is not empty",
                "set `overwrite` to replace it, or choose a new folder",
            )
        if not folder and not overwrite:
            raise UsageError(f"`{option}` {path} already exists", "set `overwrite` to replace it, or choose a new path")


def replace_dir(new: Path, dest: Path) -> None:
    """Move folder ``new`` to ``dest``, replacing what is there with two renames."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old / dest.name)
    os.replace(new, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staging_dir(dest: str | Path, prefix: str | None = None) -> Iterator[Path]:
    """A hidden folder beside ``dest`` to build an output in; swapped in on success.

    The folder is created next to ``dest`` (same file system, so the swap is a rename),
    readable like a normal folder, and removed with everything in it when the block
    raises or is interrupted: a partial output never appears where the old one was.

    Examples
    --------
    >>> with staging_dir(out) as tmp:            # doctest: +SKIP
    ...     write_everything_into(tmp)
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix or f".{dest.name}.", dir=dest.parent))
    staging.chmod(0o755)
    try:
        yield staging
        replace_dir(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


class AtomicStream:
    """Base of writers that stream into one :class:`AtomicFile`.

    ``close`` finishes the stream and moves the file into place, ``abort`` drops it, and
    a ``with`` block does the one or the other depending on how it ends.
    """

    _file: AtomicFile

    def _close_stream(self) -> None:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def close(self) -> Path:
        """Finish the file and move it into place."""
        self._close_stream()
        return self._file.commit()

    def abort(self) -> None:
        """Drop everything written; the destination is untouched."""
        try:
            self._close_stream()
        finally:
            self._file.abort()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class LogWriter(AtomicStream):
    """Stream record batches into one Parquet driving-log file, atomically.

    Parameters
    ----------
    path : str or Path
        Destination file.
    schema : pyarrow.Schema
        Schema with the ``roadworthy.*`` metadata (see :func:`roadworthy.data.schema.arrow_schema`).
    row_group_size : int
        Rows per Parquet row group; readers hold about one row group in memory.
    compression : str
        Parquet codec.

    Examples
    --------
    >>> with LogWriter(path, schema) as w:          # doctest: +SKIP
    ...     for table in tables:
    ...         w.write(table)
    """

    def __init__(
        self,
        path: str | Path,
        schema: pa.Schema,
        *,
        row_group_size: int = DEFAULT_ROW_GROUP,
        compression: str = "zstd",
    ) -> None:
        self.schema = schema
        self.row_group_size = row_group_size
        self._file = AtomicFile(path)
        self._writer = pq.ParquetWriter(self._file.tmp, schema, compression=compression)
        self.rows = 0

    @property
    def path(self) -> Path:
        """Destination of the file."""
        return self._file.path

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        """Append rows; columns are cast to the writer's schema."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        table = table.select(self.schema.names).cast(self.schema)
        self._writer.write_table(table, row_group_size=self.row_group_size)
        self.rows += table.num_rows

    def _close_stream(self) -> None:
        self._writer.close()


def _partition_dir(root: Path, keys: Sequence[str], values: Sequence) -> Path:
    out = root
    for k, v in zip(keys, values, strict=True):
        text = str(v)
        if "/" in text or text in {"", ".", ".."} or text.startswith((".", "_")):
            raise ValueError(f"partition value {text!r} of column '{k}' cannot be a folder name")
        out = out / f"{k}={text}"
    return out


def write_log(
    data: pa.Table | Iterable[pa.Table | pa.RecordBatch],
    path: str | Path,
    *,
    schema: pa.Schema,
    partition_by: Sequence[str] = (),
    file_name: str = "part-0.parquet",
    row_group_size: int = DEFAULT_ROW_GROUP,
) -> list[Path]:
    """Write a driving log, atomically per file.

    Parameters
    ----------
    data : pyarrow.Table or iterable of tables/record batches
        The rows; a stream is written as it comes, holding one batch at a time.
    path : str or Path
        Destination: a ``.parquet`` file, or a folder when ``partition_by`` is given.
    schema : pyarrow.Schema
        The log schema with its metadata (:func:`roadworthy.data.schema.arrow_schema`).
    partition_by : sequence of str
        Columns to partition by, hive style (``path/map_name=Town01/part-0.parquet``).
        A partition column is stored in the folder name, not in the file.
    file_name : str
        File name inside each partition folder.
    row_group_size : int
        Rows per Parquet row group.

    Returns
    -------
    list of Path
        The files written.
    """
    batches = [data] if isinstance(data, pa.Table | pa.RecordBatch) else data
    path = Path(path)
    if not partition_by:
        with LogWriter(path, schema, row_group_size=row_group_size) as w:
            for b in batches:
                w.write(b)
        return [w.path]

    missing = [c for c in partition_by if c not in schema.names]
    if missing:
        raise ValueError(f"partition column(s) {missing} not in the schema")
    file_schema = pa.schema([f for f in schema if f.name not in partition_by], metadata=schema.metadata)
    writers: dict[tuple, LogWriter] = {}
    try:
        for b in batches:
            table = b if isinstance(b, pa.Table) else pa.Table.from_batches([b])
            keys = table.select(list(partition_by)).group_by(list(partition_by)).aggregate([])
            for row in keys.to_pylist():
                values = tuple(row[c] for c in partition_by)
                mask = None
                for c, v in zip(partition_by, values, strict=True):
                    m = pc.equal(table[c], v)
                    mask = m if mask is None else pc.and_(mask, m)
                part = table.filter(mask).drop_columns(list(partition_by))
                if values not in writers:
                    target = _partition_dir(path, partition_by, values) / file_name
                    writers[values] = LogWriter(target, file_schema, row_group_size=row_group_size)
                writers[values].write(part)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    return [w.close() for w in writers.values()]
