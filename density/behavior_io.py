"""Saving and loading behaviour models: JSON and plain arrays, never code.

A model folder names its estimators by key (:data:`~roadworthy.density.behavior_config.MODELS`),
never by import path, so loading one cannot run anything from the file.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.data.jsonio import clean_json
from roadworthy.density.behavior_config import MODELS, BehaviorConfig
from roadworthy.density.calibration import ConformalCalibrator
from roadworthy.density.persistence import ModelFileError, load_folder, save_folder

if TYPE_CHECKING:
    from roadworthy.density.behavior import BehaviorModel


def save_behavior(model: BehaviorModel, folder: str | Path) -> Path:
    """Write JSON + arrays (no pickles) to ``folder``, atomically."""
    from roadworthy._version import __version__

    arrays: dict[str, np.ndarray] = {}
    for prefix, est in (("model", model.model_), ("state_model", model.state_model_)):
        arrays.update({f"{prefix}.{k}": v for k, v in est.get_arrays().items()})
    a_meta, a_arr = model.action_cal_.to_arrays("cal.action")
    s_meta, s_arr = model.state_cal_.to_arrays("cal.state")
    arrays.update(a_arr)
    arrays.update(s_arr)
    arrays.update({f"ref.{k}": v for k, v in model.reference_.items() if k != "episode_id"})
    meta = {
        "roadworthy_version": __version__,
        "config": clean_json(asdict(model.config)),
        "estimators": {
            "model": {"name": model.config.model, "params": clean_json(model.model_.get_params())},
            "state_model": {"name": model.config.state_model, "params": clean_json(model.state_model_.get_params())},
        },
        "obs_names": list(model.obs_names),
        "action_names": list(model.action_names),
        "action_low": model.action_low.tolist(),
        "action_high": model.action_high.tolist(),
        "calibration": {"action": a_meta, "state": s_meta},
        "reference_episode_ids": model.reference_["episode_id"].tolist(),
        "summary": model.summary_,
    }
    return save_folder(folder, meta, arrays)


def load_behavior(cls: type[BehaviorModel], folder: str | Path) -> BehaviorModel:
    """Load a model folder written by :func:`save_behavior` (no code runs from the files)."""
    meta, arrays = load_folder(folder)
    try:
        cfg = dict(meta["config"])
        cfg["slice_by"] = tuple(cfg.get("slice_by", ()))
        model = cls(BehaviorConfig(**cfg))
        model.obs_names = tuple(meta["obs_names"])
        model.action_names = tuple(meta["action_names"])
        model.action_low = np.asarray(meta["action_low"], dtype=np.float64)
        model.action_high = np.asarray(meta["action_high"], dtype=np.float64)
        for attr, prefix in (("model_", "model"), ("state_model_", "state_model")):
            spec = meta["estimators"][prefix]
            if spec["name"] not in MODELS:
                raise ModelFileError(folder, f"unknown estimator '{spec['name']}'", "refit the model")
            params = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["params"].items()}
            est = MODELS[spec["name"]](**params)
            est.set_arrays({k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix + ".")})
            setattr(model, attr, est)
        model.action_cal_ = ConformalCalibrator.from_arrays(meta["calibration"]["action"], arrays, "cal.action")
        model.state_cal_ = ConformalCalibrator.from_arrays(meta["calibration"]["state"], arrays, "cal.state")
        model.reference_ = {k: arrays[f"ref.{k}"] for k in ("obs", "action", "step")}
        model.reference_["episode_id"] = np.asarray(meta["reference_episode_ids"], dtype=object)
        model.summary_ = meta["summary"]
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(
            folder, f"the model file is incomplete or inconsistent ({exc})", "refit the model"
        ) from None
    return model
