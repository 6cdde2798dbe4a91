"""Every bad input of the log contract gets a clear error; valid logs in any order pass."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roadworthy.data.errors import LogError
from roadworthy.data.validate import validate_logs
from tests.conftest import log_metadata, make_table, write_table


def _set(table: pa.Table, name: str, values) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, values)


def _with_list(table: pa.Table, name: str, rows: np.ndarray) -> pa.Table:
    width = rows.shape[1]
    arr = pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1).astype(np.float32)), width)
    return _set(table, name, arr)


def _obs(table: pa.Table) -> np.ndarray:
    return table.column("obs").combine_chunks().flatten().to_numpy().reshape(table.num_rows, -1).copy()


def assert_error(path, *, column=None, episode=None, step=None, words=()):
    with pytest.raises(LogError) as info:
        validate_logs(path)
    err = info.value
    text = str(err)
    assert str(path) in text or (err.file is not None and str(err.file) in text)
    assert "Hint:" in text
    assert "\n" not in text
    if column is not None:
        assert err.column == column, text
        assert f"column '{column}'" in text
    if episode is not None:
        assert err.episode_id == episode, text
        assert f"episode_id='{episode}'" in text
    if step is not None:
        assert err.step == step, text
        assert f"step={step}" in text
    for w in words:
        assert w in text, text
    return err


def test_valid_synthetic_log_passes_and_is_summarized(make_log):
    path = make_log(make_table(episodes=4, steps=6, d=5, a=3))
    s = validate_logs(path)
    assert (s.rows, s.episodes, s.files) == (24, 4, 1)
    assert s.metadata.obs_dim == 5 and s.metadata.action_dim == 3
    assert s.rows_by_source == {"autopilot": 12, "human": 12}
    assert s.terminal_episodes == 0


def test_missing_required_column(make_log):
    path = make_log(make_table().drop_columns(["reward"]))
    assert_error(path, column="reward", words=("missing",))


def test_wrong_type(make_log):
    t = make_table()
    path = make_log(_set(t, "t", pc.cast(t.column("t"), pa.float32())))
    assert_error(path, column="t", words=("float64",))


def test_wrong_fixed_list_width(make_log):
    t = make_table(d=3)
    path = make_log(t.replace_schema_metadata(log_metadata(4, 2)))
    assert_error(path, column="obs", words=("3 values", "4 names"))


def test_varying_list_length(make_log):
    t = make_table(d=3)
    rows = _obs(t).tolist()
    rows[7] = rows[7][:2]
    path = make_log(_set(t, "obs", pa.array(rows, pa.list_(pa.float32()))))
    assert_error(path, column="obs", episode="ep-1", step=2, words=("2 values", "expected 3"))


def test_plain_list_of_constant_length_is_accepted(make_log):
    t = make_table(d=3)
    path = make_log(_set(t, "obs", pa.array(_obs(t).tolist(), pa.list_(pa.float32()))))
    assert validate_logs(path).rows == t.num_rows


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("column", ["obs", "action", "reward"])
def test_nan_or_inf(make_log, column, bad):
    t = make_table()
    if column == "reward":
        r = t.column("reward").to_numpy().copy()
        r[8] = bad
        t = _set(t, "reward", pa.array(r))
    else:
        rows = t.column(column).combine_chunks().flatten().to_numpy().reshape(t.num_rows, -1).copy()
        rows[8, 1] = bad
        t = _with_list(t, column, rows)
    kind = "NaN" if np.isnan(bad) else "infinite"
    assert_error(make_log(t), column=column, episode="ep-1", step=3, words=(kind,))


def test_steps_with_a_gap(make_log):
    t = make_table(episodes=2, steps=6)
    keep = np.ones(t.num_rows, dtype=bool)
    keep[3] = False  # ep-0 step 3
    assert_error(
        make_log(t.filter(pa.array(keep))), column="step", episode="ep-0", step=4, words=("step 3 is missing",)
    )


def test_steps_not_from_zero(make_log):
    t = make_table(episodes=2, steps=4)
    steps = t.column("step").to_numpy() + np.repeat([1, 0], 4)
    t = _set(t, "step", pa.array(steps))
    assert_error(make_log(t), column="step", episode="ep-0", step=1, words=("start at 1",))


def test_duplicate_episode_step(make_log):
    t = make_table(episodes=2, steps=4)
    dup = pa.concat_tables([t, t.slice(5, 1)])
    assert_error(make_log(dup), column="step", episode="ep-1", step=1, words=("duplicate",))


def test_duplicate_adjacent(make_log):
    t = make_table(episodes=1, steps=4)
    idx = pa.array([0, 1, 1, 2, 3])
    assert_error(make_log(t.take(idx)), column="step", episode="ep-0", step=1, words=("duplicate",))


def test_t_not_increasing(make_log):
    t = make_table(episodes=2, steps=5)
    tt = t.column("t").to_numpy().copy()
    tt[7] = tt[6]
    assert_error(make_log(_set(t, "t", pa.array(tt))), column="t", episode="ep-1", step=2, words=("does not increase",))


def test_done_missing_on_last_row(make_log):
    t = make_table(episodes=2, steps=5)
    done = t.column("done").to_numpy().copy()
    done[9] = False
    assert_error(make_log(_set(t, "done", pa.array(done))), column="done", episode="ep-1", step=4)


def test_done_on_a_middle_row(make_log):
    t = make_table(episodes=2, steps=5)
    done = t.column("done").to_numpy().copy()
    done[2] = True
    assert_error(make_log(_set(t, "done", pa.array(done))), column="done", episode="ep-0", step=2, words=("not the",))


def test_terminal_without_done(make_log):
    t = make_table(episodes=2, steps=5)
    term = t.column("terminal").to_numpy().copy()
    term[1] = True
    assert_error(make_log(_set(t, "terminal", pa.array(term))), column="terminal", episode="ep-0", step=1)


def test_null_in_required_column(make_log):
    t = make_table(episodes=2, steps=3)
    src = t.column("source").to_pylist()
    src[4] = None
    assert_error(make_log(_set(t, "source", pa.array(src, pa.string()))), column="source", words=("null", "row 4"))


def test_metadata_missing(make_log):
    assert_error(make_log(make_table().replace_schema_metadata({})), words=("roadworthy.obs_names",))


def test_metadata_not_json(make_log):
    meta = log_metadata(3, 2)
    meta[b"roadworthy.dt"] = b"fast"
    assert_error(make_log(make_table().replace_schema_metadata(meta)), words=("roadworthy.dt", "JSON"))


def test_names_do_not_match_list_length(make_log):
    t = make_table(d=3, a=2).replace_schema_metadata(log_metadata(3, 2, action_names=["u0"]))
    # action_low/high still list 2 numbers; the names list 1 against a width of 2.
    err = assert_error(make_log(t))
    assert "action" in str(err)


def test_metadata_differs_between_files(tmp_path):
    write_table(make_table(prefix="a"), tmp_path / "ds" / "a.parquet")
    other = make_table(prefix="b").replace_schema_metadata(log_metadata(3, 2, dt=0.05))
    write_table(other, tmp_path / "ds" / "b.parquet")
    assert_error(tmp_path / "ds", words=("roadworthy.dt", "a.parquet", "b.parquet"))


def test_empty_dataset(make_log):
    assert_error(make_log(make_table().slice(0, 0)), words=("empty",))


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.99])
def test_truncated_parquet_file(make_log, cut):
    path = make_log(make_table(episodes=20, steps=20))
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * cut)])
    assert_error(path, words=("truncated or corrupt",))


def test_garbage_file_with_parquet_name(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"not parquet at all" * 10)
    assert_error(path, words=("not a readable Parquet file",))


def test_folder_without_parquet_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "_maps").mkdir()
    write_table(make_table(), tmp_path / "_maps" / "ignored.parquet")
    assert_error(tmp_path, words=("no Parquet files",))


def test_missing_path(tmp_path):
    assert_error(tmp_path / "nope", words=("no such file",))


def test_episode_continuing_after_done_in_another_file(tmp_path):
    t = make_table(episodes=1, steps=4)
    write_table(t, tmp_path / "ds" / "a.parquet")
    more = _set(t, "step", pa.array(np.arange(4, 8)))
    write_table(_set(more, "t", pa.array(np.arange(4, 8) * 0.1)), tmp_path / "ds" / "b.parquet")
    assert_error(tmp_path / "ds", episode="ep-0", step=4, words=("already ended",))


def test_episode_split_across_files_and_partitions(tmp_path):
    t = make_table(episodes=3, steps=6)
    write_table(t.slice(0, 9), tmp_path / "ds" / "date=2026-11-01" / "a.parquet")
    write_table(t.slice(9), tmp_path / "ds" / "date=2026-11-02" / "b.parquet")
    s = validate_logs(tmp_path / "ds")
    assert (s.rows, s.episodes, s.files) == (18, 3, 2)
    assert "date" in s.columns


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(perm_seed=st.integers(0, 2**32 - 1), batch=st.integers(1, 20))
def test_any_row_order_and_batching_validates_the_same(tmp_path, perm_seed, batch):
    t = make_table(episodes=4, steps=7, seed=1)
    order = np.random.default_rng(perm_seed).permutation(t.num_rows)
    path = write_table(t.take(pa.array(order)), tmp_path / f"shuffled-{perm_seed}-{batch}.parquet")
    s = validate_logs(path, batch_size=batch)
    assert (s.rows, s.episodes) == (28, 4)
    assert s.return_mean == pytest.approx(float(np.sum(t.column("reward").to_numpy())) / 4)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drop=st.integers(0, 27), perm_seed=st.integers(0, 1000))
def test_dropping_any_row_is_caught_in_any_order(tmp_path, drop, perm_seed):
    t = make_table(episodes=4, steps=7, seed=1)
    keep = np.delete(np.arange(t.num_rows), drop)
    order = np.random.default_rng(perm_seed).permutation(keep)
    path = write_table(t.take(pa.array(order)), tmp_path / f"drop-{drop}-{perm_seed}.parquet")
    with pytest.raises(LogError) as info:
        validate_logs(path, batch_size=5)
    assert info.value.episode_id == f"ep-{drop // 7}"


def test_metadata_values_round_trip(make_log):
    path = make_log(make_table(d=2, a=1))
    s = validate_logs(path)
    assert s.metadata.to_dict()["obs_names"] == ["f0", "f1"]
    assert json.loads(json.dumps(s.to_dict()))["episodes"] == 3
