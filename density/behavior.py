"""BehaviorModel: density models of a fleet's logged behaviour, calibrated, from logs.

It ties the estimators to driving logs: an episode-level split into training and
calibration sets, a conditional model p(action | state) and a state model
p(state), split-conformal calibration of both per behaviour source (and optional
slices), scoring of logged or policy actions in streamed batches, explanations of
flagged rows, and safe persistence. Nothing here knows a particular feature layout:
any D and A that the log's metadata declare work. Settings live in
:mod:`~roadworthy.density.behavior_config`, the split and the streamed reads in
:mod:`~roadworthy.density.behavior_data`, files in :mod:`~roadworthy.density.behavior_io`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from roadworthy.data.dataset import LogDataset, scan_logs
from roadworthy.data.errors import LogError
from roadworthy.data.schema import REQUIRED_COLUMNS
from roadworthy.data.validate import LogValidator
from roadworthy.density.behavior_config import MODELS, N_REFERENCE, SLICES, BehaviorConfig
from roadworthy.density.behavior_data import obs_action_arrays, read_split, slice_values, slices_of, split_units
from roadworthy.density.calibration import ConformalCalibrator, group_levels
from roadworthy.density.mdn import MDN

if TYPE_CHECKING:
    from collections.abc import Sequence

    from roadworthy.data.policy import OnnxPolicy

__all__ = ["MODELS", "SLICES", "BehaviorConfig", "BehaviorModel", "obs_action_arrays"]


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
        stage = on_stage or (lambda s: None)
        stage("checking the log and splitting episodes")
        train_units, cal_units, rng = split_units(ds, config, on_rows)
        stage("reading training and calibration rows")
        train, cal = read_split(ds, config, self.obs_names, train_units, cal_units)
        self._fit_estimators(train, stage)
        stage(f"calibrating on {len(cal['obs']):,} held-out rows")
        lp, slp = self._calibrate(cal)
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

    def _fit_estimators(self, train: dict[str, np.ndarray], stage: Callable[[str], None]) -> None:
        config, d = self.config, train["obs"].shape[1]
        stage(f"fitting p(action | state) ({config.model}) on {len(train['obs']):,} rows")
        self.model_ = MODELS[config.model](n_condition=d, **dict(config.model_params))
        self.model_.fit(np.hstack([train["obs"], train["action"]]).astype(np.float64))
        stage(f"fitting p(state) ({config.state_model})")
        self.state_model_ = MODELS[config.state_model](n_condition=0, **dict(config.state_params))
        self.state_model_.fit(train["obs"].astype(np.float64))

    def _calibrate(self, cal: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Split-conformal thresholds of both models; the calibration rows' log-densities."""
        config = self.config
        levels = group_levels(cal["source"], slices_of(cal), len(cal["obs"]))
        lp = self.model_.score_samples(np.hstack([cal["obs"], cal["action"]]).astype(np.float64))
        slp = self.state_model_.score_samples(cal["obs"].astype(np.float64))
        kw = {"alpha": config.alpha, "min_bin": config.min_bin, "seed": config.seed}
        self.action_cal_ = ConformalCalibrator.fit(-lp, levels, **kw)
        self.state_cal_ = ConformalCalibrator.fit(-slp, levels, **kw)
        return lp, slp

    # -- scoring ---------------------------------------------------------------------------
    def check_names(self, obs_names: Sequence[str], action_names: Sequence[str], where: str) -> None:
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

    def iter_scores(
        self,
        logs: str | Path | LogDataset,
        *,
        policy: OnnxPolicy | None = None,
        alpha: float | None = None,
        batch_size: int = 65_536,
        on_rows: Callable[[int], None] | None = None,
    ) -> Iterator[pa.Table]:
        """Score a dataset batch by batch (validating it), yielding flag tables.

        With ``policy`` (a :class:`roadworthy.data.policy.OnnxPolicy`), the policy's action on
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

    def score_batch(
        self, batch: pa.Table | pa.RecordBatch, *, policy: OnnxPolicy | None = None, alpha: float | None = None
    ) -> pa.Table:
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
        oob = None
        if policy is not None:
            raw = policy.act(obs)
            # An action outside the log's bounds is clipped to be scored and flagged as OOD.
            oob = ((raw < self.action_low) | (raw > self.action_high)).any(axis=1)
            act = np.clip(raw, self.action_low, self.action_high)
            source = None
        scores = self.score_arrays(
            obs, act, source=source, slices=slice_values(self.config, self.obs_names, batch, obs), alpha=alpha
        )
        cols_out = {
            "episode_id": batch.column("episode_id").cast(pa.string()),
            "step": batch.column("step").cast(pa.int64()),
            "source": batch.column("source").cast(pa.string()),
        }
        if oob is not None:
            scores["is_ood"] = scores["is_ood"] | oob
            scores["out_of_bounds"] = oob
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
        """Write JSON + arrays (no pickles) to ``folder``, atomically (:mod:`~roadworthy.density.behavior_io`)."""
        from roadworthy.density.behavior_io import save_behavior

        return save_behavior(self, folder)

    @classmethod
    def load(cls, folder: str | Path) -> BehaviorModel:
        """Load a model folder written by :meth:`save` (no code runs from the files)."""
        from roadworthy.density.behavior_io import load_behavior

        return load_behavior(cls, folder)


def _finite_or_none(x: float) -> float | None:
    """JSON has no infinity: a group too small to ever flag has no threshold."""
    return float(x) if np.isfinite(x) else None
