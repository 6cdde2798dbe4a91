"""The writer: schema metadata, partitions, and atomicity under errors and kills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest

from roadworthy.data.dataset import scan_logs
from roadworthy.data.errors import LogError
from roadworthy.data.schema import LogMetadata, arrow_schema
from roadworthy.data.validate import validate_logs
from roadworthy.data.writer import LogWriter, write_log
from tests.conftest import make_table

META = LogMetadata(("f0", "f1", "f2"), ("u0", "u1"), (-1.0, -1.0), (1.0, 1.0), 0.1)


def schema(**kw):
    return arrow_schema(META, optional=("collision",), **kw)


def test_round_trip_with_metadata(tmp_path):
    t = make_table()
    path = write_log(t, tmp_path / "log.parquet", schema=schema())[0]
    ds = scan_logs(path)
    assert ds.metadata == META
    assert ds.schema.field("step").type == pa.int32()
    assert validate_logs(path).rows == t.num_rows


def test_partitioned_write_reads_back(tmp_path):
    t = make_table(episodes=4, steps=3)
    t = t.append_column("map_name", pa.array(["Town01"] * 6 + ["Town02"] * 6))
    sch = arrow_schema(META, optional=("collision", "map_name"))
    files = write_log(t, tmp_path / "ds", schema=sch, partition_by=["map_name"])
    assert sorted(p.parent.name for p in files) == ["map_name=Town01", "map_name=Town02"]
    s = validate_logs(tmp_path / "ds")
    assert s.maps == {"Town01": 6, "Town02": 6}


def test_stream_of_batches(tmp_path):
    t = make_table(episodes=10, steps=10)
    path = write_log(iter(t.to_batches(max_chunksize=7)), tmp_path / "s.parquet", schema=schema())[0]
    assert validate_logs(path).episodes == 10


def test_exception_mid_write_leaves_nothing(tmp_path):
    t = make_table(episodes=10, steps=10)

    def batches():
        yield from t.slice(0, 50).to_batches()
        raise RuntimeError("sensor died")

    with pytest.raises(RuntimeError):
        write_log(batches(), tmp_path / "x.parquet", schema=schema())
    assert list(tmp_path.iterdir()) == []


def test_overwrite_keeps_old_file_until_commit(tmp_path):
    dest = tmp_path / "x.parquet"
    write_log(make_table(episodes=2), dest, schema=schema())
    w = LogWriter(dest, schema())
    w.write(make_table(episodes=5))
    assert validate_logs(dest).episodes == 2  # old content still in place
    w.close()
    assert validate_logs(dest).episodes == 5


def test_killed_writer_leaves_no_partial_file(tmp_path):
    """A process killed mid-write leaves no file at the destination, and the
    hidden temporary file is ignored by readers."""
    dest = tmp_path / "ds" / "part-0.parquet"
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from tests.conftest import make_table
        from tests.data.test_writer import schema
        from roadworthy.data.writer import LogWriter
        w = LogWriter({str(dest)!r}, schema())
        t = make_table(episodes=200, steps=20)
        for b in t.to_batches(max_chunksize=100):
            w.write(b)
            print("wrote", flush=True)
            time.sleep(0.05)
        w.close()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "wrote"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(0.1)
    assert not dest.exists()
    leftovers = list(dest.parent.iterdir())
    assert leftovers and all(p.name.startswith(".") for p in leftovers)
    with pytest.raises(LogError, match="no Parquet files"):
        scan_logs(dest.parent)


def test_bad_partition_value_is_refused(tmp_path):
    t = make_table(episodes=1).append_column("map_name", pa.array([".."] * 5))
    sch = arrow_schema(META, optional=("collision", "map_name"))
    with pytest.raises(ValueError, match="folder name"):
        write_log(t, tmp_path / "ds", schema=sch, partition_by=["map_name"])
    assert not any(p.suffix == ".parquet" for p in tmp_path.rglob("*"))
