"""BehaviorModel: density models of a fleet's logged behaviour, calibrated, from logs.

It ties the estimators to driving logs: an episode-level split into training and
calibration sets, a conditional model p(action | state) and a state model
p(state), split-conformal calibration of both per behaviour source (and optional
slices), scoring of logged or policy actions in streamed batches, explanations of
flagged rows, and safe persistence. Nothing here knows a particular feature layout:
any D and A that the log's metadata declare work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from data.dataset import LogDataset, scan_logs
from data.errors import LogError, UsageError
from data.schema import REQUIRED_COLUMNS
from data.validate import LogValidator, list_values
from density.base import DensityModel
from density.calibration import ConformalCalibrator, group_levels, speed_band
from density.gmm import GaussianMixtureDensity
from density.iforest import IsolationForestDensity
from density.knn import KNNDensity
from density.mdn import MDN
from density.persistence import ModelFileError, load_folder, save_folder

#: The estimators a model file may name (never an arbitrary import path).
MODELS: dict[str, type[DensityModel]] = {
    "mdn": MDN,
    "gmm": GaussianMixtureDensity,
    "knn": KNNDensity,
    "iforest": IsolationForestDensity,
}
SLICES = ("speed_band", "map_name", "scenario")
N_REFERENCE = 5_000


@dataclass(frozen=True)
class BehaviorConfig:
    """How a behaviour model is fitted and calibrated.

    Parameters
    ----------
    model : str
        Conditional estimator p(action | state): ``mdn`` (default), ``gmm``, ``knn``, ``iforest``.
    model_params : mapping
        Hyperparameters of that estimator.
    state_model : str
        Estimator of p(state) (``gmm`` by default).
    state_params : mapping
    alpha : float
        False-alarm rate of the OOD flags.
    calibration_fraction : float
        Share of episodes (or blocks) held out for calibration.
    slice_by : tuple of str
        Extra calibration slices among ``speed_band``, ``map_name``, ``scenario``.
    min_bin : int
        Fewest calibration rows for a slice to be calibrated on its own.
    block_steps : int
        0 splits by episode; N > 0 splits long episodes into blocks of N steps
        (for logs with few, long episodes, such as CARLA recordings).
    max_train_rows, max_calibration_rows : int
        Caps; whole episodes are subsampled (seeded) above them.
    seed : int
    """

    model: str = "mdn"
    model_params: Mapping[str, Any] = field(default_factory=dict)
    state_model: str = "gmm"
    state_params: Mapping[str, Any] = field(default_factory=dict)
    alpha: float = 0.01
    calibration_fraction: float = 0.2
    slice_by: tuple[str, ...] = ()
    min_bin: int = 200
    block_steps: int = 0
    max_train_rows: int = 1_000_000
    max_calibration_rows: int = 500_000
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`UsageError` for an invalid setting."""
        for name, value in (("model", self.model), ("state_model", self.state_model)):
            if value not in MODELS:
                raise UsageError(f"unknown {name} '{value}'", f"choose one of {', '.join(MODELS)}")
        if not 0.0 < self.alpha < 1.0:
            raise UsageError(f"alpha must lie in (0, 1), got {self.alpha}", "use e.g. 0.01")
        if not 0.0 < self.calibration_fraction < 1.0:
            raise UsageError(
                f"calibration fraction must lie in (0, 1), got {self.calibration_fraction}", "use e.g. 0.2"
            )
        bad = [s for s in self.slice_by if s not in SLICES]
        if bad:
            raise UsageError(f"unknown slice(s) {bad}", f"slices are {', '.join(SLICES)}")
        if self.block_steps < 0 or self.min_bin < 1:
            raise UsageError("block_steps must be >= 0 and min_bin >= 1", "check the options")


def _units(episode: np.ndarray, step: np.ndarray, block_steps: int) -> np.ndarray:
    if block_steps <= 0:
        return episode
    blocks = (step // block_steps).astype(str)
    return np.char.add(np.char.add(episode.astype(str), "#"), blocks).astype(object)


def obs_action_arrays(batch: pa.RecordBatch | pa.Table, d: int, a: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``obs`` (N, d) and ``action`` (N, a) columns of a batch of log rows as arrays."""
    return list_values(batch.column("obs"), d)[0], list_values(batch.column("action"), a)[0]


class BehaviorModel:
    """A fitted behaviour model; build with :meth:`fit` or :meth:`load`."""

    def __init__(self, config: BehaviorConfig) -> None:
        self.config = config

    # -- fitting ---------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        logs: str | Path | LogDataset,
        config: BehaviorConfig | None = None,
        *,
        on_rows: Callable[[int], None] | None = None,
        on_stage: Callable[[str], None] | None = None,
    ) -> BehaviorModel:
        """Fit and calibrate on a dataset.

        Raises
        ------
        LogError
            For a log that breaks the contract.
        UsageError
            For bad settings or too few episodes to calibrate.
        """
        config = config or BehaviorConfig()
        config.validate()
        ds = logs if isinstance(logs, LogDataset) else scan_logs(logs)
        self = cls(config)
        meta = ds.metadata
        self.obs_names, self.action_names = meta.obs_names, meta.action_names
        self.action_low, self.action_high = np.asarray(meta.action_low), np.asarray(meta.action_high)
        d, a = meta.obs_dim, meta.action_dim
        stage = on_stage or (lambda s: None)

        stage("checking the log and splitting episodes")
        validator = LogValidator(meta, ds.columns)
        unit_rows: dict[Any, int] = {}
        for path, batch in ds.iter_batches():
            validator.consume(path, batch)
            units = _units(
                np.asarray(batch.column("episode_id").to_pylist(), dtype=object),
                batch.column("step").to_numpy(),
                config.block_steps,
            )
            vals, counts = np.unique(units.astype(str), return_counts=True)
            for u, c in zip(vals.tolist(), counts.tolist(), strict=True):
                unit_rows[u] = unit_rows.get(u, 0) + c
            if on_rows:
                on_rows(batch.num_rows)
        validator.finish(ds.source, len(ds.files))
        names = sorted(unit_rows)
        if len(names) < 2:
            raise UsageError(
                f"{ds.source} has {len(names)} episode(s); calibration needs at least 2 held apart",
                "log more episodes, or split long ones with --block-steps N",
            )
        rng = np.random.default_rng(config.seed)
        order = [names[i] for i in rng.permutation(len(names))]
        n_cal = min(len(names) - 1, max(1, round(config.calibration_fraction * len(names))))
        cal_units, train_units = order[:n_cal], order[n_cal:]
        train_units = _cap(train_units, unit_rows, config.max_train_rows)
        cal_units = _cap(cal_units, unit_rows, config.max_calibration_rows)
        split = {u: 0 for u in train_units} | {u: 1 for u in cal_units}

        stage("reading training and calibration rows")
        cols = ["episode_id", "step", "source", "obs", "action", *self._slice_columns(ds)]
        parts: dict[int, dict[str, list]] = {0: {}, 1: {}}
        for _, batch in ds.iter_batches(columns=cols):
            units = _units(
                np.asarray(batch.column("episode_id").to_pylist(), dtype=object),
                batch.column("step").to_numpy(),
                config.block_steps,
            ).astype(str)
            which = np.array([split.get(u, -1) for u in units])
            obs, act = obs_action_arrays(batch, d, a)
            for k in (0, 1):
                sel = which == k
                if not sel.any():
                    continue
                p = parts[k]
                p.setdefault("obs", []).append(obs[sel])
                p.setdefault("action", []).append(act[sel])
                p.setdefault("episode_id", []).append(
                    np.asarray(batch.column("episode_id").to_pylist(), dtype=object)[sel]
                )
                p.setdefault("step", []).append(batch.column("step").to_numpy()[sel])
                p.setdefault("source", []).append(np.asarray(batch.column("source").to_pylist(), dtype=object)[sel])
                for name, vals in self._slice_values(batch, obs).items():
                    p.setdefault(f"slice:{name}", []).append(vals[sel])
        train = {k: np.concatenate(v) for k, v in parts[0].items()}
        cal = {k: np.concatenate(v) for k, v in parts[1].items()}

        stage(f"fitting p(action | state) ({config.model}) on {len(train['obs']):,} rows")
        self.model_ = MODELS[config.model](n_condition=d, **dict(config.model_params))
        self.model_.fit(np.hstack([train["obs"], train["action"]]).astype(np.float64))
        stage(f"fitting p(state) ({config.state_model})")
        self.state_model_ = MODELS[config.state_model](n_condition=0, **dict(config.state_params))
        self.state_model_.fit(train["obs"].astype(np.float64))

        stage(f"calibrating on {len(cal['obs']):,} held-out rows")
        levels = group_levels(cal["source"], self._slices_of(cal), len(cal["obs"]))
        lp = self.model_.score_samples(np.hstack([cal["obs"], cal["action"]]).astype(np.float64))
        slp = self.state_model_.score_samples(cal["obs"].astype(np.float64))
        self.action_cal_ = ConformalCalibrator.fit(
            -lp, levels, alpha=config.alpha, min_bin=config.min_bin, seed=config.seed
        )
        self.state_cal_ = ConformalCalibrator.fit(
            -slp, levels, alpha=config.alpha, min_bin=config.min_bin, seed=config.seed
        )

        pick = np.sort(rng.choice(len(train["obs"]), size=min(N_REFERENCE, len(train["obs"])), replace=False))
        self.reference_ = {
            "obs": train["obs"][pick].astype(np.float64),
            "action": train["action"][pick].astype(np.float64),
            "episode_id": train["episode_id"][pick].astype(str),
            "step": train["step"][pick].astype(np.int64),
        }
        self.summary_ = {
            "dataset": str(ds.source),
            "units": {
                "train": len(train_units),
                "calibration": len(cal_units),
                "split_by": "block" if config.block_steps else "episode",
            },
            "rows": {"train": len(train["obs"]), "calibration": len(cal["obs"])},
            "calibration_mean_logp": float(np.mean(lp)),
            "calibration_mean_state_logp": float(np.mean(slp)),
            "thresholds": {
                g: {"rows": self.action_cal_.counts[g], "nonconformity": _finite_or_none(self.action_cal_.threshold(g))}
                for g in sorted(self.action_cal_.scores)
                if self.action_cal_.counts[g] >= config.min_bin
            },
        }
        return self

    # -- slices --------------------------------------------------------------------------
    def _slice_columns(self, ds: LogDataset) -> list[str]:
        out = []
        for s in self.config.slice_by:
            if s == "speed_band":
                if "speed" in ds.columns:
                    out.append("speed")
                elif not any(n.startswith("speed") for n in self.obs_names):
                    raise UsageError("slice speed_band needs a 'speed' column or a speed* feature", "drop the slice")
            else:
                if s in ds.columns:
                    out.append(s)
        return out

    def _slice_values(self, batch: pa.RecordBatch, obs: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        n = batch.num_rows
        for s in self.config.slice_by:
            if s == "speed_band":
                if "speed" in batch.schema.names:
                    speed = batch.column("speed").to_numpy(zero_copy_only=False).astype(np.float64)
                else:
                    j = next(i for i, nm in enumerate(self.obs_names) if nm.startswith("speed"))
                    speed = obs[:, j]
                out[s] = speed_band(np.nan_to_num(speed))
            elif s in batch.schema.names:
                out[s] = np.asarray(batch.column(s).to_pylist(), dtype=object)
            else:
                out[s] = np.full(n, "unknown", dtype=object)
        return out

    @staticmethod
    def _slices_of(rows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k[len("slice:") :]: v for k, v in rows.items() if k.startswith("slice:")}

    # -- scoring ---------------------------------------------------------------------------
    def check_names(self, obs_names, action_names, where) -> None:
        """Refuse a log (or policy) whose features or actions differ from the model's."""
        for what, mine, theirs in (
            ("obs_names", self.obs_names, obs_names),
            ("action_names", self.action_names, action_names),
        ):
            if tuple(theirs) != tuple(mine):
                diff = next(
                    (
                        f"entry {i}: '{x}' against '{y}'"
                        for i, (x, y) in enumerate(zip(theirs, mine, strict=False))
                        if x != y
                    ),
                    f"{len(theirs)} names against {len(mine)}",
                )
                raise LogError(
                    where,
                    f"the model was fitted on logs with other {what} ({diff})",
                    "score logs with the features the model was fitted on, or fit a model on these logs",
                    column="obs" if what == "obs_names" else "action",
                )

    def score_arrays(
        self,
        obs: np.ndarray,
        action: np.ndarray,
        *,
        source: np.ndarray | None = None,
        slices: Mapping[str, np.ndarray] | None = None,
        alpha: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Log-densities, conformal p-values and flags for rows of (obs, action).

        Parameters
        ----------
        obs : (n, D) array
        action : (n, A) array
        source : (n,) array of str, optional
            Behaviour source of each row; without it (a policy's actions) rows are
            calibrated against all logged rows.
        slices : mapping, optional
            Slice values per configured slice.
        alpha : float, optional
            Override the model's false-alarm rate.
        """
        obs = np.asarray(obs, dtype=np.float64)
        action = np.asarray(action, dtype=np.float64)
        levels = group_levels(source, slices or {}, len(obs))
        lp = self.model_.score_samples(np.hstack([obs, action]))
        slp = self.state_model_.score_samples(obs)
        p = self.action_cal_.pvalues(-lp, levels)
        sp = self.state_cal_.pvalues(-slp, levels)
        return {
            "logp": lp,
            "pvalue": p,
            "is_ood": self.action_cal_.flags(p, alpha),
            "state_logp": slp,
            "state_pvalue": sp,
            "state_is_ood": self.state_cal_.flags(sp, alpha),
        }

    def action_logp(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """log p(action | state) of each row, in the action's physical units."""
        return self.model_.score_samples(np.hstack([np.asarray(obs, np.float64), np.asarray(action, np.float64)]))

    def action_pvalues(self, obs: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Conformal p-values of actions with no behaviour source (a policy's), against all logged rows."""
        out = np.empty(len(obs))
        for i in range(0, len(obs), 65536):
            sl = slice(i, i + 65536)
            lp = self.action_logp(obs[sl], action[sl])
            out[sl] = self.action_cal_.pvalues(-lp, group_levels(None, {}, len(lp)))
        return out

    def action_flags(self, obs: np.ndarray, action: np.ndarray, *, alpha: float | None = None) -> np.ndarray:
        """``is_ood`` of actions with no behaviour source (a policy's), calibrated on all logged rows."""
        return self.action_cal_.flags(self.action_pvalues(obs, action), alpha)

    def iter_scores(
        self,
        logs: str | Path | LogDataset,
        *,
        policy=None,
        alpha: float | None = None,
        batch_size: int = 65_536,
        on_rows: Callable[[int], None] | None = None,
    ) -> Iterator[pa.Table]:
        """Score a dataset batch by batch (validating it), yielding flag tables.

        With ``policy`` (a :class:`data.policy.OnnxPolicy`), the policy's action on
        each logged state is scored instead of the logged action.
        """
        ds = logs if isinstance(logs, LogDataset) else scan_logs(logs)
        self.check_names(ds.metadata.obs_names, ds.metadata.action_names, ds.source)
        validator = LogValidator(ds.metadata, ds.columns)
        cols = [c for c in ds.columns if c in REQUIRED_COLUMNS or c in ("speed", "map_name", "scenario")]
        for path, batch in ds.iter_batches(columns=cols, batch_size=batch_size):
            validator.consume(path, batch)
            out = self.score_batch(batch, policy=policy, alpha=alpha)
            if on_rows:
                on_rows(batch.num_rows)
            yield out
        validator.finish(ds.source, len(ds.files))

    def score_batch(self, batch: pa.Table | pa.RecordBatch, *, policy=None, alpha: float | None = None) -> pa.Table:
        """Flags of one batch of log rows (the unit of work of both engines).

        Parameters
        ----------
        batch : pyarrow.Table or RecordBatch
            Rows with at least ``episode_id, step, source, obs, action`` (and the slice
            columns the model was calibrated by).
        policy : data.policy.OnnxPolicy, optional
            Score the policy's action on each logged state instead of the logged action.
        alpha : float, optional
            Flag level (default: the model's).

        Returns
        -------
        pyarrow.Table
            ``episode_id, step, source, logp, pvalue, is_ood, state_pvalue, state_is_ood``
            (and ``action`` with a policy).
        """
        d, a = len(self.obs_names), len(self.action_names)
        obs, act = obs_action_arrays(batch, d, a)
        source = np.asarray(batch.column("source").to_pylist(), dtype=object)
        if policy is not None:
            act = np.clip(policy.act(obs), self.action_low, self.action_high)
            source = None
        scores = self.score_arrays(obs, act, source=source, slices=self._slice_values(batch, obs), alpha=alpha)
        cols_out = {
            "episode_id": batch.column("episode_id").cast(pa.string()),
            "step": batch.column("step").cast(pa.int64()),
            "source": batch.column("source").cast(pa.string()),
        }
        cols_out.update({k: pa.array(v) for k, v in scores.items()})
        if policy is not None:
            cols_out["action"] = pa.FixedSizeListArray.from_arrays(pa.array(act.astype(np.float32).reshape(-1)), a)
        return pa.table(cols_out)

    # -- explanations ------------------------------------------------------------------------
    def explain(self, obs: np.ndarray, action: np.ndarray, *, k: int = 5) -> dict[str, Any]:
        """Why a (state, action) is unusual.

        Returns
        -------
        dict
            ``action_dims``: per action entry, its standardized distance from what the
            logged behaviour does here (largest first); ``state_features``: per state
            feature, how far it lies from the nearest logged states, in their spread
            (largest first); ``nearest``: the ``k`` nearest logged examples.
        """
        obs = np.asarray(obs, dtype=np.float64).reshape(-1)
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        ref = self.reference_
        scale = ref["obs"].std(axis=0) + 1e-9
        dist = np.sqrt((((ref["obs"] - obs) / scale) ** 2).sum(axis=1))
        near = np.argsort(dist)[: max(k, 20)]
        if isinstance(self.model_, MDN):
            w, mean, std = self.model_.mixture(obs[None])
            z_all = (action - mean[0]) / std[0]
            lik = np.log(w[0] + 1e-300) - 0.5 * (z_all**2).sum(axis=1) - np.log(std[0]).sum(axis=1)
            z = z_all[int(np.argmax(lik))]
        else:
            acts = ref["action"][near]
            z = (action - acts.mean(axis=0)) / (acts.std(axis=0) + 1e-6)
        s_near = ref["obs"][near]
        sz = np.abs(obs - s_near.mean(axis=0)) / (s_near.std(axis=0) + 0.05 * scale)
        lp = self.score_arrays(obs[None], action[None])
        return {
            "logp": float(lp["logp"][0]),
            "pvalue": float(lp["pvalue"][0]),
            "state_pvalue": float(lp["state_pvalue"][0]),
            "action_dims": sorted(
                (
                    {"name": n, "value": float(v), "z": float(zz)}
                    for n, v, zz in zip(self.action_names, action, z, strict=True)
                ),
                key=lambda r: -abs(r["z"]),
            ),
            "state_features": sorted(
                (
                    {"name": n, "value": float(v), "z": float(zz)}
                    for n, v, zz in zip(self.obs_names, obs, sz, strict=True)
                ),
                key=lambda r: -r["z"],
            )[:5],
            "nearest": [
                {
                    "episode_id": str(ref["episode_id"][i]),
                    "step": int(ref["step"][i]),
                    "distance": float(dist[i]),
                    "action": [float(x) for x in ref["action"][i]],
                }
                for i in near[:k]
            ],
        }

    # -- persistence ----------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write JSON + arrays (no pickles) to ``folder``, atomically."""
        from evaluator import __version__

        arrays: dict[str, np.ndarray] = {}
        for prefix, est in (("model", self.model_), ("state_model", self.state_model_)):
            arrays.update({f"{prefix}.{k}": v for k, v in est.get_arrays().items()})
        a_meta, a_arr = self.action_cal_.to_arrays("cal.action")
        s_meta, s_arr = self.state_cal_.to_arrays("cal.state")
        arrays.update(a_arr)
        arrays.update(s_arr)
        arrays.update({f"ref.{k}": v for k, v in self.reference_.items() if k != "episode_id"})
        meta = {
            "roadworthy_version": __version__,
            "config": _jsonable(asdict(self.config)),
            "estimators": {
                "model": {"name": self.config.model, "params": _jsonable(self.model_.get_params())},
                "state_model": {"name": self.config.state_model, "params": _jsonable(self.state_model_.get_params())},
            },
            "obs_names": list(self.obs_names),
            "action_names": list(self.action_names),
            "action_low": self.action_low.tolist(),
            "action_high": self.action_high.tolist(),
            "calibration": {"action": a_meta, "state": s_meta},
            "reference_episode_ids": self.reference_["episode_id"].tolist(),
            "summary": self.summary_,
        }
        return save_folder(folder, meta, arrays)

    @classmethod
    def load(cls, folder: str | Path) -> BehaviorModel:
        """Load a model folder written by :meth:`save` (no code runs from the files)."""
        meta, arrays = load_folder(folder)
        try:
            cfg = dict(meta["config"])
            cfg["slice_by"] = tuple(cfg.get("slice_by", ()))
            self = cls(BehaviorConfig(**cfg))
            self.obs_names = tuple(meta["obs_names"])
            self.action_names = tuple(meta["action_names"])
            self.action_low = np.asarray(meta["action_low"], dtype=np.float64)
            self.action_high = np.asarray(meta["action_high"], dtype=np.float64)
            for attr, prefix in (("model_", "model"), ("state_model_", "state_model")):
                spec = meta["estimators"][prefix]
                if spec["name"] not in MODELS:
                    raise ModelFileError(folder, f"unknown estimator '{spec['name']}'", "refit the model")
                params = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["params"].items()}
                est = MODELS[spec["name"]](**params)
                est.set_arrays({k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix + ".")})
                setattr(self, attr, est)
            self.action_cal_ = ConformalCalibrator.from_arrays(meta["calibration"]["action"], arrays, "cal.action")
            self.state_cal_ = ConformalCalibrator.from_arrays(meta["calibration"]["state"], arrays, "cal.state")
            self.reference_ = {k: arrays[f"ref.{k}"] for k in ("obs", "action", "step")}
            self.reference_["episode_id"] = np.asarray(meta["reference_episode_ids"], dtype=object)
            self.summary_ = meta["summary"]
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(
                folder, f"the model file is incomplete or inconsistent ({exc})", "refit the model"
            ) from None
        return self


def _cap(units: list, rows: Mapping, cap: int) -> list:
    """A prefix of the (already shuffled) units holding at most ``cap`` rows (at least one unit)."""
    out, total = [], 0
    for u in units:
        if out and total + rows[u] > cap:
            break
        out.append(u)
        total += rows[u]
    return out


def _finite_or_none(x: float) -> float | None:
    """JSON has no infinity: a group too small to ever flag has no threshold."""
    return float(x) if np.isfinite(x) else None


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
