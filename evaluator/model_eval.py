"""Model-based evaluation of policies on a log: one learned model, every policy in it.

:class:`ModelEvaluator` fits the driving model (:mod:`roadworthy.evaluator.model_based`) once on
the log, then drives each policy in it (:mod:`roadworthy.evaluator.model_rollout`) and returns
per-head figures on the episode resamples shared with the logged behaviour's own
figures. It also drives the logged behaviour itself (actions drawn from the
behaviour density) from each member's *out-of-bag* starts, the episodes that member
never trained on, and compares the result with those episodes' logged returns: a
held-out check of the model on the one policy whose value the logs show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.evaluator.logdata import EvalData
from roadworthy.evaluator.model_based import DrivingModel, ModelConfig
from roadworthy.evaluator.model_rollout import RolloutSettings, SimResult, Support, simulate
from roadworthy.evaluator.policy_view import row_normals
from roadworthy.evaluator.world import World, explained_events

if TYPE_CHECKING:
    from roadworthy.data.policy import OnnxPolicy
    from roadworthy.density.behavior import BehaviorModel


def start_horizons(data: EvalData) -> np.ndarray:
    """Steps to simulate from each logged start: the log's horizon, or the episode's own
    length when it was cut short without a crash (the log ended)."""
    lengths = np.bincount(data.episode, minlength=data.n_episodes)[data.episode[data.starts]]
    last = np.r_[data.starts[1:] - 1, data.n - 1]
    crashed = data.terminal[last]
    return np.where(crashed, data.horizon, lengths)


def episode_returns(data: EvalData, gamma: float) -> np.ndarray:
    """Discounted logged returns (n_episodes, 1 + C): value, then each cost channel."""
    disc = gamma ** data.step.astype(np.float64)
    channels = np.column_stack([data.reward, data.costs]) if data.costs.size else data.reward[:, None]
    return np.stack(
        [
            np.bincount(data.episode, weights=disc * channels[:, j], minlength=data.n_episodes)
            for j in range(channels.shape[1])
        ],
        axis=1,
    )


def oob_check(pred_rows: np.ndarray, logged_rows: np.ndarray, oob: np.ndarray) -> dict:
    """A held-out check: per member, mean predicted and logged returns over its out-of-bag rows.

    Parameters
    ----------
    pred_rows : (E, S, 1 + C) predicted returns per member and start (or episode)
    logged_rows : (S, 1 + C) logged returns
    oob : (E, S) bool, the rows each member never trained on

    Returns
    -------
    dict
        ``predicted``, ``logged``, ``error`` pooled over members (1 + C,), and
        ``per_member`` errors (E, 1 + C); NaN for a member without out-of-bag rows.
    """
    nan = np.full(logged_rows.shape[1], np.nan)
    pred = np.array([p[o].mean(0) if o.any() else nan for p, o in zip(pred_rows, oob, strict=True)])
    logged = np.array([logged_rows[o].mean(0) if o.any() else nan for o in oob])
    err = pred - logged
    return {
        "predicted": np.nanmean(pred, axis=0),
        "logged": np.nanmean(logged, axis=0),
        "error": np.nanmean(err, axis=0),
        "per_member": err,
    }


@dataclass
class PerHead:
    """Per-head figures (E, 1 + C): estimate, lower, upper; plus diagnostics."""

    mid: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    outside: float
    state_outside: float
    hazard: float


class ModelEvaluator:
    """Fit the driving model on ``data``; evaluate policies in it.

    Parameters
    ----------
    data : EvalData
    behavior : density.behavior.BehaviorModel
    weights : (E, n_episodes) bootstrap weights (E = the model's heads)
    support_alpha : float
        Support level of the shortfall (see :class:`roadworthy.evaluator.model_rollout.Support`).
    model : DrivingModel, optional
        A driving model already fitted on ``data`` with these weights (saved by ``roadworthy fit``).
    """

    def __init__(
        self,
        data: EvalData,
        behavior: BehaviorModel,
        weights: np.ndarray,
        *,
        config: ModelConfig,
        settings: RolloutSettings,
        gamma: float,
        support_alpha: float,
        seed: int,
        model: DrivingModel | None = None,
        on_step: Callable[[int, float], None] | None = None,
    ) -> None:
        self.data, self.behavior, self.weights = data, behavior, weights
        self.settings, self.gamma, self.seed = settings, gamma, seed
        if model is None:
            model = fit_driving_model(data, config, weights, settings.crash_rules, seed=seed, on_step=on_step)
        self.model = model
        self.world = World(model, data, settings.crash_rules, settings.lane_change)
        self.support = Support.of(behavior, support_alpha)
        self.horizons = start_horizons(data)
        self.start_episode = data.episode[data.starts]

    @property
    def channels(self) -> list[str]:
        """The cost channels of the simulated world (:class:`roadworthy.evaluator.world.Channel`)."""
        return self.world.channels

    def _shortfall(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        states = self.settings.state_weight > 0 or self.settings.base_rate_outside
        return self.support.shortfall(self.behavior, obs, act, states=states)

    def run(self, act: Callable[[np.ndarray, int], np.ndarray], starts: np.ndarray | None = None) -> SimResult:
        """Simulate ``act`` from the logged starts (all, or the given start indices)."""
        idx = np.arange(len(self.data.starts)) if starts is None else starts
        return simulate(
            self.world,
            act,
            self.data.starts[idx],
            self.horizons[idx],
            gamma=self.gamma,
            reward_range=self.data.reward_range,
            shortfall=self._shortfall,
            settings=self.settings,
            seed=self.seed,
        )

    def policy_actions(self, policy: OnnxPolicy) -> Callable[[np.ndarray, int], np.ndarray]:
        """The policy's actions on simulated states (a Gaussian policy's draws keyed by row and step)."""
        low, high = self.data.action_low, self.data.action_high

        def act(obs: np.ndarray, t: int) -> np.ndarray:
            mean, log_std = policy.distribution(obs.astype(np.float32))
            mean = np.asarray(mean, dtype=np.float64)
            if log_std is not None:
                keys = np.arange(len(obs), dtype=np.uint64) + np.uint64(1 << 40)
                noise = row_normals(self.seed, keys, np.full(len(obs), t), 1, mean.shape[1])[:, 0, :]
                mean = mean + np.exp(np.asarray(log_std, dtype=np.float64)) * noise
            return np.clip(mean, low, high)

        return act

    def cost_to_go(self, policy: OnnxPolicy, *, steps: int = 25, max_rows: int = 8_000) -> np.ndarray:
        """Expected discounted cost of each channel over the next ``steps`` steps from logged
        states, under the policy, in the first member (rows subsampled above ``max_rows``;
        NaN elsewhere). For the risk map's per-cell costs."""
        data = self.data
        rows = np.arange(data.n)
        if data.n > max_rows:
            rows = np.sort(np.random.default_rng(self.seed).choice(data.n, max_rows, replace=False))
        act = self.policy_actions(policy)
        world = World(_first_member(self.model), data, self.settings.crash_rules, self.settings.lane_change)
        st = world.start(rows, 1)
        alive = np.ones((1, len(rows)))
        acc = np.zeros((1, len(rows), len(world.channels)))
        for k in range(steps):
            a = act(st.obs[0], k)[None]
            rng = np.random.default_rng([self.seed, 13, k])
            st, _, p_end, cost = world.step(st, a, rng.uniform(size=st.obs.shape), rng.standard_normal(st.obs.shape))
            acc += (self.gamma**k * alive)[..., None] * cost
            alive *= 1 - p_end
        out = np.full((data.n, len(world.channels)), np.nan)
        out[rows] = acc[0]
        return out

    def per_head(self, res: SimResult) -> PerHead:
        """Bootstrap-weighted means over starts for each member."""
        w = self.weights[:, self.start_episode]  # (E, S)
        norm = np.maximum(w.sum(axis=1, keepdims=True), 1e-12)

        def agg(x: np.ndarray) -> np.ndarray:
            return (w[:, :, None] * x).sum(1) / norm

        return PerHead(
            mid=agg(res.mid),
            lo=np.minimum(agg(res.lo), agg(res.mid)),
            hi=np.maximum(agg(res.hi), agg(res.mid)),
            outside=float(res.outside.mean()),
            state_outside=float(res.state_outside.mean()),
            hazard=float(res.hazard.mean()),
        )

    def replay(self, rows: np.ndarray, steps: np.ndarray, tag: int) -> tuple[np.ndarray, np.ndarray]:
        """Replay the logged actions from logged rows, anchored on the logged state, in every member.

        Parameters
        ----------
        rows : (M,) first rows of the replayed segments
        steps : (M,) steps to replay from each (within its episode)
        tag : int
            Keys the random numbers (one stream per kind of check).

        Returns
        -------
        returns (E, M, 1 + C) discounted from each segment's first row (value, then costs);
        hit (E, M, C) the chance that each channel's event happened in the segment.
        """
        data, e = self.data, self.model.heads
        m = len(rows)
        st = self.world.start(rows, e)
        alive = np.ones((e, m))
        acc = np.zeros((e, m, 1 + len(self.channels)))
        clean = np.ones((e, m, len(self.channels)))
        for k in range(int(steps.max(initial=0))):
            active = (k < steps).astype(np.float64)[None, :]
            at = np.minimum(rows + k, data.n - 1)
            a = np.broadcast_to(data.action[at].astype(np.float64), (e, m, data.action.shape[1]))
            rng = np.random.default_rng([self.seed, tag, k])
            st, r, p_end, cost = self.world.step(
                st, a, rng.uniform(size=st.obs.shape), rng.standard_normal(st.obs.shape)
            )
            g = self.gamma**k * active * alive
            acc[..., 0] += g * ((1 - p_end) * r + p_end * self.model.terminal_reward)
            acc[..., 1:] += g[..., None] * cost
            clean *= 1 - np.clip(cost, 0.0, 1.0) * (active * alive)[..., None]
            alive *= 1 - p_end * active
        return acc, 1 - clean

    def danger_check(self, lead_s: float = 2.0) -> dict:
        """Do the members reproduce the logged crashes of episodes they never trained on?

        For each crash channel and each logged crash (the row where the event happened;
        for channels that do not end episodes, the first row of each run of events), the
        logged actions are replayed from ``lead_s`` seconds before, anchored on the
        logged state and pose, in every member whose bootstrap resample left that episode
        out. The member reproduces the crash with the chance that the event happens
        during the replay (computed rules give 0 or 1; learned parts a probability).

        Returns
        -------
        dict
            Per crash channel: ``events`` (logged), ``pairs`` (member, held-out event)
            replayed, ``detected`` (mean chance over those pairs, None without any), and
            ``per_event`` (mean over the members that held each event out).
        """
        data = self.data
        lead = max(1, round(lead_s / data.dt))
        out = {}
        for i, ch in enumerate(self.channels):
            if ch.name not in CRASH_CHANNELS:
                continue
            rows = event_rows(data, i)
            entry: dict = {"events": len(rows), "pairs": 0, "detected": None, "lead_s": lead * data.dt}
            if len(rows):
                first = data.starts[data.episode[rows]]
                start = np.maximum(rows - lead, first)
                _, hit = self.replay(start, rows - start + 1, 19)
                oob = self.weights[:, data.episode[rows]] == 0  # (E, M)
                det = hit[..., i]
                entry["pairs"] = int(oob.sum())
                if oob.any():
                    entry["detected"] = float(det[oob].mean())
                    per = np.where(oob, det, np.nan)
                    entry["per_event"] = [None if np.isnan(v) else float(v) for v in np.nanmean(per, axis=0)]
            out[ch.name] = entry
        return out

    def held_out_check(self, returns: np.ndarray, anchor_steps: int = 25) -> dict | None:
        """How well the model predicts the logged returns of episodes it did not train on.

        Each member replays the logged actions of its out-of-bag episodes (the ones its
        bootstrap resample left out) in the learned world, re-anchored on the logged
        state every ``anchor_steps`` steps so that the replay (open loop: the logged
        actions do not react to the simulated traffic) cannot drift far, and sums the
        predicted rewards and costs. Compared with those episodes' logged discounted
        returns, this is a held-out test of everything the model predicts, over horizons
        of ``anchor_steps``.

        Returns
        -------
        dict or None
            Per channel (value, then costs): ``predicted`` and ``logged`` mean return of the
            out-of-bag episodes (pooled over members), ``error`` (predicted - logged) and
            ``per_member`` errors; None when no member has out-of-bag episodes.
        """
        data, e = self.data, self.model.heads
        oob_ep = self.weights == 0  # (E, n_episodes)
        if not oob_ep.any():
            return None
        seg_start = np.flatnonzero(data.step % anchor_steps == 0)
        seg_ep = data.episode[seg_start]
        seg_len = np.minimum(anchor_steps, self._lengths()[seg_ep] - data.step[seg_start])
        acc, _ = self.replay(seg_start, seg_len, 11)
        acc *= (self.gamma ** data.step[seg_start].astype(np.float64))[None, :, None]
        pred_ep = np.stack(
            [
                np.stack(
                    [np.bincount(seg_ep, weights=acc[i, :, j], minlength=data.n_episodes) for j in range(acc.shape[2])],
                    axis=1,
                )
                for i in range(e)
            ]
        )
        return oob_check(pred_ep, returns, oob_ep) | {"anchor_steps": anchor_steps}

    def _lengths(self) -> np.ndarray:
        return np.bincount(self.data.episode, minlength=self.data.n_episodes)


#: Channels whose logged events the danger check replays.
CRASH_CHANNELS = ("collision", "off_road")


def event_rows(data: EvalData, channel: int) -> np.ndarray:
    """Rows of logged events on a cost channel: the first row of each run of events (a crash
    that ended its episode is a run of one)."""
    hit = data.costs[:, channel] > 0
    onset = hit & ~np.r_[False, hit[:-1] & (data.episode[1:] == data.episode[:-1])]
    return np.flatnonzero(onset)


def fit_driving_model(
    data: EvalData,
    config: ModelConfig,
    weights: np.ndarray,
    crash_rules: tuple[str, ...],
    *,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> DrivingModel:
    """Fit the learned part of a log's world: every cost channel not computed is learned, the
    computed pose features are given, the crashes the rules explain are left out."""
    explained = explained_events(data, crash_rules)
    computed = {*data.surrogate_names, *data.geometry_names, *explained}
    learned = [c for c in data.cost_names if c not in computed]
    return DrivingModel.fit(
        data,
        config,
        weights,
        seed=seed,
        learned=learned,
        explained=explained,
        computed=data.geometry.spec.columns if data.geometry is not None else [],
        on_step=on_step,
    )


def _first_member(model: DrivingModel) -> DrivingModel:
    """A driving model's first ensemble member alone (a cheaper pass for per-row figures)."""
    import copy

    import torch

    one = copy.copy(model)
    net = copy.deepcopy(model.net)
    with torch.no_grad():
        for p in net.parameters():
            p.data = p.data[:1].clone()
    net.heads = 1
    one.net = net
    one.config = replace(model.config, heads=1)
    return one
