"""Row-level validation of driving logs, streamed batch by batch.

:class:`LogValidator` consumes record batches in any order and checks every rule of
contract section 1 that needs the rows: nulls, NaN/inf, list lengths, steps
contiguous from 0 without duplicates, ``t`` strictly increasing with ``step``,
``done`` exactly on each episode's last row, ``terminal`` only where ``done``.
Rows need not be sorted. Each episode is kept as a few in-order *blocks*
``(first step, last step, first t, last t)``, merged as rows arrive, so memory is
about one batch plus ~100 bytes per episode, whatever the dataset size; an episode
is closed (and its state dropped) as soon as it is complete.

The first problem found raises :class:`~roadworthy.data.errors.LogError` naming the file,
column and first offending ``(episode_id, step)``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from roadworthy.data.columns import EpisodeRegistry, list_values
from roadworthy.data.dataset import DEFAULT_BATCH_ROWS, LogDataset, scan_logs
from roadworthy.data.episode_checks import Episode, check_episode
from roadworthy.data.errors import LogError
from roadworthy.data.schema import COST_PREFIX, REQUIRED_COLUMNS, LogMetadata
from roadworthy.data.summary import LogSummary

__all__ = ["EpisodeRegistry", "LogSummary", "LogValidator", "list_values", "validate_logs"]


class LogValidator:
    """Streaming checker of the row-level rules; see the module docstring.

    Parameters
    ----------
    metadata : LogMetadata
        Gives D and A.
    columns : list of str
        The dataset's columns.
    """

    def __init__(self, metadata: LogMetadata, columns: list[str]) -> None:
        self.meta = metadata
        self.columns = columns
        self.registry = EpisodeRegistry()
        self._open: dict[int, Episode] = {}
        self._closed: dict[int, int] = {}
        self._file_rows: Counter = Counter()
        self.rows = 0
        self._rows_by_source: Counter = Counter()
        self._start_source: Counter = Counter()
        self._maps: Counter = Counter()
        self._scenarios: Counter = Counter()
        self._counts: Counter = Counter()
        self._ret_sum = 0.0
        self._ret_min = math.inf
        self._ret_max = -math.inf
        self._float_costs = [c for c in columns if c.startswith(COST_PREFIX)]

    # -- helpers -----------------------------------------------------------------
    def _row_error(self, file, column, codes, steps, i, problem, hint) -> LogError:
        return LogError(
            file, problem, hint, column=column, episode_id=self.registry.names[codes[i]], step=int(steps[i])
        )

    def _null_check(self, file: Path, batch: pa.RecordBatch) -> None:
        for name in REQUIRED_COLUMNS:
            col = batch.column(name)
            if col.null_count:
                i = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                row = self._file_rows[file] + i
                where = ""
                if name not in ("episode_id", "step") and batch.column("episode_id")[i].is_valid:
                    ep, st = batch.column("episode_id")[i].as_py(), batch.column("step")[i].as_py()
                    where = f" (episode_id='{ep}', step={st})"
                raise LogError(
                    file,
                    f"null value in row {row} of the file{where}",
                    f"every row needs a {name}; fill it or drop the row before writing",
                    column=name,
                )

    def _finite(self, file, name, values, codes, steps, width: int | None = None) -> None:
        ok = np.isfinite(values)
        if ok.all():
            return
        bad = int(np.flatnonzero(~ok.reshape(len(steps), -1).all(axis=1))[0])
        kind = "NaN" if np.isnan(values.reshape(len(steps), -1)[bad]).any() else "an infinite value"
        entry = ""
        if width:
            j = int(np.flatnonzero(~np.isfinite(values[bad]))[0])
            names = self.meta.obs_names if name == "obs" else self.meta.action_names
            entry = f" in entry {j} ('{names[j]}')"
        raise self._row_error(
            file,
            name,
            codes,
            steps,
            bad,
            f"{kind}{entry}",
            f"{name} values must be finite numbers; fix or drop the rows, or mark missing "
            "sensor values with a separate feature",
        )

    # -- the batch pass ----------------------------------------------------------
    def consume(self, file: Path, batch: pa.RecordBatch) -> np.ndarray:
        """Check one batch; return its rows' integer episode codes.

        Raises
        ------
        LogError
            At the first offending row.
        """
        n = batch.num_rows
        self._null_check(file, batch)
        codes = self.registry.encode(batch.column("episode_id"))
        step = batch.column("step").to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        t = batch.column("t").to_numpy(zero_copy_only=False)
        done = batch.column("done").to_numpy(zero_copy_only=False)
        terminal = batch.column("terminal").to_numpy(zero_copy_only=False)
        reward = batch.column("reward").to_numpy(zero_copy_only=False)
        self._check_values(file, batch, codes, step, t, reward)
        self._check_flags(file, codes, step, done, terminal)
        starts, ends = self._runs(file, codes, step, t)
        rew_cum = np.r_[0.0, np.cumsum(reward, dtype=np.float64)]
        collided = self._bool_col(batch, "collision", n)
        coll_runs = (
            np.add.reduceat(collided.astype(np.int64), starts) > 0
            if collided is not None
            else np.zeros(len(starts), bool)
        )
        touched = [
            self._extend(file, codes, step, t, int(a), int(b), rew_cum[b + 1] - rew_cum[a], bool(c))
            for a, b, c in zip(starts, ends, coll_runs, strict=True)
        ]
        for i in np.flatnonzero(done):
            ep = self._open[int(codes[i])]
            ep.done_count += 1
            if ep.done_count == 1 or step[i] < ep.done_step:
                ep.done_step = int(step[i])
            self._counts["terminal_episodes"] += bool(terminal[i])
        self._tally(batch, codes, step, collided, n)
        for code in dict.fromkeys(touched):
            ep = self._open[code]
            b = ep.blocks
            if ep.done_count == 1 and len(b) == 1 and b[0][0] == 0 and b[0][1] == ep.done_step:
                self._close(code, ep)
        self._file_rows[file] += n
        self.rows += n
        return codes

    def _check_values(self, file, batch, codes, step, t, reward) -> None:
        """List widths and finiteness of obs, action, reward, float costs and t."""
        for name, width in (("obs", self.meta.obs_dim), ("action", self.meta.action_dim)):
            values, bad_row = list_values(batch.column(name), width)
            if bad_row is not None:
                got = pc.list_value_length(batch.column(name))[bad_row].as_py()
                raise self._row_error(
                    file,
                    name,
                    codes,
                    step,
                    bad_row,
                    f"list of {got} values, expected {width} (one per name in roadworthy.{name}_names)",
                    f"every {name} must have exactly {width} entries",
                )
            self._finite(file, name, values, codes, step, width)
        self._finite(file, "reward", reward, codes, step)
        for name in self._float_costs:
            col = batch.column(name)
            if pa.types.is_floating(col.type):
                self._finite(file, name, col.fill_null(0.0).to_numpy(zero_copy_only=False), codes, step)
        if t.size and not np.isfinite(t).all():
            self._finite(file, "t", t, codes, step)

    def _check_flags(self, file, codes, step, done, terminal) -> None:
        """Non-negative steps; terminal only on done rows."""
        neg = np.flatnonzero(step < 0)
        if neg.size:
            raise self._row_error(
                file, "step", codes, step, int(neg[0]), "negative step", "steps count 0, 1, 2, ... within each episode"
            )
        bad = np.flatnonzero(terminal & ~done)
        if bad.size:
            raise self._row_error(
                file,
                "terminal",
                codes,
                step,
                int(bad[0]),
                "terminal is true on a row whose done is false",
                "terminal marks an absorbing end, so it may only be true on the last row (done) of an episode",
            )

    def _runs(self, file, codes, step, t) -> tuple[np.ndarray, np.ndarray]:
        """First and last rows of the batch's in-order runs (same episode, consecutive steps)."""
        n = len(codes)
        same = codes[1:] == codes[:-1]
        dup = np.flatnonzero(same & (step[1:] == step[:-1]))
        if dup.size:
            raise self._duplicate(file, codes, step, int(dup[0]) + 1)
        brk = np.ones(n, dtype=bool)
        brk[1:] = ~same | (step[1:] != step[:-1] + 1)
        bad_t = np.flatnonzero(~brk[1:] & ~(t[1:] > t[:-1]))
        if bad_t.size:
            i = int(bad_t[0]) + 1
            raise self._t_error(file, codes, step, i, t[i - 1], t[i])
        starts = np.flatnonzero(brk)
        return starts, np.r_[starts[1:], n] - 1

    def _extend(self, file, codes, step, t, a: int, b: int, ret: float, collided: bool) -> int:
        """Add the run of rows a..b to its episode's blocks; the episode's code."""
        code = int(codes[a])
        first, last = int(step[a]), int(step[b])
        ep = self._open.get(code)
        if ep is None:
            if code in self._closed:
                raise LogError(
                    file,
                    f"more rows of an episode that already ended (done) at step {self._closed[code]}",
                    "an episode's rows must not repeat or continue past its done row; give "
                    "separate drives separate episode_ids",
                    column="episode_id",
                    episode_id=self.registry.names[code],
                    step=first,
                )
            ep = self._open[code] = Episode(file)
            ep.blocks.append([first, last, float(t[a]), float(t[b])])
        else:
            tail = ep.blocks[-1]
            if tail[0] <= first <= tail[1]:
                raise self._duplicate(file, codes, step, a)
            if first == tail[1] + 1:
                if not t[a] > tail[3]:
                    raise self._t_error(file, codes, step, a, tail[3], t[a])
                tail[1], tail[3] = last, float(t[b])
            else:
                ep.blocks.append([first, last, float(t[a]), float(t[b])])
        ep.rows += last - first + 1
        ep.ret += float(ret)
        ep.collided |= collided
        return code

    def _bool_col(self, batch, name, n) -> np.ndarray | None:
        if name not in batch.schema.names:
            return None
        col = batch.column(name)
        if not pa.types.is_boolean(col.type):
            return None
        return col.fill_null(False).to_numpy(zero_copy_only=False)

    def _tally(self, batch, codes, step, collided, n) -> None:
        def counts(name):
            if name not in batch.schema.names:
                return {}
            vc = pc.value_counts(batch.column(name))
            return {str(v["values"]): int(v["counts"]) for v in vc.to_pylist() if v["values"] is not None}

        self._rows_by_source.update(counts("source"))
        self._maps.update(counts("map_name"))
        self._scenarios.update(counts("scenario"))
        first = np.flatnonzero(step == 0)
        if first.size:
            src = batch.column("source").take(pa.array(first)).to_pylist()
            self._start_source.update(str(s) for s in src)
        for name in ("disengagement", "off_road"):
            col = self._bool_col(batch, name, n)
            if col is not None:
                self._counts[name] += int(col.sum())
        if collided is not None:
            self._counts["collision"] += int(collided.sum())
        if "behavior_logp" in batch.schema.names:
            self._counts["behavior_logp"] += n - batch.column("behavior_logp").null_count

    def _duplicate(self, file, codes, step, i) -> LogError:
        return self._row_error(
            file,
            "step",
            codes,
            step,
            i,
            "duplicate (episode_id, step): this step appears more than once in the episode",
            "drop the repeated rows, or give separate drives separate episode_ids",
        )

    def _t_error(self, file, codes, step, i, t_prev, t_here) -> LogError:
        return self._row_error(
            file,
            "t",
            codes,
            step,
            i,
            f"t does not increase with step (t={t_here!r} s after t={t_prev!r} s at the step before)",
            "t counts seconds since the episode started and must grow strictly with step",
        )

    def _close(self, code: int, ep: Episode) -> None:
        last = check_episode(ep, self.registry.names[code])
        self._closed[code] = last
        self._open.pop(code, None)
        self._ret_sum += ep.ret
        self._ret_min = min(self._ret_min, ep.ret)
        self._ret_max = max(self._ret_max, ep.ret)
        self._counts["collision_episodes"] += ep.collided

    def finish(self, source: str | Path, files: int) -> LogSummary:
        """Check the episodes still open and summarize the dataset.

        Raises
        ------
        LogError
            For an episode with missing steps, duplicates or a misplaced done.
        """
        for code, ep in list(self._open.items()):
            self._close(code, ep)
        n_ep = len(self._closed)
        c = self._counts
        return LogSummary(
            source=str(source),
            files=files,
            rows=self.rows,
            episodes=n_ep,
            metadata=self.meta,
            columns=self.columns,
            rows_by_source=dict(sorted(self._rows_by_source.items())),
            episodes_by_start_source=dict(sorted(self._start_source.items())),
            disengagements=c["disengagement"],
            collision_rows=c["collision"],
            collision_episodes=c["collision_episodes"],
            off_road_rows=c["off_road"],
            terminal_episodes=c["terminal_episodes"],
            maps=dict(sorted(self._maps.items())),
            scenarios=dict(sorted(self._scenarios.items())),
            behavior_logp_rows=c["behavior_logp"],
            return_mean=self._ret_sum / max(n_ep, 1),
            return_min=self._ret_min if n_ep else 0.0,
            return_max=self._ret_max if n_ep else 0.0,
        )


def validate_logs(
    source: str | Path | LogDataset,
    *,
    batch_size: int = DEFAULT_BATCH_ROWS,
    on_rows: Callable[[int], None] | None = None,
) -> LogSummary:
    """Check a whole dataset against the contract and summarize it.

    Parameters
    ----------
    source : str, Path or LogDataset
        A ``.parquet`` file, a folder of them, or an opened dataset.
    batch_size : int
        Rows per batch; memory is bounded by about one batch.
    on_rows : callable, optional
        Called with the number of rows after each batch (for progress bars).

    Raises
    ------
    LogError
        For the first violation of the contract.
    """
    dataset = source if isinstance(source, LogDataset) else scan_logs(source)
    validator = LogValidator(dataset.metadata, dataset.columns)
    for path, batch in dataset.iter_batches(batch_size=batch_size):
        validator.consume(path, batch)
        if on_rows:
            on_rows(batch.num_rows)
    return validator.finish(dataset.source, len(dataset.files))
