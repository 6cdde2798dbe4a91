"""Whole episodes and (s, a, r, s') transitions, streamed from a driving log.

Both readers validate as they go (the same checks as ``roadworthy validate``), so
they never hand out rows of a broken log. Rows may come in any order; an episode
is emitted once all of its rows have arrived. For files sorted by
``(episode_id, step)``, as the writer produces them, memory stays at about one
batch; unsorted files hold the episodes still open at any time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from roadworthy.data.dataset import DEFAULT_BATCH_ROWS, LogDataset, scan_logs
from roadworthy.data.validate import EpisodeRegistry, LogValidator, list_values


@dataclass(frozen=True)
class Episode:
    """One episode's rows, sorted by step.

    Attributes
    ----------
    episode_id : str
    table : pyarrow.Table
        The episode's rows (the requested columns), sorted by ``step``.
    obs_dim, action_dim : int
    """

    episode_id: str
    table: pa.Table
    obs_dim: int
    action_dim: int

    def __len__(self) -> int:
        return self.table.num_rows

    def column(self, name: str) -> np.ndarray:
        """A scalar column as numpy."""
        return self.table.column(name).to_numpy()

    @property
    def obs(self) -> np.ndarray:
        """Observations, ``(n, D)`` float32."""
        return list_values(self.table.column("obs"), self.obs_dim)[0]

    @property
    def action(self) -> np.ndarray:
        """Actions, ``(n, A)`` float32."""
        return list_values(self.table.column("action"), self.action_dim)[0]

    @property
    def reward(self) -> np.ndarray:
        """Rewards, ``(n,)`` float64."""
        return self.table.column("reward").to_numpy().astype(np.float64)

    @property
    def terminal(self) -> bool:
        """Whether the episode ended in an absorbing state."""
        return bool(self.table.column("terminal")[-1].as_py())

    def discounted_return(self, gamma: float, column: str = "reward") -> float:
        """Sum over t of ``gamma**t * column[t]``."""
        v = self.table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        return float(np.sum(v * gamma ** np.arange(len(v))))


@dataclass(frozen=True)
class Transitions:
    """A batch of transitions, one per logged step.

    ``next_obs`` of an episode's last row repeats its ``obs``: there is no next
    state after an absorbing end (``terminal``), and none was logged after a
    time limit or the end of the log (``truncated``), so estimators must not
    bootstrap from it without care.

    Attributes
    ----------
    episode_id : numpy.ndarray of object
    step : numpy.ndarray of int64
    obs, next_obs : numpy.ndarray of shape (n, D), float32
    action : numpy.ndarray of shape (n, A), float32
    reward : numpy.ndarray of shape (n,), float64
    terminal, truncated : numpy.ndarray of bool
    extra : dict of str to numpy.ndarray
        Further requested columns.
    """

    episode_id: np.ndarray
    step: np.ndarray
    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminal: np.ndarray
    truncated: np.ndarray
    extra: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.reward)


_CORE = ("episode_id", "step", "obs", "action", "reward", "done", "terminal")


def iter_episodes(
    source: str | Path | LogDataset,
    columns: Sequence[str] | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_ROWS,
) -> Iterator[Episode]:
    """Stream whole episodes, validating the log on the way.

    Parameters
    ----------
    source : str, Path or LogDataset
    columns : sequence of str, optional
        Columns to keep besides the core ones (default: all columns).
    batch_size : int
        Rows read at a time.

    Raises
    ------
    LogError
        When the log breaks the contract.
    """
    dataset = source if isinstance(source, LogDataset) else scan_logs(source)
    meta = dataset.metadata
    validator = LogValidator(meta, dataset.columns)
    wanted = list(dataset.columns) if columns is None else list(dict.fromkeys([*_CORE, *columns]))
    extra_needed = [c for c in dataset.columns if c not in wanted]
    # The validator needs every column; keep only the wanted ones for the episodes.
    pending: dict[int, list[pa.RecordBatch]] = {}
    counts: dict[int, int] = {}
    last_step: dict[int, int] = {}
    registry: EpisodeRegistry = validator.registry
    for path, batch in dataset.iter_batches(batch_size=batch_size):
        codes = validator.consume(path, batch)
        if extra_needed:
            batch = batch.select(wanted)
        done = batch.column("done").to_numpy(zero_copy_only=False)
        step = batch.column("step").to_numpy(zero_copy_only=False)
        brk = np.ones(len(codes), dtype=bool)
        brk[1:] = codes[1:] != codes[:-1]
        starts = np.flatnonzero(brk)
        ends = np.r_[starts[1:], len(codes)]
        for s, e in zip(starts, ends, strict=True):
            code = int(codes[s])
            pending.setdefault(code, []).append(batch.slice(s, e - s))
            counts[code] = counts.get(code, 0) + int(e - s)
        for i in np.flatnonzero(done):
            last_step[int(codes[i])] = int(step[i])
        for code in [c for c in dict.fromkeys(codes[starts].tolist()) if c in last_step]:
            if counts[code] == last_step[code] + 1:
                yield _assemble(registry.names[code], pending.pop(code), meta)
                del counts[code], last_step[code]
    # Raises for any episode left incomplete; a valid log leaves nothing pending.
    validator.finish(dataset.source, len(dataset.files))


def _assemble(episode_id: str, parts: list[pa.RecordBatch], meta) -> Episode:
    table = pa.Table.from_batches(parts)
    steps = table.column("step").to_numpy()
    if len(steps) > 1 and not (np.diff(steps) > 0).all():
        table = table.take(pc.sort_indices(table, [("step", "ascending")]))
    return Episode(episode_id, table.combine_chunks(), meta.obs_dim, meta.action_dim)


def iter_transitions(
    source: str | Path | LogDataset,
    extra_columns: Sequence[str] = (),
    *,
    batch_size: int = DEFAULT_BATCH_ROWS,
) -> Iterator[Transitions]:
    """Stream transitions in batches of about ``batch_size`` rows (whole episodes).

    Parameters
    ----------
    source : str, Path or LogDataset
    extra_columns : sequence of str
        Further columns to carry along (e.g. ``source``, ``collision``).
    batch_size : int
    """
    buf: list[dict[str, np.ndarray]] = []
    rows = 0
    for ep in iter_episodes(source, columns=list(extra_columns), batch_size=batch_size):
        # Copy out of the Arrow batch at once so the batch can be freed.
        buf.append(_episode_arrays(ep, extra_columns))
        rows += len(ep)
        if rows >= batch_size:
            yield _to_transitions(buf, extra_columns)
            buf, rows = [], 0
    if buf:
        yield _to_transitions(buf, extra_columns)


def _episode_arrays(ep: Episode, extra_columns: Sequence[str]) -> dict[str, np.ndarray]:
    out = {
        "episode_id": ep.episode_id,
        "step": ep.column("step").astype(np.int64),
        "obs": ep.obs.copy(),
        "action": ep.action.copy(),
        "reward": ep.reward,
        "terminal": ep.terminal,
    }
    for name in extra_columns:
        out[name] = ep.table.column(name).to_numpy(zero_copy_only=False).copy()
    return out


def _to_transitions(episodes: list[dict], extra_columns: Sequence[str]) -> Transitions:
    lengths = np.array([len(e["reward"]) for e in episodes])
    last = np.cumsum(lengths) - 1
    obs = np.concatenate([e["obs"] for e in episodes])
    nxt = np.empty_like(obs)
    nxt[:-1] = obs[1:]
    nxt[last] = obs[last]  # an episode's last row has no logged next state
    ends_terminal = np.array([e["terminal"] for e in episodes], dtype=bool)
    terminal = np.zeros(len(obs), dtype=bool)
    truncated = np.zeros(len(obs), dtype=bool)
    terminal[last[ends_terminal]] = True
    truncated[last[~ends_terminal]] = True
    return Transitions(
        episode_id=np.repeat(np.array([e["episode_id"] for e in episodes], dtype=object), lengths),
        step=np.concatenate([e["step"] for e in episodes]),
        obs=obs,
        action=np.concatenate([e["action"] for e in episodes]),
        reward=np.concatenate([e["reward"] for e in episodes]),
        next_obs=nxt,
        terminal=terminal,
        truncated=truncated,
        extra={name: np.concatenate([e[name] for e in episodes]) for name in extra_columns},
    )
