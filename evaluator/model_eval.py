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
from dataclasses import dataclass

import numpy as np

from roadworthy.data.surrogates import CHANNELS as SURROGATES
from roadworthy.evaluator.logdata import EvalData
from roadworthy.evaluator.model_based import DrivingModel, ModelConfig
from roadworthy.evaluator.model_rollout import Channels, RolloutSettings, SimResult, Support, simulate
from roadworthy.evaluator.policy_view import row_normals


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
    """

    def __init__(
        self,
        data: EvalData,
        behavior,
        weights: np.ndarray,
        *,
        config: ModelConfig,
        settings: RolloutSettings,
        gamma: float,
        support_alpha: float,
        seed: int,
        on_step: Callable[[int, float], None] | None = None,
    ) -> None:
        self.data, self.behavior, self.weights = data, behavior, weights
        self.settings, self.gamma, self.seed = settings, gamma, seed
        learned = [c for c in data.cost_names if c not in data.surrogate_names]
        explained = None
        if data.surrogate is not None:
            rules = data.surrogate.near_crash(data.obs, data.dt)
            explained = {c: m for c, m in rules.items() if c in settings.crash_rules}
        self.model = DrivingModel.fit(
            data, config, weights, seed=seed, learned=learned, explained=explained, on_step=on_step
        )
        self.support = Support.of(behavior, support_alpha)
        once = []
        for c in data.cost_names:
            col = data.costs[:, data.cost_names.index(c)]
            hit = col > 0
            once.append(bool(c in learned and hit.any() and data.terminal[hit].all()))
        self.channels = Channels(
            names=list(data.cost_names),
            learned=[learned.index(c) if c in learned else None for c in data.cost_names],
            surrogate=[SURROGATES.index(c) if c in data.surrogate_names else None for c in data.cost_names],
            once=np.array(once, dtype=bool),
            share=np.array([self.model.terminal_share.get(c, 0.0) for c in data.cost_names]),
            cost_max=np.maximum(data.costs.max(axis=0), 1.0) if data.costs.size else np.zeros(0),
        )
        self.horizons = start_horizons(data)
        self.start_episode = data.episode[data.starts]

    def _shortfall(self, obs: np.ndarray, act: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.support.shortfall(self.behavior, obs, act, states=self.settings.state_weight > 0)

    def _surrogates(self, obs: np.ndarray) -> np.ndarray:
        return self.data.surrogate.costs(obs)

    def run(self, act: Callable[[np.ndarray, int], np.ndarray], starts: np.ndarray | None = None) -> SimResult:
        """Simulate ``act`` from the logged starts (all, or the given start indices)."""
        idx = np.arange(len(self.data.starts)) if starts is None else starts
        return simulate(
            self.model,
            act,
            self.data.obs[self.data.starts[idx]],
            self.horizons[idx],
            gamma=self.gamma,
            reward_range=self.data.reward_range,
            shortfall=self._shortfall,
            channels=self.channels,
            surrogate_costs=self._surrogates if self.data.surrogate is not None else None,
            settings=self.settings,
            seed=self.seed,
            crash_events=self._crashes if self.data.surrogate is not None else None,
            in_support=self._in_support,
        )

    def _crashes(self, nxt: np.ndarray, obs: np.ndarray) -> dict[str, np.ndarray]:
        return self.data.surrogate.events(nxt, obs, self.data.dt)

    def _in_support(self, obs: np.ndarray) -> np.ndarray:
        nc = -self.behavior.state_model_.score_samples(np.asarray(obs, dtype=np.float64))
        return nc <= self.support.state_edge

    def policy_actions(self, policy) -> Callable[[np.ndarray, int], np.ndarray]:
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

    def cost_to_go(self, policy, *, steps: int = 25, max_rows: int = 20_000) -> np.ndarray:
        """Expected discounted cost of each channel over the next ``steps`` steps from logged
        states, under the policy, in the first member (rows subsampled above ``max_rows``;
        NaN elsewhere). For the risk map's per-cell costs."""
        data = self.data
        rows = np.arange(data.n)
        if data.n > max_rows:
            rows = np.sort(np.random.default_rng(self.seed).choice(data.n, max_rows, replace=False))
        act = self.policy_actions(policy)
        s = data.obs[rows].astype(np.float64)[None]
        alive = np.ones((1, len(rows)))
        acc = np.zeros((1, len(rows), len(self.channels.names)))
        one = _FirstMember(self.model)
        for k in range(steps):
            a = act(s[0], k)[None]
            rng = np.random.default_rng([self.seed, 13, k])
            nxt, _, p_end, c_learned = one.step(s, a, rng.uniform(size=s.shape), rng.standard_normal(s.shape))
            cost = self._step_costs(s, nxt, c_learned)
            if data.surrogate is not None:
                for hit in self._crashes(nxt, s).values():
                    p_end = 1 - (1 - p_end) * (1 - hit.astype(np.float64))
            acc += (self.gamma**k * alive)[..., None] * cost
            alive *= 1 - p_end
            s = nxt
        out = np.full((data.n, len(self.channels.names)), np.nan)
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

    def behavior_actions(self) -> Callable[[np.ndarray, int], np.ndarray] | None:
        """The logged behaviour as a policy: actions drawn from the behaviour density's
        p(a | s) (draws keyed by seed and step); None when its estimator cannot sample."""
        sampler = getattr(self.behavior.model_, "sample", None)
        if sampler is None:
            return None
        low, high = self.data.action_low, self.data.action_high

        def act(obs: np.ndarray, t: int) -> np.ndarray:
            rng = np.random.default_rng([self.seed, 17, t])
            return np.clip(sampler(np.asarray(obs, dtype=np.float64), rng), low, high)

        return act

    def behavior_check(self, returns: np.ndarray) -> dict | None:
        """Drive the logged behaviour in the model, closed loop, and compare with its logged returns.

        Each member drives the behaviour (:meth:`behavior_actions`) from every logged
        start. On the member's *out-of-bag* starts (episodes its resample left out, so
        never trained on) the mean simulated return is compared with those episodes'
        logged mean: a held-out check of the whole model, closed loop, on the one
        policy whose value the logs show. On its in-bag starts (bootstrap-weighted, as
        every policy's per-head figure) the difference is the member's *bias*.

        Returns
        -------
        dict or None
            ``predicted``, ``logged``, ``error`` (out-of-bag, pooled over members, per
            channel), ``per_member`` out-of-bag errors (E, 1 + C), ``bias`` in-bag
            (E, 1 + C); None when the behaviour density cannot sample or no member has
            out-of-bag episodes.
        """
        act = self.behavior_actions()
        oob = self.weights[:, self.start_episode] == 0  # (E, S)
        if act is None or not oob.any():
            return None
        res = self.run(act)
        ret = returns[self.start_episode]  # (S, 1 + C)
        w = self.weights[:, self.start_episode]
        in_bag = (w @ ret) / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
        return oob_check(res.mid, ret, oob) | {
            "bias": self.per_head(res).mid - in_bag,
            "closed_loop": True,
        }

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
        m = len(seg_start)
        s = np.broadcast_to(data.obs[seg_start].astype(np.float64), (e, m, data.obs.shape[1])).copy()
        alive = np.ones((e, m))
        acc = np.zeros((e, m, 1 + len(self.channels.names)))
        for k in range(anchor_steps):
            active = (k < seg_len).astype(np.float64)[None, :]
            if not active.any():
                break
            rows = np.minimum(seg_start + k, data.n - 1)
            a = np.broadcast_to(data.action[rows].astype(np.float64), (e, m, data.action.shape[1]))
            rng = np.random.default_rng([self.seed, 11, k])
            nxt, r, p_end, c_learned = self.model.step(s, a, rng.uniform(size=s.shape), rng.standard_normal(s.shape))
            cost = self._step_costs(s, nxt, c_learned)
            if data.surrogate is not None:
                for hit in self._crashes(nxt, s).values():
                    p_end = 1 - (1 - p_end) * (1 - hit.astype(np.float64))
            g = self.gamma ** (data.step[seg_start] + k)[None, :] * active * alive
            acc[..., 0] += g * ((1 - p_end) * r + p_end * self.model.terminal_reward)
            acc[..., 1:] += g[..., None] * cost
            alive *= 1 - p_end * active
            s = nxt
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

    def _step_costs(self, obs: np.ndarray, nxt: np.ndarray, c_learned: np.ndarray) -> np.ndarray:
        """Per-step costs (E, M, C) of simulated steps: learned, surrogate and crash channels."""
        ch = self.channels
        cost = np.zeros((*obs.shape[:2], len(ch.names)))
        for i, j in enumerate(ch.learned):
            if j is not None:
                cost[..., i] = c_learned[..., j]
        if self.data.surrogate is not None:
            sur = self.data.surrogate.costs(obs.reshape(-1, obs.shape[-1])).reshape(*obs.shape[:2], -1)
            for i, j in enumerate(ch.surrogate):
                if j is not None:
                    cost[..., i] = sur[..., j]
            for name, hit in self._crashes(nxt, obs).items():
                if name in ch.names:
                    i = ch.names.index(name)
                    cost[..., i] = 1 - (1 - cost[..., i]) * (1 - hit.astype(np.float64))
        return cost


class _FirstMember:
    """A driving model's first ensemble member alone (a cheaper pass for per-row figures)."""

    def __init__(self, model: DrivingModel) -> None:
        import copy

        import torch

        self._m = copy.copy(model)
        net = copy.deepcopy(model.net)
        with torch.no_grad():
            for p in net.parameters():
                p.data = p.data[:1].clone()
        net.heads = 1
        self._m.net = net

    def step(self, *args):
        return self._m.step(*args)
