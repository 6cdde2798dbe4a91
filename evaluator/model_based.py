"""A learned driving model: what happens after a (state, action), from the logs.

Model-based off-policy evaluation (Paduraru 2007; Zhang et al. 2021, "Autoregressive
dynamics models for offline policy evaluation and optimization"; Fu et al. 2021,
"Benchmarks for deep off-policy evaluation") learns the logged world's dynamics,
rewards, costs and terminations, then drives the candidate policy in it from the
logged starting states (:mod:`roadworthy.evaluator.model_rollout`). Unlike fitted Q evaluation
it learns once per log, not once per policy, so every policy is evaluated in the
same learned world; comparisons between policies are then paired on the same model
errors as well as on the same starting states and random numbers.

The model is an ensemble of E networks, each trained on a Poisson(1) bootstrap
resample of the episodes (the resamples the logged behaviour's own figures use, so
a policy and the logs can be compared member by member). Each predicts a mixture
over the next state, the reward of a step that goes on, and the chance of each event
(the episode ends; each learned cost channel). Surrogate safety channels
(:mod:`roadworthy.data.surrogates`) are functions of the state and are computed, not learned.

Learned worlds are trustworthy only where the logs went. The rollout therefore asks
the behaviour density, at every simulated step, how far the candidate's decision
and the simulated state lie outside the logged support, and is pessimistic in
proportion (:mod:`roadworthy.evaluator.model_rollout`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from roadworthy.data.errors import UsageError
from roadworthy.evaluator.dynamics_torch import (
    ARDynamicsEnsemble,
    DynamicsEnsemble,
    DynamicsProblem,
    predict_step,
    predict_step_ar,
    train_dynamics,
)
from roadworthy.evaluator.logdata import EvalData


@dataclass(frozen=True)
class ModelConfig:
    """Settings of the learned driving model and of its rollouts.

    Parameters
    ----------
    heads : int
        Ensemble members (>= 2); each is one bootstrap head of the intervals.
    dynamics : {"autoregressive", "mixture"}
        Next-state distribution: each feature in turn given the ones before, as a
        mixture (default), or one joint mixture of diagonal Gaussians.
    components : int
        Mixture components (per feature for ``autoregressive``).
    hidden : tuple of int
        Hidden layer widths.
    steps : int
        Gradient steps.
    batch_size : int
    learning_rate, weight_decay : float
    particles : int
        Simulated trajectories per logged start and member.
    max_rows : int
        Training rows (whole episodes are subsampled, seeded, above this).
    """

    heads: int = 10
    dynamics: str = "autoregressive"
    components: int = 5
    hidden: tuple[int, ...] = (128, 128)
    steps: int = 1500
    batch_size: int = 512
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    particles: int = 2
    max_rows: int = 300_000

    def validate(self) -> None:
        """Raise :class:`UsageError` for settings out of range."""
        if self.heads < 2:
            raise UsageError(f"the driving model needs at least 2 heads, got {self.heads}", "use e.g. 10")
        for name, v in (("components", self.components), ("steps", self.steps), ("particles", self.particles)):
            if v < 1:
                raise UsageError(f"model {name} must be at least 1, got {v}", "see docs/evaluator.md")
        if self.dynamics not in ("autoregressive", "mixture"):
            raise UsageError(f"unknown dynamics model {self.dynamics!r}", "use autoregressive or mixture")


def _binary(values: np.ndarray) -> bool:
    return bool(np.isin(values, (0.0, 1.0)).all())


class DrivingModel:
    """A fitted ensemble and its scalers; build with :meth:`fit`.

    Attributes
    ----------
    learned : list of str
        Cost channels the model predicts (the log's; surrogates are computed).
    binary : (J,) bool
        Per event (termination, then ``learned``): 0/1 (a probability) or a value.
    terminal_reward : float
        Mean reward of the logged steps that ended an episode (a typical crash), or
        the reward range's low end when none did.
    terminal_share : dict of str to float
        Share of the logged absorbing ends that each learned channel accompanied.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    @classmethod
    def fit(
        cls,
        data: EvalData,
        config: ModelConfig,
        episode_weights: np.ndarray,
        *,
        seed: int,
        learned: list[str],
        explained: dict[str, np.ndarray] | None = None,
        on_step: Callable[[int, float], None] | None = None,
    ) -> DrivingModel:
        """Fit the ensemble; ``episode_weights`` (E, n_episodes) are the bootstrap weights.

        ``explained`` maps a learned channel to the logged rows whose event on that channel
        the rollout detects from the simulated states by definition
        (:meth:`roadworthy.data.surrogates.SurrogateSpec.near_crash`); the event models learn only the
        other events, so that the two do not count the same crash twice. A handful of
        logged crashes cannot teach a classifier where crashes happen; the definitions can.
        """
        config.validate()
        self = cls(config)
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        rows = np.arange(data.n)
        if data.n > config.max_rows:
            order = rng.permutation(data.n_episodes)
            counts = np.bincount(data.episode, minlength=data.n_episodes)
            rows = np.flatnonzero(np.isin(data.episode, order[np.cumsum(counts[order]) <= config.max_rows]))
        obs, act = data.obs[rows].astype(np.float64), data.action[rows].astype(np.float64)
        delta = data.next_obs[rows].astype(np.float64) - obs
        has_next = data.has_next[rows]
        self._scalers(data, obs, act, delta, has_next)
        events = self._events(data, rows, learned, explained)
        reward = data.reward[rows]
        cont = ~data.terminal[rows]
        self.reward_mean = float(reward[cont].mean()) if cont.any() else 0.0
        self.reward_std = float(reward[cont].std() + 1e-6) if cont.any() else 1.0
        problem = DynamicsProblem(
            x=self._inputs(obs, act),
            delta=torch.as_tensor(((delta - self.delta_mean) / self.delta_std)[:, self.order], dtype=torch.float32),
            has_next=torch.as_tensor(has_next, dtype=torch.float32),
            reward=torch.as_tensor((reward - self.reward_mean) / self.reward_std, dtype=torch.float32),
            reward_mask=torch.as_tensor(cont, dtype=torch.float32),
            events=torch.as_tensor(events / self.event_scale, dtype=torch.float32),
            binary=torch.as_tensor(self.binary),
            weights=torch.as_tensor(episode_weights[:, data.episode[rows]], dtype=torch.float32),
        )
        self._build_net(obs.shape[1], act.shape[1], events, seed)
        self.losses = train_dynamics(
            self.net,
            problem,
            steps=config.steps,
            batch_size=config.batch_size,
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
            seed=seed,
            on_step=on_step,
        )
        self.net.eval()
        return self

    def _scalers(self, data: EvalData, obs, act, delta, has_next) -> None:
        """Input and output scales, feature bounds and the autoregressive order."""
        self.obs_mean = obs.mean(axis=0)
        self.obs_std = obs.std(axis=0) + 1e-6
        # Actions are standardized by their logged spread: the world's response to a
        # small steering input must be as visible to the network as the input is to the car.
        self.act_mid = act.mean(axis=0)
        self.act_half = act.std(axis=0) + 1e-6 * (data.action_high - data.action_low)
        dn = delta[has_next] if has_next.any() else delta
        self.delta_mean = dn.mean(axis=0)
        self.delta_std = dn.std(axis=0) + 1e-4 * self.obs_std
        self._feature_bounds(data.obs)
        # The autoregressive order: features whose steps are smooth first (light-tailed
        # changes: speed, absolute positions), jumpy ones after (lane-relative offsets,
        # flags, gaps to whichever vehicle is nearest), so that a jump is drawn knowing
        # the smooth features it follows from, not the other way round.
        from scipy.stats import kurtosis

        self.order = np.argsort(np.nan_to_num(kurtosis(dn, axis=0), nan=0.0), kind="stable")
        if self.config.dynamics != "autoregressive":
            self.order = np.arange(obs.shape[1])

    def _events(self, data: EvalData, rows, learned: list[str], explained) -> np.ndarray:
        """(R, 1 + J) event targets (termination, then the learned channels), and their scales."""
        self.learned = list(learned)
        cols = [data.cost_names.index(c) for c in self.learned]
        costs = data.costs[rows][:, cols] if cols else np.zeros((len(rows), 0))
        events = np.column_stack([data.terminal[rows].astype(np.float64), costs])
        if explained:
            by_rule = np.zeros(len(rows), dtype=bool)
            for c, mask in explained.items():
                if c in self.learned:
                    hit = mask[rows] & (events[:, 1 + self.learned.index(c)] > 0)
                    events[hit, 1 + self.learned.index(c)] = 0.0
                    by_rule |= hit
            events[by_rule, 0] = 0.0
        self.binary = np.array([_binary(events[:, j]) for j in range(events.shape[1])])
        self.event_scale = np.where(self.binary, 1.0, np.maximum(np.abs(events).max(axis=0), 1e-6))
        self.base_rates = events.mean(axis=0)
        term = data.terminal
        self.terminal_reward = float(data.reward[term].mean()) if term.any() else float(data.reward_range[0])
        self.terminal_share = {
            c: float((data.costs[term, data.cost_names.index(c)] > 0).mean()) if term.any() else 1.0
            for c in self.learned
        }
        return events

    def _build_net(self, d: int, a: int, events: np.ndarray, seed: int) -> None:
        config = self.config
        kind = ARDynamicsEnsemble if config.dynamics == "autoregressive" else DynamicsEnsemble
        self.net = kind(config.heads, d + a, d, config.components, tuple(config.hidden), events.shape[1], seed)
        # Start each event at its logged base rate: a rare event's logit must not have
        # to travel from 0 (a coin flip) during training.
        with torch.no_grad():
            base = np.clip(events.mean(axis=0), 1e-6, 1 - 1e-6)
            init = np.where(self.binary, np.log(base / (1 - base)), events.mean(axis=0) / self.event_scale)
            bias = self.net.ev_b if isinstance(self.net, ARDynamicsEnsemble) else self.net.out_b
            bias[..., -len(init) :] = torch.as_tensor(init, dtype=torch.float32)

    def _feature_bounds(self, obs: np.ndarray) -> None:
        """Where simulated features are clipped, and which are snapped to their two values.

        A feature that sits at its logged minimum or maximum on many rows (a sensor's
        range, a flag) is a hard bound: simulated values stop there. Others may go a
        quarter of their logged span beyond, enough for the support check to see a
        state leave the logs, not enough for an ensemble member to run off to infinity.
        """
        lo, hi = obs.min(axis=0).astype(np.float64), obs.max(axis=0).astype(np.float64)
        span = np.maximum(hi - lo, 1e-6)
        at_lo = (obs == lo).mean(axis=0) >= 0.01
        at_hi = (obs == hi).mean(axis=0) >= 0.01
        # Quantities never negative in the logs (speeds, distances) stay so.
        self.clip_lo = np.where(at_lo, lo, np.where(lo >= 0, np.maximum(lo - 0.25 * span, 0.0), lo - 0.25 * span))
        self.clip_hi = np.where(at_hi, hi, hi + 0.25 * span)
        self.two_valued = np.array([len(np.unique(obs[:, j])) <= 2 for j in range(obs.shape[1])])
        self.values_lo, self.values_hi = lo, hi

    def _bound(self, j: int, values: np.ndarray) -> np.ndarray:
        """Feature j's simulated values clipped to its bounds (and snapped when two-valued)."""
        v = np.clip(values, self.clip_lo[j], self.clip_hi[j])
        if self.two_valued[j]:
            mid = (self.values_lo[j] + self.values_hi[j]) / 2
            v = np.where(v >= mid, self.values_hi[j], self.values_lo[j])
        return v

    def _inputs(self, obs: np.ndarray, act: np.ndarray) -> torch.Tensor:
        z = np.concatenate([(obs - self.obs_mean) / self.obs_std, (act - self.act_mid) / self.act_half], axis=-1)
        return torch.as_tensor(np.clip(z, -8.0, 8.0).astype(np.float32))

    @property
    def heads(self) -> int:
        """Ensemble members."""
        return self.config.heads

    def step(
        self, obs: np.ndarray, act: np.ndarray, u_component: np.ndarray, normals: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One simulated step of every member.

        Parameters
        ----------
        obs : (E, M, D) states, member e's particles in row e
        act : (E, M, A) actions
        u_component : (E, M, D) uniforms that pick mixture components
        normals : (E, M, D) standard normals

        Returns
        -------
        next_obs (E, M, D), reward (E, M) of a step that goes on, p_end (E, M) chance
        that the step ends the episode, costs (E, M, len(learned)) expected per-step costs
        """
        x = self._inputs(obs, act)
        if isinstance(self.net, ARDynamicsEnsemble):
            cur = torch.as_tensor(obs, dtype=torch.float64)

            def fix(i: int, z: torch.Tensor) -> torch.Tensor:
                j = int(self.order[i])
                v = cur[..., j] + z * self.delta_std[j] + self.delta_mean[j]
                v = v.clamp(float(self.clip_lo[j]), float(self.clip_hi[j]))
                if self.two_valued[j]:
                    mid = (self.values_lo[j] + self.values_hi[j]) / 2
                    v = torch.where(v >= mid, float(self.values_hi[j]), float(self.values_lo[j]))
                return (v - cur[..., j] - self.delta_mean[j]) / self.delta_std[j]

            zp, r, ev = predict_step_ar(self.net, x, u_component, normals, fix)
            z = np.empty_like(zp)
            z[..., self.order] = zp
            nxt = obs + z * self.delta_std + self.delta_mean
        else:
            z, r, ev = predict_step(self.net, x, u_component[..., 0], normals)
            nxt = obs + z * self.delta_std + self.delta_mean
            for j in range(nxt.shape[-1]):
                nxt[..., j] = self._bound(j, nxt[..., j])
        out = np.where(self.binary, 1.0 / (1.0 + np.exp(-ev)), ev * self.event_scale)
        out[..., ~self.binary] = np.maximum(out[..., ~self.binary], 0.0)
        return nxt, r * self.reward_std + self.reward_mean, out[..., 0], out[..., 1:]
