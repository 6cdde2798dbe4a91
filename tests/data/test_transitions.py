"""Episodes and transitions streamed from logs, in any row order."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from roadworthy.data.errors import LogError
from roadworthy.data.transitions import iter_episodes, iter_transitions
from tests.conftest import make_table, write_table


def test_episodes_are_whole_and_sorted(tmp_path):
    t = make_table(episodes=5, steps=9, d=4)
    order = np.random.default_rng(3).permutation(t.num_rows)
    path = write_table(t.take(pa.array(order)), tmp_path / "s.parquet")
    eps = {e.episode_id: e for e in iter_episodes(path, batch_size=7)}
    assert sorted(eps) == [f"ep-{i}" for i in range(5)]
    for i, e in eps.items():
        assert len(e) == 9
        assert list(e.column("step")) == list(range(9))
        ref = t.filter(pa.compute.equal(t.column("episode_id"), i))
        np.testing.assert_array_equal(e.obs, ref.column("obs").combine_chunks().flatten().to_numpy().reshape(9, 4))


def test_transitions_next_obs_and_ends(tmp_path):
    a = make_table(episodes=2, steps=4, prefix="a", terminal_last=True)
    b = make_table(episodes=1, steps=3, prefix="b")
    path = write_table(pa.concat_tables([a, b]), tmp_path / "t.parquet")
    batches = list(iter_transitions(path, extra_columns=["source"], batch_size=1000))
    assert len(batches) == 1
    tr = batches[0]
    assert len(tr) == 11
    np.testing.assert_array_equal(tr.next_obs[0], tr.obs[1])
    np.testing.assert_array_equal(tr.next_obs[3], tr.obs[3])  # last row repeats
    assert tr.terminal.tolist() == [False] * 3 + [True] + [False] * 3 + [True] + [False] * 3
    assert tr.truncated.tolist() == [False] * 10 + [True]
    assert tr.extra["source"][0] in {"human", "autopilot"}


def test_transition_batches_hold_whole_episodes(tmp_path):
    path = write_table(make_table(episodes=10, steps=6), tmp_path / "x.parquet")
    sizes = [len(b) for b in iter_transitions(path, batch_size=10)]
    assert sum(sizes) == 60 and all(s % 6 == 0 for s in sizes)


def test_reader_refuses_broken_logs(tmp_path):
    t = make_table(episodes=2, steps=5)
    path = write_table(t.slice(0, 9), tmp_path / "cut.parquet")  # ep-1 loses its done row
    with pytest.raises(LogError, match="done"):
        list(iter_episodes(path))


def test_discounted_return(tmp_path):
    path = write_table(make_table(episodes=1, steps=5), tmp_path / "r.parquet")
    (ep,) = list(iter_episodes(path))
    r = ep.reward
    assert ep.discounted_return(0.5) == pytest.approx(sum(r[i] * 0.5**i for i in range(5)))
