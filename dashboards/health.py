"""Data health: schema, counts, sources, and whatever the validator rejected."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from roadworthy.data.errors import RoadworthyError


def data_health(logs: str | Path) -> dict:
    """Validation result of a log, for display.

    Returns
    -------
    dict
        ``ok`` (bool); when ok, ``summary`` (the :func:`roadworthy.data.validate_logs` counts),
        ``schema`` (DataFrame of column, Arrow type, nullable) and ``metadata``; when
        not, ``error`` (the one-paragraph message naming file, row and fix) and, when
        the footers could be read, ``schema``.
    """
    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.validate import validate_logs

    out: dict = {"ok": True}
    try:
        ds = scan_logs(logs)
        out["schema"] = pd.DataFrame(
            {
                "column": ds.schema.names,
                "type": [str(f.type) for f in ds.schema],
                "nullable": [f.nullable for f in ds.schema],
            }
        )
        out["files"] = len(ds.files)
    except RoadworthyError as exc:
        return {"ok": False, "error": str(exc)}
    try:
        summary = validate_logs(logs).to_dict()
    except RoadworthyError as exc:
        return {**out, "ok": False, "error": str(exc)}
    out["summary"] = summary
    out["metadata"] = summary.get("metadata", {})
    return out


def source_table(summary: dict) -> pd.DataFrame:
    """Rows per behaviour source and episodes by the source they start with."""
    rows = summary.get("rows_by_source", {})
    eps = summary.get("episodes_by_start_source", {})
    names = sorted(set(rows) | set(eps))
    return pd.DataFrame(
        {
            "source": names,
            "rows": [rows.get(n, 0) for n in names],
            "episodes starting": [eps.get(n, 0) for n in names],
        }
    )


def count_table(summary: dict) -> pd.DataFrame:
    """The scalar counts of a summary as a two-column table."""
    keys = [
        "files",
        "rows",
        "episodes",
        "duration_s",
        "disengagements",
        "collision_rows",
        "collision_episodes",
        "off_road_rows",
        "terminal_episodes",
        "truncated_episodes",
        "behavior_logp_rows",
        "skipped_rows",
    ]
    return pd.DataFrame(
        {"count": [k for k in keys if k in summary], "value": [summary[k] for k in keys if k in summary]}
    )
