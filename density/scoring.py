"""Scoring a log with a fitted behaviour model: per-row flags to Parquet, with counts.

:func:`score_logs` is what ``roadworthy score`` and :func:`roadworthy.score` run: the
logged actions (or a policy's actions on the logged states) scored row by row, the
flags streamed to one Parquet file written atomically (or, on Ray, to a folder of
them), and the counts per logged source. With ``bh`` a first pass collects every
p-value for a Benjamini-Hochberg threshold over all rows, and the second pass adds
``is_ood_bh``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.data.errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa

    from roadworthy.data.dataset import LogDataset
    from roadworthy.data.policy import OnnxPolicy
    from roadworthy.density.behavior import BehaviorModel


class _Tally:
    """Rows, flags and per-source counts of scored tables."""

    def __init__(self) -> None:
        self.counts: dict = {
            "rows": 0,
            "is_ood": 0,
            "state_is_ood": 0,
            "is_ood_bh": 0,
            "out_of_bounds": 0,
            "by_source": {},
        }

    def add(self, t: pa.Table) -> None:
        c = self.counts
        ood = t.column("is_ood").to_numpy()
        c["rows"] += t.num_rows
        c["is_ood"] += int(ood.sum())
        c["state_is_ood"] += int(t.column("state_is_ood").to_numpy().sum())
        for name in ("is_ood_bh", "out_of_bounds"):
            if name in t.column_names:
                c[name] += int(t.column(name).to_numpy().sum())
        src = np.asarray(t.column("source").to_pylist(), dtype=object)
        for s in np.unique(src):
            by = c["by_source"].setdefault(str(s), {"rows": 0, "is_ood": 0})
            by["rows"] += int((src == s).sum())
            by["is_ood"] += int(ood[src == s].sum())


def _bh_threshold(
    bm: BehaviorModel,
    ds: LogDataset,
    pol: OnnxPolicy | None,
    alpha: float | None,
    level: float,
    on_rows: Callable[[int], None] | None,
) -> float:
    """The largest p-value Benjamini-Hochberg flags at ``level`` over every row (-1: none)."""
    from roadworthy.density.calibration import benjamini_hochberg

    pvals = [t.column("pvalue").to_numpy() for t in bm.iter_scores(ds, policy=pol, alpha=alpha, on_rows=on_rows)]
    allp = np.concatenate(pvals) if pvals else np.zeros(0)
    flags = benjamini_hochberg(allp, level)
    return float(allp[flags].max()) if flags.any() else -1.0


def _write_local(
    bm: BehaviorModel,
    ds: LogDataset,
    pol: OnnxPolicy | None,
    alpha: float | None,
    out: Path,
    info: dict,
    bh_threshold: float | None,
    tally: _Tally,
    on_rows: Callable[[int], None] | None,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from roadworthy.data.writer import AtomicFile

    writer = None
    with AtomicFile(out) as f:
        try:
            for t in bm.iter_scores(ds, policy=pol, alpha=alpha, on_rows=on_rows):
                if bh_threshold is not None:
                    t = t.append_column("is_ood_bh", pa.array(t.column("pvalue").to_numpy() <= bh_threshold))
                if writer is None:
                    meta = {b"roadworthy.flags": json.dumps(info).encode()}
                    writer = pq.ParquetWriter(f.tmp, t.schema.with_metadata(meta), compression="zstd")
                writer.write_table(t)
                tally.add(t)
        finally:
            if writer is not None:
                writer.close()


def score_logs(
    logs: str | Path,
    model: str | Path,
    out: str | Path,
    *,
    policy: str | Path | None = None,
    alpha: float | None = None,
    bh: bool = False,
    engine: str = "local",
    address: str | None = None,
    on_rows: Callable[[int], None] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> dict:
    """Score every row of ``logs``; write the flags to ``out``; return the counts.

    Parameters
    ----------
    logs : path
        A Parquet file or folder (contract v1).
    model : path
        A behaviour model folder from :meth:`~roadworthy.density.behavior.BehaviorModel.save`.
    out : path
        Flags file (.parquet; with ``engine="ray"`` a folder of them).
    policy : path, optional
        Score this ONNX policy's actions on the logged states instead of the logged actions.
    alpha : float, optional
        False-alarm rate overriding the model's.
    bh : bool
        Also flag with Benjamini-Hochberg over all rows (``is_ood_bh``; local engine only).
    engine, address : str
        ``local`` or ``ray`` (and the Ray address).
    on_rows, on_stage : callable, optional
        Progress callbacks (rows scored; stage names).

    Returns
    -------
    dict
        ``flags``, ``policy``, ``alpha``, ``rows``, ``is_ood``, ``state_is_ood``,
        ``is_ood_bh``, ``out_of_bounds`` (a policy's actions outside the log's action bounds,
        flagged as OOD), ``by_source`` ({source: {rows, is_ood}}), ``ood_rate`` and
        ``skipped_rows`` (rows of the log without a flag; 0 unless something is wrong).
    """
    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.ray_engine import check_engine
    from roadworthy.density.behavior import BehaviorModel

    if alpha is not None and not 0 < alpha < 1:
        raise UsageError(f"`alpha` must lie in (0, 1), got {alpha}", "use e.g. 0.01")
    check_engine(engine, address)
    if engine == "ray" and bh:
        raise UsageError("`bh` needs all p-values in one place and is not available with `engine` ray", "drop `bh`")
    out = Path(out)
    bm = BehaviorModel.load(model)
    ds = scan_logs(logs)
    pol = None
    if policy is not None:
        from roadworthy.data.policy import OnnxPolicy

        pol = OnnxPolicy.load(policy, obs_names=ds.metadata.obs_names, action_names=ds.metadata.action_names)
    level = bm.config.alpha if alpha is None else alpha
    stage = on_stage or (lambda s: None)
    tally = _Tally()
    if engine == "ray":
        import pyarrow.parquet as pq

        from roadworthy.density.ray_score import score_ray

        stage("scoring on Ray")
        score_ray(logs, model, out, policy=policy, alpha=alpha, address=address)
        for f in sorted(out.rglob("*.parquet")):
            cols = [c for c in ("source", "is_ood", "state_is_ood", "out_of_bounds") if c in pq.read_schema(f).names]
            tally.add(pq.read_table(f, columns=cols))
    else:
        bh_threshold = None
        if bh:
            stage("scoring (pass 1 of 2, for Benjamini-Hochberg)")
            bh_threshold = _bh_threshold(bm, ds, pol, alpha, level, on_rows)
        stage("scoring")
        info = {"model": str(model), "alpha": level, "policy": None if pol is None else pol.name}
        _write_local(bm, ds, pol, alpha, out, info, bh_threshold, tally, on_rows)
    c = tally.counts
    return {
        "flags": str(out),
        "policy": None if pol is None else pol.name,
        "alpha": level,
        **c,
        "ood_rate": c["is_ood"] / max(c["rows"], 1),
        "skipped_rows": int(ds.num_rows - c["rows"]),
    }
