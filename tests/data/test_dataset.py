"""Opening datasets: discovery, partitions, corrupt pages, and the streaming memory bound."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from roadworthy.data.dataset import scan_logs
from roadworthy.data.errors import LogError
from roadworthy.data.validate import validate_logs
from tests.conftest import make_table, write_table


def test_recursive_discovery_skips_hidden_and_underscore(tmp_path):
    write_table(make_table(prefix="a"), tmp_path / "x" / "a.parquet")
    write_table(make_table(prefix="b"), tmp_path / "y" / "deeper" / "b.parquet")
    write_table(make_table(prefix="c"), tmp_path / ".staging" / "c.parquet")
    write_table(make_table(prefix="d"), tmp_path / "_maps" / "d.parquet")
    (tmp_path / "README.txt").write_text("not data")
    ds = scan_logs(tmp_path)
    assert [p.name for p in ds.files] == ["a.parquet", "b.parquet"]
    assert ds.num_rows == 30


def test_hive_partition_columns_are_read(tmp_path):
    write_table(make_table(prefix="a"), tmp_path / "map=Town01" / "a.parquet")
    write_table(make_table(prefix="b"), tmp_path / "map=Town02" / "b.parquet")
    table = scan_logs(tmp_path).read(["episode_id", "map"])
    got = dict(zip(table.column("episode_id").to_pylist(), table.column("map").to_pylist(), strict=True))
    assert got["a-0"] == "Town01" and got["b-2"] == "Town02"


def test_dictionary_encoded_strings_are_accepted(make_log):
    t = make_table(episodes=3, steps=4)
    t = t.set_column(0, "episode_id", t.column("episode_id").dictionary_encode())
    t = t.set_column(3, "source", t.column("source").dictionary_encode())
    assert validate_logs(make_log(t)).episodes == 3


def test_type_conflict_between_files(tmp_path):
    write_table(make_table(prefix="a"), tmp_path / "a.parquet")
    b = make_table(prefix="b")
    b = b.set_column(1, "step", b.column("step").cast(pa.int32()))
    write_table(b, tmp_path / "b.parquet")
    with pytest.raises(LogError, match=r"column .step.*int32.*int64"):
        scan_logs(tmp_path)


def test_corrupt_data_page_is_reported_with_the_file(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(make_table(episodes=50, steps=40, d=8), path, compression="zstd")
    blob = bytearray(path.read_bytes())
    footer = int.from_bytes(blob[-8:-4], "little") + 8
    rng = np.random.default_rng(0)
    for i in rng.integers(8, len(blob) - footer, size=400):
        blob[i] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(LogError) as info:
        validate_logs(path)
    assert "c.parquet" in str(info.value) and "Hint:" in str(info.value)


def test_streaming_memory_is_bounded_by_the_batch(tmp_path):
    """Reading a dataset 40x larger than a batch never holds more than a few batches."""
    d = 42
    batch_rows = 5_000
    big = make_table(episodes=1_000, steps=200, d=d)  # 200k rows, ~34 MB of obs
    pq.write_table(big, tmp_path / "big.parquet", row_group_size=batch_rows)
    del big
    ds = scan_logs(tmp_path / "big.parquet")
    pool = pa.default_memory_pool()
    base = pool.bytes_allocated()
    peak = 0
    rows = 0
    for _, batch in ds.iter_batches(batch_size=batch_rows):
        rows += batch.num_rows
        peak = max(peak, pool.bytes_allocated() - base)
        del batch
    one_batch = batch_rows * (d * 4 + 64)
    assert rows == 200_000
    assert peak < 8 * one_batch, f"peak {peak / 1e6:.1f} MB for batches of {one_batch / 1e6:.1f} MB"


def test_validation_memory_does_not_grow_with_rows(tmp_path):
    """The validator keeps per-episode state only while an episode is open."""
    from roadworthy.data.validate import LogValidator

    pq.write_table(make_table(episodes=400, steps=50, d=4), tmp_path / "l.parquet", row_group_size=1000)
    ds = scan_logs(tmp_path / "l.parquet")
    v = LogValidator(ds.metadata, ds.columns)
    most_open = 0
    for path, batch in ds.iter_batches(batch_size=1000):
        v.consume(path, batch)
        most_open = max(most_open, len(v._open))
    assert most_open <= 2
    assert v.finish(ds.source, 1).episodes == 400
