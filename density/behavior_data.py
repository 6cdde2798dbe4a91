"""Reading a log for a behaviour model: the episode split and the training and calibration rows.

Episodes (or blocks of ``block_steps`` steps) are the unit of the split, so no
calibration row comes from an episode the model trained on. The log is read twice,
streamed: once to validate it and count rows per unit, once for the rows of the
chosen units (with the slice columns calibration needs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from roadworthy.data.dataset import LogDataset
from roadworthy.data.errors import UsageError
from roadworthy.data.validate import LogValidator, list_values
from roadworthy.density.behavior_config import BehaviorConfig
from roadworthy.density.calibration import speed_band


def units_of(episode: np.ndarray, step: np.ndarray, block_steps: int) -> np.ndarray:
    if block_steps <= 0:
        return episode
    blocks = (step // block_steps).astype(str)
    return np.char.add(np.char.add(episode.astype(str), "#"), blocks).astype(object)


def obs_action_arrays(batch: pa.RecordBatch | pa.Table, d: int, a: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``obs`` (N, d) and ``action`` (N, a) columns of a batch of log rows as arrays."""
    return list_values(batch.column("obs"), d)[0], list_values(batch.column("action"), a)[0]


def _batch_units(batch: pa.RecordBatch, block_steps: int) -> np.ndarray:
    return units_of(
        np.asarray(batch.column("episode_id").to_pylist(), dtype=object), batch.column("step").to_numpy(), block_steps
    ).astype(str)


def split_units(
    ds: LogDataset, config: BehaviorConfig, on_rows: Callable[[int], None] | None = None
) -> tuple[list[str], list[str], np.random.Generator]:
    """Validate the log while counting rows per unit; the (training, calibration) units, seeded.

    The third value is the seeded generator after the split's draw: later draws of the
    same fit (the reference rows) continue the one stream the seed defines.
    """
    validator = LogValidator(ds.metadata, ds.columns)
    unit_rows: dict[Any, int] = {}
    for path, batch in ds.iter_batches():
        validator.consume(path, batch)
        vals, counts = np.unique(_batch_units(batch, config.block_steps), return_counts=True)
        for u, c in zip(vals.tolist(), counts.tolist(), strict=True):
            unit_rows[u] = unit_rows.get(u, 0) + c
        if on_rows:
            on_rows(batch.num_rows)
    validator.finish(ds.source, len(ds.files))
    names = sorted(unit_rows)
    if len(names) < 2:
        raise UsageError(
            f"{ds.source} has {len(names)} episode(s); calibration needs at least 2 held apart",
            "log more episodes, or split long ones with `block_steps`",
        )
    rng = np.random.default_rng(config.seed)
    order = [names[i] for i in rng.permutation(len(names))]
    n_cal = min(len(names) - 1, max(1, round(config.calibration_fraction * len(names))))
    train = _cap(order[n_cal:], unit_rows, config.max_train_rows)
    cal = _cap(order[:n_cal], unit_rows, config.max_calibration_rows)
    return train, cal, rng


def read_split(
    ds: LogDataset,
    config: BehaviorConfig,
    obs_names: Sequence[str],
    train_units: list[str],
    cal_units: list[str],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The training and calibration rows: obs, action, episode_id, step, source, ``slice:<name>``."""
    split = {u: 0 for u in train_units} | {u: 1 for u in cal_units}
    d, a = ds.metadata.obs_dim, ds.metadata.action_dim
    cols = ["episode_id", "step", "source", "obs", "action", *slice_columns(config, obs_names, ds)]
    parts: dict[int, dict[str, list]] = {0: {}, 1: {}}
    for _, batch in ds.iter_batches(columns=cols):
        which = np.array([split.get(u, -1) for u in _batch_units(batch, config.block_steps)])
        obs, act = obs_action_arrays(batch, d, a)
        columns = {
            "obs": obs,
            "action": act,
            "episode_id": np.asarray(batch.column("episode_id").to_pylist(), dtype=object),
            "step": batch.column("step").to_numpy(),
            "source": np.asarray(batch.column("source").to_pylist(), dtype=object),
            **{f"slice:{k}": v for k, v in slice_values(config, obs_names, batch, obs).items()},
        }
        for k in (0, 1):
            sel = which == k
            if sel.any():
                for name, vals in columns.items():
                    parts[k].setdefault(name, []).append(vals[sel])
    train = {k: np.concatenate(v) for k, v in parts[0].items()}
    cal = {k: np.concatenate(v) for k, v in parts[1].items()}
    return train, cal


def slice_columns(config: BehaviorConfig, obs_names: Sequence[str], ds: LogDataset) -> list[str]:
    """Log columns the configured calibration slices read."""
    out = []
    for s in config.slice_by:
        if s == "speed_band":
            if "speed" in ds.columns:
                out.append("speed")
            elif not any(n.startswith("speed") for n in obs_names):
                raise UsageError("slice speed_band needs a 'speed' column or a speed* feature", "drop the slice")
        elif s in ds.columns:
            out.append(s)
    return out


def slice_values(
    config: BehaviorConfig, obs_names: Sequence[str], batch: pa.RecordBatch, obs: np.ndarray
) -> dict[str, np.ndarray]:
    """The slice of every row of a batch, per configured slice kind."""
    out = {}
    n = batch.num_rows
    for s in config.slice_by:
        if s == "speed_band":
            if "speed" in batch.schema.names:
                speed = batch.column("speed").to_numpy(zero_copy_only=False).astype(np.float64)
            else:
                j = next(i for i, nm in enumerate(obs_names) if nm.startswith("speed"))
                speed = obs[:, j]
            out[s] = speed_band(np.nan_to_num(speed))
        elif s in batch.schema.names:
            out[s] = np.asarray(batch.column(s).to_pylist(), dtype=object)
        else:
            out[s] = np.full(n, "unknown", dtype=object)
    return out


def slices_of(rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``slice:<name>`` columns of a split, by slice name."""
    return {k[len("slice:") :]: v for k, v in rows.items() if k.startswith("slice:")}


def _cap(units: list, rows: Mapping, cap: int) -> list:
    """A prefix of the (already shuffled) units holding at most ``cap`` rows (at least one unit)."""
    out, total = [], 0
    for u in units:
        if out and total + rows[u] > cap:
            break
        out.append(u)
        total += rows[u]
    return out
