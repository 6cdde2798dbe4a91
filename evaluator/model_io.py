"""Saving and loading the learned driving model beside the behaviour model: JSON and arrays, never code.

``roadworthy fit`` writes ``MODEL/driving/`` (:func:`save_driving`) next to the behaviour
density; ``evaluate`` and ``gate`` given that model folder reuse it
(:func:`load_driving`) when it was fitted on the same log with the settings they
ask for, and refit otherwise, saying why. The network's weights are stored as plain
arrays (``allow_pickle=False``) and put back into a freshly built network of the
declared shape: loading runs no code from the files.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from roadworthy.data.jsonio import clean_json
from roadworthy.density.persistence import ModelFileError, load_folder, save_folder
from roadworthy.evaluator.dynamics_torch import ARDynamicsEnsemble, DynamicsEnsemble
from roadworthy.evaluator.logdata import EvalData
from roadworthy.evaluator.model_based import DrivingModel, ModelConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    from roadworthy.evaluator.evaluate_config import EvaluateConfig

FORMAT = "roadworthy-driving-model"
FOLDER = "driving"
#: Bumped whenever what a fitted model means changes (its inputs, its targets): an older one is refitted.
MODEL_VERSION = 10
_ARRAYS = (
    "obs_mean",
    "obs_std",
    "act_mid",
    "act_half",
    "delta_mean",
    "delta_std",
    "order",
    "clip_lo",
    "clip_hi",
    "two_valued",
    "values_lo",
    "values_hi",
    "binary",
    "event_scale",
    "base_rates",
)


def log_fingerprint(data: EvalData) -> str:
    """A short digest of what a driving model was fitted on: the episodes, rows, names and rewards."""
    h = hashlib.sha256()
    h.update("\n".join(data.episode_ids).encode())
    h.update(np.asarray([data.n, data.n_episodes], dtype=np.int64).tobytes())
    h.update("|".join([*data.obs_names, *data.action_names, *data.cost_names]).encode())
    h.update(np.round(data.reward.astype(np.float64), 4).tobytes())
    return h.hexdigest()[:32]


def fit_key(data: EvalData, config: EvaluateConfig) -> dict:
    """What must match for a saved driving model (and its saved checks) to be reused, for an
    evaluation with ``config`` (an EvaluateConfig)."""
    from dataclasses import replace

    heads = int(config.heads)
    return {
        "version": MODEL_VERSION,
        "log": log_fingerprint(data),
        "heads": heads,
        "seed": int(config.seed),
        "crash_rules": list(config.rollout.crash_rules),
        "model": clean_json(asdict(replace(config.model, heads=heads))),
        "fqe": clean_json(asdict(config.fqe_config)),
        "gamma": float(config.gamma),
    }


def save_driving(model: DrivingModel, folder: str | Path, key: dict, checks: dict | None = None) -> Path:
    """Write a fitted driving model to ``folder`` (atomically), with the run-independent checks
    of its log (FQE of the logged behaviour) when given."""
    from roadworthy._version import __version__

    net = model.net
    arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    arrays.update({k: np.asarray(getattr(model, k)) for k in _ARRAYS})
    meta = {
        "roadworthy_version": __version__,
        "key": key,
        "config": clean_json(asdict(model.config)),
        "network": {
            "kind": "autoregressive" if isinstance(net, ARDynamicsEnsemble) else "mixture",
            "d_in": int(net.weights[0].shape[1]),
            "d_state": int(net.d_state),
            "events": int(net.events),
        },
        "learned": list(model.learned),
        "computed": [int(j) for j in model.computed],
        "reward_mean": model.reward_mean,
        "reward_std": model.reward_std,
        "reward_range": list(model.reward_range),
        "terminal_reward": model.terminal_reward,
        "terminal_share": model.terminal_share,
        "losses": [float(x) for x in model.losses],
        "checks": clean_json(checks or {}),
        "groups": [int(g) for g in getattr(model, "groups", [])],
        "slots": {
            "pairs": model.pairs.tolist(),
            "ego_speed": int(model.ego_speed),
            "absent_gap": None if not np.isfinite(model.absent_gap) else float(model.absent_gap),
            "dt": float(model.dt),
            "other_dv": [None if not np.isfinite(v) else float(v) for v in model.other_dv],
        },
    }
    return save_folder(folder, meta, arrays, fmt=FORMAT)


def load_driving(folder: str | Path) -> tuple[DrivingModel, dict, dict]:
    """Load a folder written by :func:`save_driving`; returns the model, its fit key and its saved checks."""
    meta, arrays = load_folder(folder, fmt=FORMAT)
    try:
        cfg = dict(meta["config"])
        cfg["hidden"] = tuple(cfg["hidden"])
        # Fields a later release dropped (``particles`` until 0.1) are ignored.
        config = ModelConfig(**{k: v for k, v in cfg.items() if k in ModelConfig.__dataclass_fields__})
        model = DrivingModel(config)
        for k in _ARRAYS:
            setattr(model, k, arrays[k])
        model.order = model.order.astype(np.int64)
        model.two_valued = model.two_valued.astype(bool)
        model.binary = model.binary.astype(bool)
        model.learned = list(meta["learned"])
        model.computed = [int(j) for j in meta["computed"]]
        model.learned_cols = np.array(
            [j for j in range(len(model.obs_mean)) if j not in set(model.computed)], dtype=np.int64
        )
        for k in ("reward_mean", "reward_std", "terminal_reward"):
            setattr(model, k, float(meta[k]))
        model.reward_range = tuple(float(v) for v in meta["reward_range"])
        model.terminal_share = {str(k): float(v) for k, v in meta["terminal_share"].items()}
        model.losses = list(meta["losses"])
        slots = meta["slots"]
        model.pairs = np.asarray(slots["pairs"], dtype=np.int64).reshape(-1, 3)
        model.ego_speed = int(slots["ego_speed"])
        model.absent_gap = np.inf if slots["absent_gap"] is None else float(slots["absent_gap"])
        model.dt = float(slots["dt"])
        model.other_dv = tuple((-np.inf, np.inf)[i] if v is None else float(v) for i, v in enumerate(slots["other_dv"]))
        net_meta = meta["network"]
        kind = ARDynamicsEnsemble if net_meta["kind"] == "autoregressive" else DynamicsEnsemble
        model.groups = np.asarray(meta["groups"], dtype=np.int64)
        extra = {"groups": model.groups} if kind is DynamicsEnsemble else {}
        net = kind(
            config.heads,
            int(net_meta["d_in"]),
            int(net_meta["d_state"]),
            config.components,
            tuple(config.hidden),
            int(net_meta["events"]),
            0,
            **extra,
        )
        state = {k[len("net.") :]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("net.")}
        net.load_state_dict(state, strict=True)
        net.eval()
        model.net = net
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            folder, f"the driving model is incomplete or inconsistent ({exc})", "refit with `roadworthy fit`"
        ) from None
    return model, dict(meta["key"]), dict(meta.get("checks") or {})


def driving_path(model_folder: str | Path) -> Path:
    """Where a model folder keeps its driving model."""
    return Path(model_folder) / FOLDER


def fit_and_save_driving(
    logs: str | Path, folder: str | Path, config: EvaluateConfig, *, on_stage: Callable[[str], None] | None = None
) -> dict:
    """Fit the driving model of ``logs`` as :func:`roadworthy.evaluator.evaluate.evaluate` would with
    ``config`` (an EvaluateConfig), check FQE of the logged behaviour on the same resamples, and
    save both to ``folder``; returns the fit key."""
    from dataclasses import replace

    from roadworthy.evaluator.bootstrap import episode_bootstrap
    from roadworthy.evaluator.headline import fqe_checks
    from roadworthy.evaluator.logdata import load_eval_data
    from roadworthy.evaluator.model_eval import episode_returns, fit_driving_model

    stage = on_stage or (lambda s: None)
    data = load_eval_data(logs)
    weights = episode_bootstrap(np.random.default_rng(config.seed), config.heads, data.n_episodes)
    stage(f"fitting the driving model ({config.heads} heads, {config.model.steps} steps)")
    model_config = replace(config.model, heads=config.heads)
    model = fit_driving_model(data, model_config, weights, config.rollout.crash_rules, seed=config.seed)
    stage("fitting FQE of the logged behaviour (SARSA) for its held-out checks")
    _, checks = fqe_checks(data, config, weights, episode_returns(data, config.gamma))
    key = fit_key(data, config)
    save_driving(model, folder, key, {"fqe": checks})
    return key


def saved_driving(
    model_folder: str | Path, data: EvalData, config: EvaluateConfig
) -> tuple[DrivingModel | None, str, dict]:
    """The driving model a model folder keeps (and its saved checks), when it fits this log and
    ``config``; else None and why."""
    if model_folder is None or not isinstance(model_folder, str | Path):
        return None, "fitted on the fly", {}
    path = driving_path(model_folder)
    if not path.is_dir():
        return None, f"fitted on the fly ({model_folder} holds no driving model; `roadworthy fit` saves one)", {}
    model, key, checks = load_driving(path)
    want = fit_key(data, config)
    if isinstance(key.get("model"), dict):
        # Settings a later release dropped (``particles``, never used) do not make a model stale.
        key = {**key, "model": {k: v for k, v in key["model"].items() if k in want["model"]}}
    differ = sorted(k for k in want if key.get(k) != want[k])
    if differ:
        what = {"log": "another log", "heads": "other heads", "seed": "another seed", "version": "an older roadworthy"}
        why = ", ".join(what.get(k, f"other {k} settings") for k in differ)
        return None, f"fitted on the fly (the one in {path} was fitted on {why})", {}
    return model, f"loaded from {path}", checks
