"""Strict JSON for every output: one cleaner for reports, verdicts and model metadata."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def clean_json(obj: Any) -> Any:
    """A value made strict-JSON: NaN and infinities become null, numpy scalars and arrays
    plain numbers and lists, paths strings, tuples lists, keys strings."""
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return clean_json(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    """Deterministic, strict JSON text (keys keep their order: it is meaningful)."""
    return json.dumps(clean_json(obj), indent=2, allow_nan=False) + "\n"
