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

import numpy as np
import torch

from roadworthy.evaluator.dynamics_torch import (
    ARDynamicsEnsemble,
    DynamicsEnsemble,
    DynamicsProblem,
    predict_step,
    predict_step_ar,
    train_dynamics,
)
from roadworthy.evaluator.logdata import EvalData
from roadworthy.evaluator.settings import ModelConfig


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
        computed: list[int] | None = None,
        on_step: Callable[[int, float], None] | None = None,
    ) -> DrivingModel:
        """Fit the ensemble; ``episode_weights`` (E, n_episodes) are the bootstrap weights.

        ``explained`` maps the crash channels that the rollout computes by rule (contact
        with another road user, the pose leaving the road) to the logged rows the rule
        explains; those channels are not learned, and their logged crashes are left out of
        the learned termination. A handful of logged crashes cannot teach a classifier
        where crashes happen; the definitions can.

        ``computed`` lists obs columns that the rollout computes (the ego's pose features,
        :mod:`roadworthy.data.geometry`): they come first in the autoregressive order, so every
        learned feature is drawn given them, and their own factors are not trained.
        """
        config.validate()
        self = cls(config)
        self.computed = sorted(computed or [])
        rng = np.random.default_rng(seed)
        rows = np.arange(data.n)
        if data.n > config.max_rows:
            order = rng.permutation(data.n_episodes)
            counts = np.bincount(data.episode, minlength=data.n_episodes)
            rows = np.flatnonzero(np.isin(data.episode, order[np.cumsum(counts[order]) <= config.max_rows]))
        obs, act = data.obs[rows].astype(np.float64), data.action[rows].astype(np.float64)
        delta = data.next_obs[rows].astype(np.float64) - obs
        has_next = data.has_next[rows]
        if self.computed and data.geometry is not None:
            # Where the log has no next row (a crash, its end) the computed features still
            # have a next value: the one the kinematics give.
            geo = data.geometry
            pose = data.pose[rows]
            known, _ = geo.observe(geo.step(pose, act), geo.map_index(data.map_name[rows]), pose[:, 3])
            for j in self.computed:
                delta[:, j] = known[j] - obs[:, j]
        mixture = config.dynamics != "autoregressive"
        self.learned_cols = np.array([j for j in range(obs.shape[1]) if j not in set(self.computed)], dtype=np.int64)
        self._slot_kinematics(data if mixture else None)
        self._mixture_groups(data)
        target = self.to_target(obs, delta)
        self._scalers(data, obs, act, target, has_next)
        events = self._events(data, rows, learned, explained)
        reward = data.reward[rows]
        cont = ~data.terminal[rows]
        self.reward_range = tuple(float(v) for v in data.reward_range)
        self.reward_mean = float(reward[cont].mean()) if cont.any() else 0.0
        self.reward_std = float(reward[cont].std() + 1e-6) if cont.any() else 1.0
        z = (target - self.delta_mean) / self.delta_std
        history = self.previous_change(data, rows) if mixture else None
        problem = DynamicsProblem(
            x=self._inputs(obs, act, z[:, self.computed] if mixture else None, history),
            delta=torch.as_tensor(z[:, self.learned_cols] if mixture else z[:, self.order], dtype=torch.float32),
            has_next=torch.as_tensor(has_next, dtype=torch.float32),
            reward=torch.as_tensor((reward - self.reward_mean) / self.reward_std, dtype=torch.float32),
            reward_mask=torch.as_tensor(cont, dtype=torch.float32),
            events=torch.as_tensor(events / self.event_scale, dtype=torch.float32),
            binary=torch.as_tensor(self.binary),
            weights=torch.as_tensor(episode_weights[:, data.episode[rows]], dtype=torch.float32),
        )
        if not mixture:
            learned = np.ones(obs.shape[1])
            learned[self.computed] = 0.0
            problem.learned = torch.as_tensor(learned[self.order], dtype=torch.float32)
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

    def _scalers(
        self, data: EvalData, obs: np.ndarray, act: np.ndarray, delta: np.ndarray, has_next: np.ndarray
    ) -> None:
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

        order = np.argsort(np.nan_to_num(kurtosis(dn, axis=0), nan=0.0), kind="stable")
        if self.config.dynamics != "autoregressive":
            order = np.arange(obs.shape[1])
        first = [j for j in order if j in set(self.computed)]
        self.order = np.array([*first, *(j for j in order if j not in set(self.computed))], dtype=np.int64)

    def _events(self, data: EvalData, rows: np.ndarray, learned: list[str], explained: np.ndarray | None) -> np.ndarray:
        """(R, 1 + J) event targets (termination, then the learned channels), and their scales."""
        self.learned = list(learned)
        cols = [data.cost_names.index(c) for c in self.learned]
        costs = data.costs[rows][:, cols] if cols else np.zeros((len(rows), 0))
        events = np.column_stack([data.terminal[rows].astype(np.float64), costs])
        if explained:
            # Crashes on channels that rules compute end the episode through the rules: the
            # learned termination leaves them out, those the rules explain and those they
            # cannot see alike (a classifier of a handful of them would charge every policy
            # the fleet's crash rate).
            by_rule = np.zeros(len(rows), dtype=bool)
            for c in explained:
                if c in data.cost_names:
                    by_rule |= data.costs[rows, data.cost_names.index(c)] > 0
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
        if config.dynamics == "autoregressive":
            self.net = ARDynamicsEnsemble(
                config.heads, d + a, d, config.components, tuple(config.hidden), events.shape[1], seed
            )
        else:
            # One joint mixture over the learned features, given the state, the action and
            # the computed features' next values.
            k = len(self.computed)
            self.net = DynamicsEnsemble(
                config.heads,
                d + 2 * a + k + (d - k),
                d - k,
                config.components,
                tuple(config.hidden),
                events.shape[1],
                seed,
                groups=self.groups,
            )
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

    def _slot_kinematics(self, data: EvalData | None) -> None:
        """The gap/closing-speed pairs whose kinematics the model knows (the slots of
        :mod:`roadworthy.data.contacts`): it learns the gap's change beyond what the closing speeds
        explain, not the raw change."""
        self.pairs = np.zeros((0, 3), dtype=np.int64)
        self.ego_speed, self.absent_gap, self.dt = -1, np.inf, 0.1
        self.other_dv = (-np.inf, np.inf)
        if data is None or data.contacts is None or data.geometry is None:
            return
        speed = data.geometry.spec.features.get("speed")
        slots = [s for s in data.contacts.slots if s.rel_speed is not None]
        if speed is None or speed not in self.computed or not slots:
            return
        self.pairs = np.array([[s.gap, s.rel_speed, 1 if s.ahead else -1] for s in slots], dtype=np.int64)
        self.ego_speed, self.absent_gap, self.dt = int(speed), float(data.contacts.absent_gap), float(data.dt)
        # How hard the other vehicles changed speed in one step (same vehicle in the slot both rows):
        # a learned model must not have them brake harder than the logged vehicles did.
        o, n = data.obs.astype(np.float64), data.next_obs.astype(np.float64)
        dv_ego = n[:, self.ego_speed] - o[:, self.ego_speed]
        changes = []
        for g, r, sign in self.pairs:
            same = data.has_next & (o[:, g] < self.absent_gap - 1e-3) & (n[:, g] < self.absent_gap - 1e-3)
            kin = sign * self.dt * (o[:, r] + n[:, r]) / 2
            same &= np.abs(n[:, g] - o[:, g] - kin) < 1.0
            changes.append((n[:, r] - o[:, r] + dv_ego)[same])
        dv = np.concatenate(changes) if changes else np.zeros(0)
        # Robust extremes: a slot switch that happens to keep the gap can masquerade as one
        # vehicle changing speed absurdly; 1 row in 2,000 at each end is left out.
        if len(dv) >= 2000:
            self.other_dv = (float(np.quantile(dv, 0.0005)), float(np.quantile(dv, 0.9995)))

    def _mixture_groups(self, data: EvalData) -> None:
        """Which learned features share a mixture: each declared slot (gap and closing speed) or
        actor (its four offsets) is a group; every other learned feature is one of its own. A log
        that declares none keeps one joint mixture."""
        lc = list(self.learned_cols)
        together: list[list[int]] = []
        if data.contacts is not None:
            together += [[s.gap, s.rel_speed] if s.rel_speed is not None else [s.gap] for s in data.contacts.slots]
            together += [[dx, dy] for dx, dy in data.contacts.actors]
        if not together:
            self.groups = np.zeros(len(lc), dtype=np.int64)
            return
        gid = {}
        for i, cols in enumerate(together):
            for c in cols:
                gid.setdefault(c, i)
        n = len(together)
        groups = []
        for c in lc:
            if c not in gid:
                gid[c] = n
                n += 1
            groups.append(gid[c])
        _, self.groups = np.unique(np.asarray(groups), return_inverse=True)

    def to_target(self, obs: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """What the model learns of a state change: for each declared slot with a vehicle, the gap's
        change beyond ``dt`` times the mean closing speed (the kinematics of the gap are known; what
        is left is which vehicle fills the slot) and, for vehicles ahead, their own change of speed
        (the closing speed's change plus the ego's); every other feature's change as it is."""
        y = np.array(delta, dtype=np.float64, copy=True)
        for g, r, sign in self.pairs:
            present = obs[..., g] < self.absent_gap - 1e-3
            rel0, rel1 = obs[..., r], obs[..., r] + delta[..., r]
            y[..., g] = delta[..., g] - sign * self.dt * (rel0 + rel1) / 2 * present
            if sign > 0:
                # A vehicle ahead does not answer to the ego behind it: learn its own change of
                # speed, so that the ego's (computed) acceleration closes the gap exactly.
                y[..., r] = delta[..., r] + delta[..., self.ego_speed] * present
        return y

    def from_target(self, obs: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The state change of learned targets ``y`` (:meth:`to_target`). A vehicle that stays in
        its slot (the gap's residual under 1 m) changes its speed at most as much as any logged
        vehicle did in one step."""
        delta = np.array(y, dtype=np.float64, copy=True)
        lo, hi = self.other_dv
        for g, r, sign in self.pairs:
            present = obs[..., g] < self.absent_gap - 1e-3
            if sign > 0:
                delta[..., r] = y[..., r] - y[..., self.ego_speed] * present
            if np.isfinite(lo):
                same = present & (np.abs(y[..., g]) < 1.0)
                dv_ego = y[..., self.ego_speed]
                own = np.clip(delta[..., r] + dv_ego, lo, hi)
                delta[..., r] = np.where(same, own - dv_ego, delta[..., r])
            rel1 = obs[..., r] + delta[..., r]
            delta[..., g] = y[..., g] + sign * self.dt * (obs[..., r] + rel1) / 2 * present
        return delta

    @property
    def uses_history(self) -> bool:
        """Whether a step takes the learned features' previous change (mixture dynamics)."""
        return not isinstance(self.net, ARDynamicsEnsemble)

    def change(self, obs: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """The learned features' standardized change from ``obs`` to ``nxt`` (the next step's history)."""
        lc = self.learned_cols
        return (self.to_target(obs, nxt - obs)[..., lc] - self.delta_mean[lc]) / self.delta_std[lc]

    def previous_change(self, data: EvalData, rows: np.ndarray) -> np.ndarray:
        """The learned features' standardized change over the step that led to each row (0 at an
        episode's start): how the other road users were moving, which the state alone does not
        show (a lead that has started braking keeps braking)."""
        rows = np.asarray(rows)
        prev = np.maximum(rows - 1, 0)
        base = data.obs[prev].astype(np.float64)
        z = self.change(base, data.obs[rows].astype(np.float64))
        z[data.step[rows] == 0] = 0.0
        return z

    def _inputs(
        self, obs: np.ndarray, act: np.ndarray, known: np.ndarray | None = None, history: np.ndarray | None = None
    ) -> torch.Tensor:
        """Standardized network inputs: state, action and (mixture dynamics) the computed
        features' standardized changes and the learned features' previous ones."""
        a = (act - self.act_mid) / self.act_half
        parts = [(obs - self.obs_mean) / self.obs_std, a]
        if self.config.dynamics != "autoregressive":
            # Squared actions: rewards commonly charge effort quadratically (comfort), and a
            # network extrapolates a quadratic badly to actions the logs never took.
            parts.append(np.minimum(a * a, 64.0) / 4.0)
        if known is not None and known.shape[-1]:
            parts.append(known)
        if history is not None:
            parts.append(history)
        return torch.as_tensor(np.clip(np.concatenate(parts, axis=-1), -8.0, 16.0).astype(np.float32))

    @property
    def heads(self) -> int:
        """Ensemble members."""
        return self.config.heads

    def step(
        self,
        obs: np.ndarray,
        act: np.ndarray,
        u_component: np.ndarray,
        normals: np.ndarray,
        known: dict[int, np.ndarray] | None = None,
        history: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One simulated step of every member.

        Parameters
        ----------
        obs : (E, M, D) states, member e's particles in row e
        act : (E, M, A) actions
        u_component : (E, M, D) uniforms that pick mixture components
        normals : (E, M, D) standard normals
        known : dict of int to (E, M) array, optional
            Next values of computed features (obs column -> value): taken as they are,
            never clipped, and the learned features are drawn given them.
        history : (E, M, D_learned) array, optional
            (Mixture dynamics) the learned features' standardized change over the previous
            step (:meth:`previous_change`; zeros when unknown).

        Returns
        -------
        next_obs (E, M, D), reward (E, M) of a step that goes on, p_end (E, M) chance
        that the step ends the episode, costs (E, M, len(learned)) expected per-step costs
        """
        known = known or {}
        if not isinstance(self.net, ARDynamicsEnsemble):
            return self._step_mixture(obs, act, u_component, normals, known, history)
        x = self._inputs(obs, act)
        cur = torch.as_tensor(obs, dtype=torch.float64)
        pos = {int(j): i for i, j in enumerate(self.order)}
        given = {
            pos[j]: (torch.as_tensor(v, dtype=torch.float64) - cur[..., j] - self.delta_mean[j]) / self.delta_std[j]
            for j, v in known.items()
        }

        def fix(i: int, z: torch.Tensor) -> torch.Tensor:
            j = int(self.order[i])
            v = cur[..., j] + z * self.delta_std[j] + self.delta_mean[j]
            v = v.clamp(float(self.clip_lo[j]), float(self.clip_hi[j]))
            if self.two_valued[j]:
                mid = (self.values_lo[j] + self.values_hi[j]) / 2
                v = torch.where(v >= mid, float(self.values_hi[j]), float(self.values_lo[j]))
            return (v - cur[..., j] - self.delta_mean[j]) / self.delta_std[j]

        zp, r, ev = predict_step_ar(self.net, x, u_component, normals, fix, given)
        z = np.empty_like(zp)
        z[..., self.order] = zp
        nxt = obs + z * self.delta_std + self.delta_mean
        for j, v in known.items():
            nxt[..., j] = v
        return self._outputs(nxt, r, ev)

    def _outputs(
        self, nxt: torch.Tensor, r: torch.Tensor, ev: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = np.where(self.binary, 1.0 / (1.0 + np.exp(-ev)), ev * self.event_scale)
        out[..., ~self.binary] = np.maximum(out[..., ~self.binary], 0.0)
        # A learned reward never leaves the log's (declared) reward range.
        reward = np.clip(r * self.reward_std + self.reward_mean, *self.reward_range)
        return nxt, reward, out[..., 0], out[..., 1:]

    def _step_mixture(
        self,
        obs: np.ndarray,
        act: np.ndarray,
        u_component: np.ndarray,
        normals: np.ndarray,
        known: np.ndarray | None,
        history: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`step` of the joint-mixture dynamics: one network pass per step."""
        comp = self.computed
        if set(known) != set(comp):
            raise ValueError("the mixture dynamics need the next value of every computed feature")
        z_known = None
        if comp:
            z_known = np.stack(
                [(known[j] - obs[..., j] - self.delta_mean[j]) / self.delta_std[j] for j in comp], axis=-1
            )
        lc = self.learned_cols
        if history is None:
            history = np.zeros((*obs.shape[:-1], len(lc)))
        x = self._inputs(obs, act, z_known, history)
        z, r, ev = predict_step(self.net, x, u_component, normals[..., : len(lc)])
        y = np.zeros(obs.shape)
        y[..., lc] = z * self.delta_std[lc] + self.delta_mean[lc]
        for j in comp:
            y[..., j] = known[j] - obs[..., j]
        nxt = obs + self.from_target(obs, y)
        for j in lc:
            nxt[..., j] = self._bound(j, nxt[..., j])
        for j in comp:
            nxt[..., j] = known[j]
        return self._outputs(nxt, r, ev)
