"""Shared fixtures: real Parquet logs, small enough for a 2-core CI machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


def log_metadata(d: int, a: int, **overrides) -> dict[bytes, bytes]:
    """Arrow metadata of a synthetic log with D obs and A actions."""
    meta = {
        "schema_version": "1",
        "obs_names": [f"f{i}" for i in range(d)],
        "action_names": [f"u{i}" for i in range(a)],
        "action_low": [-1.0] * a,
        "action_high": [1.0] * a,
        "dt": 0.1,
    }
    meta.update(overrides)
    return {f"roadworthy.{k}".encode(): json.dumps(v).encode() for k, v in meta.items()}


def make_table(
    episodes: int = 3,
    steps: int = 5,
    d: int = 3,
    a: int = 2,
    *,
    seed: int = 0,
    prefix: str = "ep",
    terminal_last: bool = False,
) -> pa.Table:
    """A valid synthetic driving log with a feature layout unlike the simulator's."""
    rng = np.random.default_rng(seed)
    n = episodes * steps
    ep = [f"{prefix}-{i}" for i in range(episodes) for _ in range(steps)]
    step = np.tile(np.arange(steps, dtype=np.int64), episodes)
    done = step == steps - 1
    terminal = done & terminal_last
    cols = {
        "episode_id": pa.array(ep),
        "step": pa.array(step),
        "t": pa.array(step * 0.1),
        "source": pa.array(["human" if i % 2 else "autopilot" for i in range(n)]),
        "obs": pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=n * d).astype(np.float32)), d),
        "action": pa.FixedSizeListArray.from_arrays(pa.array(rng.uniform(-1, 1, n * a).astype(np.float32)), a),
        "reward": pa.array(rng.normal(size=n)),
        "done": pa.array(done),
        "terminal": pa.array(terminal),
        "collision": pa.array(np.zeros(n, dtype=bool)),
    }
    return pa.table(cols).replace_schema_metadata(log_metadata(d, a))


def write_table(table: pa.Table, path: Path) -> Path:
    """Write a table as is (no validation), like a foreign tool would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


@pytest.fixture
def make_log(tmp_path):
    """Write a synthetic log to a file and return its path."""

    def _make(table: pa.Table | None = None, name: str = "log.parquet") -> Path:
        return write_table(table if table is not None else make_table(), tmp_path / name)

    return _make


@pytest.fixture(scope="session")
def sim_logs(tmp_path_factory) -> Path:
    """A small real dataset from the embedded simulator (12 episodes of 12 s)."""
    pytest.importorskip("highway_env")
    from roadworthy.data.sim.collect import collect_highway
    from roadworthy.data.sim.highway import HighwayConfig

    out = tmp_path_factory.mktemp("sim") / "logs"
    collect_highway(out, episodes=12, seed=7, workers=1, config=HighwayConfig(duration=12.0))
    return out


def require_shared(path: Path) -> Path:
    """``path`` inside ../shared; skip when absent, but fail in CI (ROADWORTHY_REQUIRE_SHARED=1).

    CI runs on a checkout with ../shared beside it: a missing file there means the tests
    that read real CARLA and DMV files would silently not run.
    """
    if not path.exists():
        msg = f"{path} is not present (the read-only ../shared folder beside the checkout)"
        if os.environ.get("ROADWORTHY_REQUIRE_SHARED") == "1":
            pytest.fail(msg + "; CI needs it", pytrace=False)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only shared folder beside the checkout."""
    return require_shared(SHARED)
