"""Coverage: how many of a policy's decisions lie inside the trusted support.

A decision is the policy's action at a logged state; it is covered when the
behaviour density model does not flag it (conformal p-value above the support
alpha). Coverage is reported overall and by behaviour source, scenario and map
cell (squares of ``cell`` metres, for the risk maps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from roadworthy.evaluator.logdata import EvalData


def coverage_by(gate: np.ndarray, data: EvalData, cell: float, per_row: dict[str, np.ndarray] | None = None) -> dict:
    """Coverage per group; ``gate`` is (N, K) bool (out of support).

    ``per_row`` adds per-cell means of further per-row figures to the map cells (the
    evaluator passes the policy's expected cost-to-go from each logged state).
    """
    inside = 1.0 - gate.mean(axis=1)
    per_row = per_row or {}
    frame = pd.DataFrame(
        {
            **per_row,
            "inside": inside,
            "source": data.source,
            "scenario": data.scenario,
            "map": data.map_name,
            "x": data.x,
            "y": data.y,
        }
    )
    out: dict = {}
    for key in ("source", "scenario"):
        g = frame.groupby(key, sort=True)["inside"].agg(["mean", "size"])
        out[key] = {str(k): {"coverage": float(r["mean"]), "rows": int(r["size"])} for k, r in g.iterrows()}
    pos = frame.dropna(subset=["x", "y"])
    cells = []
    if len(pos):
        pos = pos.assign(cx=np.floor(pos["x"] / cell).astype(int), cy=np.floor(pos["y"] / cell).astype(int))
        grouped = pos.groupby(["map", "cx", "cy"], sort=True)
        g = grouped["inside"].agg(["mean", "size"])
        means = grouped[list(per_row)].mean() if per_row else None
        for (m, cx, cy), r in g.iterrows():
            cells.append(
                {
                    "map": str(m),
                    "cell_x": int(cx),
                    "cell_y": int(cy),
                    "x": (cx + 0.5) * cell,
                    "y": (cy + 0.5) * cell,
                    "rows": int(r["size"]),
                    "coverage": float(r["mean"]),
                    **({k: float(means.loc[(m, cx, cy), k]) for k in per_row} if per_row else {}),
                }
            )
    out["map_region"] = {"cell_m": cell, "cells": cells}
    return out
