"""Split-conformal calibration of OOD flags, per behaviour source and slice.

Nonconformity is the negative log-density (``-score_samples``). A calibration set
of held-out *episodes* (consecutive steps are not exchangeable, episodes are)
gives, for a new row with nonconformity v in group g, the conformal p-value

    p = (1 + #{calibration rows of g with nonconformity >= v}) / (n_g + 1)

and the row is flagged ``is_ood`` when p <= alpha. If episodes are exchangeable,
the chance that a row of a new episode is flagged is at most alpha (and close to
it). Groups are the behaviour source (``human``, ``autopilot``, ...) and,
optionally, slices (speed band, map, scenario); a group with fewer than
``min_bin`` calibration rows falls back to its parent (source, then all rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

ALL = "all"
#: Speed bands (m/s) of the ``speed_band`` slice.
SPEED_BANDS = (0.0, 5.0, 10.0, 20.0, 30.0)
#: Most stored calibration scores per group (a uniform subsample above it).
MAX_STORED = 100_000


def speed_band(speed: np.ndarray) -> np.ndarray:
    """Band label of each speed, e.g. ``"10-20"`` or ``"30+"`` (m/s)."""
    edges = np.asarray(SPEED_BANDS)
    idx = np.clip(np.searchsorted(edges, np.asarray(speed, dtype=np.float64), side="right") - 1, 0, len(edges) - 1)
    labels = [f"{edges[i]:g}-{edges[i + 1]:g}" for i in range(len(edges) - 1)] + [f"{edges[-1]:g}+"]
    return np.array(labels, dtype=object)[idx]


def _labels(columns: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
    """``"name=value|..."`` label of each row, built once per distinct combination."""
    import pandas as pd

    if len(columns) == 1:
        codes, uniques = pd.factorize(np.asarray(columns[0], dtype=object))
        uniques = [(u,) for u in uniques]
    else:
        codes, uniques = pd.MultiIndex.from_arrays([np.asarray(c, dtype=object) for c in columns]).factorize()
    text = np.array(["|".join(f"{n}={v}" for n, v in zip(names, u, strict=True)) for u in uniques], dtype=object)
    return text[codes]


def group_levels(source: Sequence[str] | None, slices: Mapping[str, Sequence], n: int) -> list[np.ndarray]:
    """Group labels of each row, most specific level first: source and slices, source, all."""
    levels: list[np.ndarray] = []
    names = sorted(slices)
    if source is not None and names:
        levels.append(_labels([source, *(slices[k] for k in names)], ["source", *names]))
    elif names:
        levels.append(_labels([slices[k] for k in names], names))
    if source is not None:
        levels.append(_labels([source], ["source"]))
    levels.append(np.full(n, ALL, dtype=object))
    return levels


@dataclass
class ConformalCalibrator:
    """Sorted calibration nonconformity scores per group, and the flag rule.

    Parameters
    ----------
    alpha : float
        Target false-alarm rate in (0, 1).
    min_bin : int
        Fewest calibration rows for a group to be used on its own.
    """

    alpha: float = 0.01
    min_bin: int = 200
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        nonconformity: np.ndarray,
        levels: list[np.ndarray],
        *,
        alpha: float = 0.01,
        min_bin: int = 200,
        seed: int = 0,
    ) -> ConformalCalibrator:
        """Calibrate on held-out rows with their group levels (see :func:`group_levels`)."""
        import pandas as pd

        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1); got {alpha}")
        nc = np.asarray(nonconformity, dtype=np.float64)
        rng = np.random.default_rng(seed)
        cal = cls(alpha=alpha, min_bin=min_bin)
        for level in levels:
            codes, uniques = pd.factorize(level)
            for j, name in enumerate(uniques):
                vals = nc[codes == j]
                cal.counts[name] = len(vals)
                if len(vals) > MAX_STORED:
                    vals = rng.choice(vals, MAX_STORED, replace=False)
                cal.scores[name] = np.sort(vals)
        return cal

    def resolve(self, levels: list[np.ndarray]) -> np.ndarray:
        """Each row's most specific group with enough calibration rows."""
        import pandas as pd

        n = len(levels[-1])
        out = np.empty(n, dtype=object)
        done = np.zeros(n, dtype=bool)
        for level in levels:
            codes, uniques = pd.factorize(level)
            ok = np.array([self.counts.get(u, 0) >= self.min_bin for u in uniques], dtype=bool)
            take = ~done & ok[codes]
            out[take] = np.asarray(uniques, dtype=object)[codes[take]]
            done |= take
        fallback = ALL if ALL in self.scores else None
        out[~done] = fallback
        return out

    def pvalues(self, nonconformity: np.ndarray, levels: list[np.ndarray]) -> np.ndarray:
        """Conformal p-value of each row in its resolved group."""
        import pandas as pd

        nc = np.asarray(nonconformity, dtype=np.float64)
        out = np.empty(len(nc))
        codes, groups = pd.factorize(self.resolve(levels))
        for j, g in enumerate(groups):
            sel = codes == j
            ref = self.scores[g]
            n = self.counts[g]
            ge = len(ref) - np.searchsorted(ref, nc[sel], side="left")
            out[sel] = (1.0 + ge * (n / len(ref))) / (n + 1.0)
        return out

    def flags(self, pvalues: np.ndarray, alpha: float | None = None) -> np.ndarray:
        """``is_ood``: p-value at or below alpha."""
        return np.asarray(pvalues) <= (self.alpha if alpha is None else alpha)

    def threshold(self, group: str = ALL) -> float:
        """Nonconformity above which a row of ``group`` is flagged at this alpha."""
        ref = self.scores[group]
        n = self.counts[group]
        rank = int(np.ceil((n + 1) * (1 - self.alpha)))
        if rank > n:
            return float("inf")
        return float(ref[min(len(ref) - 1, int(rank * len(ref) / n) - 1)])

    def to_arrays(self, prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON part and arrays part, for persistence."""
        names = sorted(self.scores)
        meta = {
            "alpha": self.alpha,
            "min_bin": self.min_bin,
            "groups": names,
            "counts": [self.counts[n] for n in names],
        }
        arrays = {f"{prefix}.{i}": self.scores[n].astype(np.float64) for i, n in enumerate(names)}
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: dict, arrays: Mapping[str, np.ndarray], prefix: str) -> ConformalCalibrator:
        """Inverse of :meth:`to_arrays`."""
        cal = cls(alpha=float(meta["alpha"]), min_bin=int(meta["min_bin"]))
        for i, (name, count) in enumerate(zip(meta["groups"], meta["counts"], strict=True)):
            cal.scores[name] = np.asarray(arrays[f"{prefix}.{i}"], dtype=np.float64)
            cal.counts[name] = int(count)
        return cal


def benjamini_hochberg(pvalues: np.ndarray, alpha: float) -> np.ndarray:
    """Flags controlling the false discovery rate at ``alpha`` over a batch (BH 1995)."""
    p = np.asarray(pvalues, dtype=np.float64)
    n = len(p)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.argsort(p, kind="stable")
    below = p[order] <= alpha * np.arange(1, n + 1) / n
    flags = np.zeros(n, dtype=bool)
    if below.any():
        last = int(np.flatnonzero(below)[-1])
        flags[order[: last + 1]] = True
    return flags
