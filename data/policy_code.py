"""Policy formats that can run code, for trusted files only, and the one loader for all formats.

:func:`load_policy` is what commands call. ONNX files (contract section 2) load
without running code (:class:`roadworthy.data.policy.OnnxPolicy`). Two more formats are
accepted only with ``allow_code=True`` (the CLI's allow-code flag), because
loading them executes code chosen by whoever wrote the file:

* a ``torch.export`` package (``.pt2``), with the ``roadworthy`` metadata JSON
  stored as an extra file (``torch.export.save(ep, f, extra_files={"roadworthy":
  json})``); ``torch.export.load`` unpickles parts of the archive;
* a Python ``module:callable`` spec: the callable is imported and called without
  arguments and returns an object with ``obs_names``, ``action_names``, an optional
  ``name`` and either ``distribution(obs) -> (mean, log_std or None)`` or
  ``__call__(obs) -> action``.

Pickled ``torch.save`` checkpoints (``.pt``, ``.pth``, ``.pkl``) are refused in every
case, with the way to export them to ONNX.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from roadworthy.data.errors import PolicyError
from roadworthy.data.policy import (
    _EXPORT_HINT,
    METADATA_KEY,
    OnnxPolicy,
    PolicyInfo,
    check_finite_outputs,
    check_names,
    probe,
)

PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib"})
_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_ALLOW_HINT = "set `allow_code` only if you trust the file's author, or export the policy to ONNX: " + _EXPORT_HINT


class CodePolicy(OnnxPolicy):
    """A policy run by Python code (``.pt2`` or ``module:callable``); same interface as ONNX."""

    def __init__(self, info: PolicyInfo, fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]) -> None:
        self.info = info
        self._fn = fn

    def distribution(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean action and log standard deviation (``None`` when deterministic)."""
        mean, log_std = self._fn(np.ascontiguousarray(obs, dtype=np.float32))
        mean = np.asarray(mean, dtype=np.float32)
        log_std = None if log_std is None else np.asarray(log_std, dtype=np.float32)
        check_finite_outputs(self.info.path, obs, {"mean": mean, "log_std": log_std})
        return mean, log_std


def is_code_spec(spec: str | Path) -> bool:
    """True for a ``module:callable`` spec that is not an existing file."""
    s = str(spec)
    return bool(_SPEC.match(s)) and not Path(s).exists()


def load_policy(
    spec: str | Path,
    *,
    obs_names: Sequence[str] | None = None,
    action_names: Sequence[str] | None = None,
    allow_code: bool = False,
) -> OnnxPolicy:
    """Load a candidate policy of any accepted format.

    Parameters
    ----------
    spec : str or Path
        An ``.onnx`` file; with ``allow_code``, also a ``.pt2`` file or ``module:callable``.
    obs_names, action_names : sequence of str, optional
        The log's names; the policy's must equal them.
    allow_code : bool
        Accept formats whose loading runs code from the file (trusted files only).

    Raises
    ------
    PolicyError
        For a refused format, a malformed file or names that do not match.
    """
    if is_code_spec(spec):
        if not allow_code:
            raise PolicyError(
                Path(str(spec)),
                "a Python module:callable policy runs code when it is imported and is refused by default",
                _ALLOW_HINT,
            )
        policy = _load_callable(str(spec))
    else:
        path = Path(spec)
        suffix = path.suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise PolicyError(
                path,
                f"'{suffix}' files are pickled PyTorch checkpoints or modules; unpickling runs arbitrary code, "
                "so they are never loaded, not even with `allow_code`",
                _EXPORT_HINT,
            )
        if suffix != ".pt2":
            return OnnxPolicy.load(path, obs_names=obs_names, action_names=action_names)
        if not allow_code:
            raise PolicyError(
                path,
                "a torch.export .pt2 package is unpickled when loaded, which can run code, and is refused by default",
                _ALLOW_HINT,
            )
        policy = _load_pt2(path)
    info = policy.info
    check_names(info.path, info.name, info.obs_names, info.action_names, obs_names, action_names)
    probe(policy)
    return policy


def _meta(path: Path, text: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    try:
        meta = json.loads(text)
        return str(meta["name"]), tuple(map(str, meta["obs_names"])), tuple(map(str, meta["action_names"]))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PolicyError(
            path,
            f"the '{METADATA_KEY}' metadata is missing or not JSON with name, obs_names and action_names ({exc})",
            f'save it with torch.export.save(ep, f, extra_files={{"{METADATA_KEY}": json.dumps(meta)}})',
        ) from None


def _load_pt2(path: Path) -> CodePolicy:
    import torch

    if not path.is_file():
        raise PolicyError(path, "no such policy file", "check the path")
    extra = {METADATA_KEY: ""}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as exc:
        raise PolicyError(
            path, f"not a readable torch.export package ({type(exc).__name__}: {exc})", "save it with torch.export.save"
        ) from None
    name, obs_names, action_names = _meta(path, extra[METADATA_KEY])
    module = program.module()

    def fn(obs: np.ndarray):
        with torch.no_grad():
            out = module(torch.from_numpy(obs))
        if isinstance(out, tuple | list):
            return out[0].numpy(), (out[1].numpy() if len(out) > 1 else None)
        return out.numpy(), None

    stochastic = isinstance(module(torch.zeros(1, len(obs_names))), tuple | list)
    return CodePolicy(PolicyInfo(name, obs_names, action_names, stochastic, path), fn)


def _load_callable(spec: str) -> CodePolicy:
    mod_name, attr = spec.split(":")
    where = Path(spec)
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
        obj = factory()
    except Exception as exc:
        raise PolicyError(
            where,
            f"cannot import and call {spec} ({type(exc).__name__}: {exc})",
            "check that the module is on PYTHONPATH",
        ) from None
    try:
        obs_names = tuple(map(str, obj.obs_names))
        action_names = tuple(map(str, obj.action_names))
    except (AttributeError, TypeError):
        raise PolicyError(
            where, f"{spec}() returned an object without obs_names and action_names", "add both as lists of str"
        ) from None
    name = str(getattr(obj, "name", attr))
    if hasattr(obj, "distribution"):
        fn = obj.distribution
    elif callable(obj):

        def fn(obs):
            return obj(obs), None
    else:
        raise PolicyError(
            where,
            f"{spec}() returned an object that is neither callable nor has distribution()",
            "return an object with distribution(obs) or __call__(obs)",
        )
    stochastic = fn(np.zeros((1, len(obs_names)), dtype=np.float32))[1] is not None
    return CodePolicy(PolicyInfo(name, obs_names, action_names, stochastic, where), fn)
