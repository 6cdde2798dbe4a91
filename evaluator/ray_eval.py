"""``evaluate`` on the Ray engine: the row-wise work in Ray Data actors, FQE on the driver.

Distributed, with the local engine's functions: each policy's view of the logged
states (policy inference and density gating, :func:`roadworthy.evaluator.policy_view.view_arrays`)
and the behaviour density of the logged actions, in ``map_batches`` actors that load
the policy and the behaviour model once; the logged behaviour's per-episode
discounted returns as a Ray ``groupby`` sum.

On the driver: Fitted Q Evaluation, importance sampling and coverage. FQE trains
on at most ``FQEConfig.max_rows`` rows (300,000 by default, whole episodes
subsampled with the seed), and its 5 x (H + 20) x 80 gradient steps are a
sequential chain that data-parallel training on 2-core workers would only slow down
with synchronisation; the driver needs the log's arrays in memory (about
(2 D + A + 16) x 8 bytes per row: 0.4 GB per million rows of the simulator's 19
features).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from roadworthy.data.ray_engine import collect

if TYPE_CHECKING:
    from roadworthy.evaluator.evaluate_config import EvaluateConfig
    from roadworthy.evaluator.logdata import EvalData

VIEW_COLUMNS = ("episode_id", "step", "obs", "action", "behavior_logp")


def _flat(arr: np.ndarray) -> pa.Array:
    n = arr.shape[0]
    width = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), width) if n else pa.array([], pa.null())


class ViewActor:
    """A Ray actor holding one policy and the behaviour model; returns each row's view."""

    def __init__(self, policy: str, model_dir: str, settings: dict, allow_code: bool) -> None:
        from roadworthy.data.policy_code import load_policy
        from roadworthy.density.behavior import BehaviorModel

        self.model = BehaviorModel.load(model_dir)
        self.policy = load_policy(
            policy, obs_names=self.model.obs_names, action_names=self.model.action_names, allow_code=allow_code
        )
        self.s = settings

    def __call__(self, batch: pa.Table) -> pa.Table:
        from roadworthy.density.behavior import obs_action_arrays
        from roadworthy.evaluator.policy_view import episode_keys, view_arrays

        obs, act = obs_action_arrays(batch, len(self.model.obs_names), len(self.model.action_names))
        ids = batch.column("episode_id").to_pylist()
        steps = batch.column("step").to_numpy().astype(np.int64)
        v = view_arrays(
            obs,
            act,
            episode_keys(ids),
            steps,
            self.policy,
            self.model,
            action_low=np.asarray(self.s["action_low"]),
            action_high=np.asarray(self.s["action_high"]),
            support_alpha=self.s["support_alpha"],
            trust_alpha=self.s["trust_alpha"],
            next_samples=self.s["next_samples"],
            seed=self.s["seed"],
        )
        cols = {
            "episode_id": pa.array([str(i) for i in ids]),
            "step": pa.array(steps),
            **{k: _flat(np.asarray(v[k], dtype=np.float64)) for k in ("acts", "trusted", "mean")},
            "gate": _flat(v["gate"]),
            "out_of_bounds": _flat(v["out_of_bounds"]),
        }
        if "log_std" in v:
            cols["log_std"] = _flat(v["log_std"])
        return pa.table(cols)


class LogpActor:
    """A Ray actor holding the behaviour model; returns log mu(a | s) of the logged actions."""

    def __init__(self, model_dir: str) -> None:
        from roadworthy.density.behavior import BehaviorModel

        self.model = BehaviorModel.load(model_dir)

    def __call__(self, batch: pa.Table) -> pa.Table:
        from roadworthy.density.behavior import obs_action_arrays
        from roadworthy.evaluator.policy_view import behavior_logp_arrays

        obs, act = obs_action_arrays(batch, len(self.model.obs_names), len(self.model.action_names))
        if "behavior_logp" in batch.column_names:
            logged = batch.column("behavior_logp").to_numpy(zero_copy_only=False).astype(np.float64)
        else:
            logged = np.full(len(obs), np.nan)
        out = behavior_logp_arrays(obs, act, np.nan_to_num(logged, nan=np.nan), self.model)
        return pa.table(
            {"episode_id": batch.column("episode_id").cast(pa.string()), "step": batch.column("step"), "logp": out}
        )


def _discounted(batch: pa.Table, channels: list[str], gamma: float) -> pa.Table:
    """gamma^step x each channel, per row (summed per episode by the groupby)."""
    step = batch.column("step").to_numpy().astype(np.float64)
    disc = gamma**step
    cols = {"episode_id": batch.column("episode_id").cast(pa.string())}
    for c in channels:
        if c in batch.column_names:
            vals = batch.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
            vals = np.nan_to_num(vals, nan=0.0)
        else:
            vals = np.zeros(len(step))
        cols[c] = pa.array(disc * vals)
    return pa.table(cols)


def _align(data: EvalData, frame: pd.DataFrame) -> np.ndarray:
    """Row positions in ``data`` of (episode_id, step) pairs."""
    want = pd.MultiIndex.from_arrays([np.asarray(data.episode_ids, dtype=object)[data.episode], data.step])
    got = pd.MultiIndex.from_arrays([frame["episode_id"].astype(str).to_numpy(), frame["step"].to_numpy()])
    idx = want.get_indexer(got)
    if (idx < 0).any() or len(np.unique(idx)) != data.n:
        raise RuntimeError("the Ray engine returned rows that do not match the log; run `roadworthy validate`")
    return idx


def _unflat(table: pa.Table, col: str, shape: tuple[int, ...], idx: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    flat = table.column(col).combine_chunks().flatten().to_numpy(zero_copy_only=False).astype(dtype)
    out = np.empty((len(idx), *shape), dtype=dtype)
    out[idx] = flat.reshape(len(idx), *shape)
    return out


class RayRowWork:
    """The distributed row-wise work of one evaluation (use inside :func:`roadworthy.data.ray_engine.ray_session`)."""

    def __init__(
        self, logs: str | Path, data: EvalData, model: str | Path, config: EvaluateConfig, allow_code: bool = False
    ) -> None:
        self.logs, self.data, self.config, self.allow_code = logs, data, config, allow_code
        self._tmp = None
        if isinstance(model, str | Path):
            self.model_dir = str(model)
        else:
            # Actors load models from disk: save the one fitted on the fly once.
            self._tmp = tempfile.TemporaryDirectory(prefix="roadworthy-model-")
            model.save(Path(self._tmp.name) / "model")
            self.model_dir = str(Path(self._tmp.name) / "model")

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def _map(self, cls: type, kwargs: dict) -> pa.Table:
        from roadworthy.data.ray_engine import actor_count, read_logs

        return read_logs(self.logs, VIEW_COLUMNS).map_batches(
            cls,
            fn_constructor_kwargs=kwargs,
            batch_format="pyarrow",
            batch_size=16_384,
            concurrency=actor_count(),
            num_cpus=1,
        )

    def behavior_logp(self) -> np.ndarray:
        """log mu(a | s) of every logged action, in ``data``'s row order."""
        t = collect(self._map(LogpActor, {"model_dir": self.model_dir}))
        idx = _align(self.data, t.select(["episode_id", "step"]).to_pandas())
        out = np.empty(self.data.n)
        out[idx] = t.column("logp").to_numpy()
        return out

    def view(self, policy: str | Path) -> dict[str, np.ndarray]:
        """:func:`view_arrays` of one policy for every row, in ``data``'s row order."""
        c, d = self.config, self.data
        settings = {
            "action_low": d.action_low.tolist(),
            "action_high": d.action_high.tolist(),
            "support_alpha": c.support_alpha,
            "trust_alpha": c.trust_alpha,
            "next_samples": c.next_samples,
            "seed": c.seed,
        }
        kwargs = {
            "policy": str(policy),
            "model_dir": self.model_dir,
            "settings": settings,
            "allow_code": self.allow_code,
        }
        t = collect(self._map(ViewActor, kwargs))
        idx = _align(d, t.select(["episode_id", "step"]).to_pandas())
        a = d.action.shape[1]
        k = t.column("gate").type.list_size
        out = {
            "acts": _unflat(t, "acts", (k, a), idx),
            "trusted": _unflat(t, "trusted", (k, a), idx),
            "mean": _unflat(t, "mean", (a,), idx),
            "gate": _unflat(t, "gate", (k,), idx, dtype=bool),
            "out_of_bounds": _unflat(t, "out_of_bounds", (k,), idx, dtype=bool),
        }
        if "log_std" in t.column_names:
            out["log_std"] = _unflat(t, "log_std", (a,), idx)
        return out

    def episode_returns(self) -> np.ndarray:
        """(n_episodes, 1 + C) discounted returns of reward and each cost, by a Ray groupby sum."""
        from roadworthy.data.ray_engine import read_logs

        surrogate = set(self.data.surrogate_names)
        names = ["reward", *(c for c in self.data.cost_names if c not in surrogate)]
        # Report names drop the cost_ prefix of their log columns (data.schema.cost_name).
        channels = [n if n in ("reward", "collision", "off_road", "disengagement") else f"cost_{n}" for n in names]
        ds = read_logs(self.logs, ["episode_id", "step", *channels]).map_batches(
            _discounted, fn_kwargs={"channels": channels, "gamma": self.config.gamma}, batch_format="pyarrow"
        )
        sums = ds.groupby("episode_id").sum(channels).to_pandas()
        sums = sums.rename(columns={f"sum({c})": c for c in channels})
        pos = pd.Index(np.asarray(self.data.episode_ids, dtype=object)).get_indexer(sums["episode_id"].astype(str))
        logged = np.zeros((len(self.data.episode_ids), len(channels)))
        logged[pos] = sums[channels].to_numpy(dtype=np.float64)
        if not surrogate:
            return logged
        # Surrogate channels are functions of obs, computed from the arrays the driver holds.
        from roadworthy.evaluator.model_eval import episode_returns

        out = episode_returns(self.data, self.config.gamma)
        keep = [0, *(1 + j for j, c in enumerate(self.data.cost_names) if c not in surrogate)]
        out[:, keep] = logged
        return out
