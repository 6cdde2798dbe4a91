"""``score`` on the Ray engine: :meth:`BehaviorModel.score_batch` in Ray Data actors.

The math is the local engine's (:meth:`roadworthy.density.behavior.BehaviorModel.score_batch`);
only the plumbing differs: files read by Ray Data tasks, batches scored by actors
that each load the behaviour model (and policy) once, flags written as a folder of
Parquet files. The local engine validates every row-level rule of the log
contract as it streams; this engine checks file footers and metadata, names and
finite values of the rows it scores, and leaves the episode-structure rules
(contiguous steps, ``done`` on the last row) to ``roadworthy validate``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from roadworthy.data.errors import LogError

SCORE_COLUMNS = ("episode_id", "step", "source", "obs", "action", "speed", "map_name", "scenario")


class BatchScorer:
    """A Ray actor: holds the behaviour model (and policy) and scores batches of rows."""

    def __init__(self, model_dir: str, policy: str | None, alpha: float | None, allow_code: bool = False) -> None:
        from roadworthy.density.behavior import BehaviorModel

        self.model = BehaviorModel.load(model_dir)
        self.alpha = alpha
        self.policy = None
        if policy:
            from roadworthy.data.policy_code import load_policy

            self.policy = load_policy(
                policy, obs_names=self.model.obs_names, action_names=self.model.action_names, allow_code=allow_code
            )

    def __call__(self, batch: pa.Table) -> pa.Table:
        _check_finite(batch)
        return self.model.score_batch(batch, policy=self.policy, alpha=self.alpha)


def _check_finite(batch: pa.Table) -> None:
    for col in ("obs", "action"):
        flat = batch.column(col).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        if not np.isfinite(flat).all():
            width = len(flat) // max(batch.num_rows, 1)
            row = int(np.flatnonzero(~np.isfinite(flat))[0] // max(width, 1))
            raise LogError(
                "(Ray dataset)",
                f"column '{col}' holds NaN or inf at episode_id={batch.column('episode_id')[row]}, "
                f"step={batch.column('step')[row]}",
                "fix or drop the episode; `roadworthy validate` lists every rule",
            )


def score_ray(
    logs: str | Path,
    model_dir: str | Path,
    out: str | Path,
    *,
    policy: str | Path | None = None,
    alpha: float | None = None,
    address: str | None = None,
    batch_size: int = 65_536,
    allow_code: bool = False,
) -> Path:
    """Score a log on Ray; write the flags as a folder of Parquet files.

    Returns
    -------
    Path
        The output folder (same columns as the local engine's file).
    """
    import ray

    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.ray_engine import actor_count, ray_session, read_logs, write_folder
    from roadworthy.density.behavior import BehaviorModel

    meta = scan_logs(logs).metadata
    BehaviorModel.load(model_dir).check_names(meta.obs_names, meta.action_names, str(model_dir))
    with ray_session(address):
        ds = read_logs(logs, SCORE_COLUMNS)
        flags = ds.map_batches(
            BatchScorer,
            fn_constructor_kwargs={
                "model_dir": str(model_dir),
                "policy": None if policy is None else str(policy),
                "alpha": alpha,
                "allow_code": allow_code,
            },
            batch_format="pyarrow",
            batch_size=batch_size,
            concurrency=actor_count(),
            num_cpus=1,
        )
        try:
            return write_folder(flags, out)
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if hasattr(exc, "cause") else None
            if isinstance(cause, LogError):
                raise cause from None
            raise
