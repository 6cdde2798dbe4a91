"""Saving models as JSON plus plain arrays; loading never executes code.

A model folder holds ``model.json`` (configuration, names, calibration tables,
package version) and ``arrays.npz`` (numbers only, read with
``allow_pickle=False``). Estimator classes are looked up in a fixed registry by
name, never imported from a path in the file. The folder is written under a
temporary name and renamed into place.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from roadworthy.data.errors import RoadworthyError
from roadworthy.data.writer import staging_dir

FORMAT = "roadworthy-behavior-model"
FORMAT_VERSION = 1
META_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"


class ModelFileError(RoadworthyError):
    """A model folder that cannot be loaded."""

    def __init__(self, path: str | Path, problem: str, hint: str) -> None:
        super().__init__(f"{path}: {problem.rstrip('.')}. Hint: {hint.rstrip('.')}.")


def save_folder(folder: str | Path, meta: dict[str, Any], arrays: dict[str, np.ndarray], *, fmt: str = FORMAT) -> Path:
    """Write ``meta`` and ``arrays`` to ``folder`` atomically (replacing it); ``fmt`` names the kind of model."""
    folder = Path(folder)
    with staging_dir(folder) as staging:
        body = {"format": fmt, "format_version": FORMAT_VERSION, **meta}
        (staging / META_FILE).write_text(json.dumps(body, indent=2, allow_nan=False) + "\n")
        with open(staging / ARRAYS_FILE, "wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v) for k, v in arrays.items()})
    return folder


def load_folder(folder: str | Path, *, fmt: str = FORMAT) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a model folder of kind ``fmt``; raises :class:`ModelFileError` with a fix when it is not one."""
    folder = Path(folder)
    meta_path, arr_path = folder / META_FILE, folder / ARRAYS_FILE
    if not meta_path.is_file() or not arr_path.is_file():
        raise ModelFileError(
            folder,
            f"not a roadworthy model folder (expected {META_FILE} and {ARRAYS_FILE})",
            "fit one with `roadworthy fit LOGS -o MODEL`",
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(meta_path, f"not valid JSON ({exc})", "refit the model") from None
    if not isinstance(meta, dict):
        raise ModelFileError(meta_path, f"holds a JSON {type(meta).__name__}, not an object", "refit the model")
    if meta.get("format") != fmt:
        raise ModelFileError(meta_path, f"format is {meta.get('format')!r}, not {fmt!r}", "refit the model")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            meta_path,
            f"format version {meta.get('format_version')} is not supported (this roadworthy reads {FORMAT_VERSION})",
            "refit the model with this version of roadworthy",
        )
    _check_array_sizes(arr_path)
    try:
        with np.load(arr_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFileError(
            arr_path,
            f"the arrays cannot be read: truncated, damaged or pickled ({type(exc).__name__}: {exc})",
            "refit the model",
        ) from None
    return meta, arrays


#: Largest total size of a model folder's arrays once unpacked (bytes): a model is
#: megabytes; a file claiming more is damaged or hostile and is not unpacked.
MAX_ARRAY_BYTES = 2 * 1024**3


def _check_array_sizes(arr_path: Path) -> None:
    """Refuse an arrays file whose members are not plain .npy or would unpack too large."""
    try:
        with zipfile.ZipFile(arr_path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ModelFileError(
            arr_path, f"the arrays file is truncated or damaged ({type(exc).__name__}: {exc})", "refit the model"
        ) from None
    total = sum(i.file_size for i in infos)
    if total > MAX_ARRAY_BYTES or any(not i.filename.endswith(".npy") for i in infos):
        raise ModelFileError(
            arr_path,
            f"the arrays file holds {len(infos)} member(s) unpacking to {total:,} bytes (at most "
            f"{MAX_ARRAY_BYTES:,} bytes of .npy arrays are read)",
            "refit the model",
        )
