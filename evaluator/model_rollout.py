"""Driving a policy in the learned model, pessimistic where the logs do not reach.

From every logged starting state, each ensemble member simulates ``particles``
trajectories of the policy up to the log's horizon. Terminations and learned costs
are carried as probabilities (the chance of still driving multiplies down), not
sampled, so rare events cost no sampling noise. The random numbers of the state
draws depend only on the seed, member, start, particle and step: every policy meets
the same draws (common random numbers), so differences between policies are paired.

**Support.** At every simulated step the behaviour density measures how far the
policy's decision, and the simulated state, lie outside what the logs cover: the
*shortfall* z, the amount by which the nonconformity (negative log-density) exceeds
the support edge (its 1 - alpha calibration quantile), in units of the distance from
the median calibration row to that edge; 0 inside the support. A decision with
shortfall z fails, i.e. the model cannot vouch for what follows, with probability

    h = 1 - exp(-kappa * z)

so pessimism grows with how far outside the support a decision is, and the mass it
takes compounds with how often that happens. ``kappa`` is ``hazard_estimate`` for
the estimate and the larger ``hazard_bound`` for the bounds. A failed trajectory
is taken to end at once:

* estimate: with a typical logged crash (the mean reward of logged absorbing steps),
  the crash channels sharing it as the logged crashes did;
* lower value bound: with the worst reward the reward range allows (``terminal``
  pessimism) or the worst reward at every remaining step (``horizon``);
* upper value bound: with the best reward at every remaining step;
* cost upper bounds: with the largest cost on every channel, once (``terminal``) or
  at every remaining step (``horizon``) for per-step channels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from roadworthy.evaluator.model_based import DrivingModel


@dataclass(frozen=True)
class Support:
    """Support edges of the behaviour density, in nonconformity units.

    Attributes
    ----------
    action_edge, action_span : float
        The 1 - alpha calibration quantile of -log p(action | state), and its distance
        from the median.
    state_edge, state_span : float
        The same for -log p(state).
    """

    action_edge: float
    action_span: float
    state_edge: float
    state_span: float

    @classmethod
    def of(cls, model, alpha: float) -> Support:
        """From a fitted :class:`roadworthy.density.behavior.BehaviorModel` at level ``alpha``."""

        def edge(cal) -> tuple[float, float]:
            scores = cal.scores["all"]
            n = len(scores)
            # p <= alpha beyond the k-th largest calibration score, k = floor(alpha * (n + 1)).
            k = max(int(np.floor(alpha * (n + 1))), 1)
            top = float(scores[max(n - k, 0)])
            med = float(np.median(scores))
            return top, max(top - med, 1e-6)

        a_edge, a_span = edge(model.action_cal_)
        s_edge, s_span = edge(model.state_cal_)
        return cls(a_edge, a_span, s_edge, s_span)

    def shortfall(
        self, model, obs: np.ndarray, act: np.ndarray, *, states: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Shortfalls (N,) of decisions and of states (0 inside the support; states
        only when asked for)."""
        nc_a = -model.action_logp(obs, act)
        za = np.maximum(nc_a - self.action_edge, 0.0) / self.action_span
        if not states:
            return np.nan_to_num(za, nan=1e6, posinf=1e6), np.zeros(len(za))
        nc_s = -model.state_model_.score_samples(np.asarray(obs, dtype=np.float64))
        zs = np.maximum(nc_s - self.state_edge, 0.0) / self.state_span
        return np.nan_to_num(za, nan=1e6, posinf=1e6), np.nan_to_num(zs, nan=1e6, posinf=1e6)


@dataclass(frozen=True)
class Channels:
    """The cost channels of a simulation, in report order.

    Attributes
    ----------
    names : list of str
    learned : list of int or None
        Index into the model's learned channels, per channel.
    surrogate : list of int or None
        Index into the surrogate costs, per channel.
    once : (C,) bool
        Once-per-episode channels (every logged occurrence ended its episode: crashes).
    share : (C,) float
        Share of a failure that the estimate books on each once-per-episode channel.
    cost_max : (C,) float
        Largest per-step cost.
    """

    names: list[str]
    learned: list[int | None]
    surrogate: list[int | None]
    once: np.ndarray
    share: np.ndarray
    cost_max: np.ndarray


@dataclass
class SimResult:
    """Per member and start: (E, S, 1 + C) estimate, lower and upper (value, then costs).

    ``outside`` (E, S) is the share of simulated decisions with a positive shortfall,
    ``hazard`` (E, S) the estimate's failure mass by the end of the horizon.
    """

    mid: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    outside: np.ndarray
    state_outside: np.ndarray
    hazard: np.ndarray


@dataclass(frozen=True)
class RolloutSettings:
    """How the rollout treats what the logs do not cover.

    Parameters
    ----------
    hazard_estimate, hazard_bound : float
        kappa of the failure hazard h = 1 - exp(-kappa * z) of a decision whose support
        shortfall is z, for the estimate and for the bounds.
    pessimism : {"terminal", "horizon"}
        What a failure costs: the terminal reward, or the worst reward to the horizon.
    particles : int
        Simulated futures per logged start and member.
    state_weight : float
        Weight of the state model's shortfall (0: actions only).
    redraws : int
        Times a simulated next state outside the state support is drawn again (0: never;
        on the tuning benchmark 3 redraws cost 4x the time for no gain in accuracy).
    base_rate_outside : bool
        Outside the support, learned event probabilities stay at least at their base rates.
    crash_rules : tuple of str
        Crash channels also detected from the surrogate features of simulated states
        (``collision``: the lead gap closing to 0; ``off_road``: a road edge crossed). The
        default leaves ``off_road`` to the learned event model: spurious jumps of
        simulated lane offsets (about 0.5 % of steps) made false road departures.
    """

    hazard_estimate: float = 0.25
    hazard_bound: float = 2.0
    pessimism: str = "terminal"
    particles: int = 2
    state_weight: float = 0.0
    redraws: int = 0
    base_rate_outside: bool = True
    crash_rules: tuple[str, ...] = ("collision",)


class _StepCosts:
    """Per-step cost channels of a simulated step: learned, surrogate, and crashes by definition."""

    def __init__(self, channels: Channels, crash_rules, surrogate_costs, crash_events) -> None:
        self.names, self.crash_rules = channels.names, crash_rules
        self.learned_idx = [i for i, j in enumerate(channels.learned) if j is not None]
        self.learned_src = [channels.learned[i] for i in self.learned_idx]
        self.sur_idx = [i for i, j in enumerate(channels.surrogate) if j is not None]
        self.sur_src = [channels.surrogate[i] for i in self.sur_idx]
        self.surrogate_costs, self.crash_events = surrogate_costs, crash_events

    def __call__(self, c_learned, flat, nxt, s, p_end) -> tuple[np.ndarray, np.ndarray]:
        """(E, M, C) costs and the end probability, raised by crashes the next states show."""
        e, m = p_end.shape
        cost = np.zeros((e, m, len(self.names)))
        if self.learned_idx:
            cost[..., self.learned_idx] = c_learned[..., self.learned_src]
        if self.sur_idx and self.surrogate_costs is not None:
            cost[..., self.sur_idx] = self.surrogate_costs(flat).reshape(e, m, -1)[..., self.sur_src]
        if self.crash_events is not None:
            for name, hit in self.crash_events(nxt, s).items():
                if name not in self.crash_rules or not hit.any():
                    continue
                hit = hit.astype(np.float64)
                p_end = 1 - (1 - p_end) * (1 - hit)
                if name in self.names:
                    j = self.names.index(name)
                    cost[..., j] = 1 - (1 - cost[..., j]) * (1 - hit)
        return cost, p_end


def simulate(
    model: DrivingModel,
    act: Callable[[np.ndarray, int], np.ndarray],
    start_obs: np.ndarray,
    horizons: np.ndarray,
    *,
    gamma: float,
    reward_range: tuple[float, float],
    shortfall: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    channels: Channels,
    surrogate_costs: Callable[[np.ndarray], np.ndarray] | None,
    settings: RolloutSettings,
    seed: int,
    crash_events: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None,
    in_support: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SimResult:
    """Simulate a policy from every start in every member (see the module docstring).

    Parameters
    ----------
    act : callable
        ``act(obs (E*M, D), t) -> actions (E*M, A)``, already within the action bounds.
    start_obs : (S, D) logged starting states
    horizons : (S,) steps to simulate from each
    shortfall : callable
        ``shortfall(obs (N, D), act (N, A)) -> (z_action (N,), z_state (N,))``.
    surrogate_costs : callable, optional
        ``surrogate_costs(obs (N, D)) -> (N, k)`` per-step surrogate costs.
    crash_events : callable, optional
        ``crash_events(next_obs (E, M, D), obs (E, M, D)) -> {channel: bool (E, M)}``: crashes that a
        simulated next state shows by the definition of its features
        (:meth:`roadworthy.data.surrogates.SurrogateSpec.events`); each ends the episode and counts
        on the channel of its name.
    in_support : callable, optional
        ``in_support(obs (N, D)) -> bool (N,)``: whether states lie in the logged state
        support. A drawn next state outside it is drawn again (up to
        ``settings.redraws`` times, from the same conditional) and the first draw inside
        is kept; when every draw lands outside, the first one stands. A learned model
        puts a little probability on jumps at the wrong moment (a lane change that did
        not happen), and such draws compound over a long horizon into states no log
        has; a policy that really drives out of the support draws outside every time.
    """
    e, p = model.heads, settings.particles
    s_count, d = start_obs.shape
    m = s_count * p
    c = len(channels.names)
    s = np.broadcast_to(np.repeat(start_obs.astype(np.float64), p, axis=0), (e, m, d)).copy()
    h = np.repeat(np.asarray(horizons), p)
    alive = np.ones((e, m))
    trust_e = np.ones((e, m))
    trust_b = np.ones((e, m))
    mid = np.zeros((e, m, 1 + c))
    lo = np.zeros((e, m, 1 + c))
    hi = np.zeros((e, m, 1 + c))
    outside = np.zeros((e, m))
    state_out = np.zeros((e, m))
    steps = np.zeros(m)
    r_lo, r_hi = reward_range
    step_costs = _StepCosts(channels, settings.crash_rules, surrogate_costs, crash_events)
    fail_est = channels.share * channels.once
    for t in range(int(h.max(initial=0))):
        active = (t < h).astype(np.float64)[None, :]
        if not active.any():
            break
        flat = s.reshape(e * m, d)
        a = act(flat, t)
        za, zs = shortfall(flat, a)
        z = (za + settings.state_weight * zs).reshape(e, m)
        outside += (za.reshape(e, m) > 0) * active
        state_out += (zs.reshape(e, m) > 0) * active
        steps += active[0]
        h_e = (1.0 - np.exp(-settings.hazard_estimate * z)) * active
        h_b = (1.0 - np.exp(-settings.hazard_bound * z)) * active
        rng = np.random.default_rng([seed, t])
        u = rng.uniform(size=(e, m, d))
        normals = rng.standard_normal((e, m, d))
        nxt, r, p_end, c_learned = model.step(s, a.reshape(e, m, -1), u, normals)
        if in_support is not None and settings.base_rate_outside:
            # Rare events are learnt from a handful of logged ones: outside the logged
            # states the classifiers extrapolate, so there they count at their base rate.
            out = ~in_support(flat).reshape(e, m)
            p_end = np.where(out, model.base_rates[0], p_end)
            c_learned = np.where(out[..., None], model.base_rates[1:], c_learned)
        if in_support is not None and settings.redraws > 0:
            nxt = _redraw(model, s, a.reshape(e, m, -1), nxt, in_support, settings.redraws, seed, t)
        cost, p_end = step_costs(c_learned, flat, nxt, s, p_end)
        g = gamma**t
        left = np.where(h > t, h - t, 0).astype(np.float64)
        span = (1 - gamma**left) / (1 - gamma) if gamma < 1 else left
        r_step = (1 - p_end) * r + p_end * model.terminal_reward
        w = alive * trust_e * active * g
        mid[..., 0] += w * ((1 - h_e) * r_step + h_e * model.terminal_reward)
        mid[..., 1:] += w[..., None] * ((1 - h_e)[..., None] * cost + h_e[..., None] * fail_est)
        wb = alive * trust_b * active * g
        worst_r = r_lo * span if settings.pessimism == "horizon" else r_lo
        lo[..., 0] += wb * ((1 - h_b) * r_step + h_b * worst_r)
        hi[..., 0] += wb * ((1 - h_b) * r_step + h_b * r_hi * span)
        if settings.pessimism == "horizon":
            worst_c = np.where(channels.once, channels.cost_max, channels.cost_max * span[:, None])
        else:
            worst_c = channels.cost_max
        lo[..., 1:] += wb[..., None] * (1 - h_b)[..., None] * cost
        hi[..., 1:] += wb[..., None] * ((1 - h_b)[..., None] * cost + h_b[..., None] * worst_c)
        trust_e *= 1 - h_e
        trust_b *= 1 - h_b
        alive *= 1 - p_end * active
        s = nxt
    per_start = (e, s_count, p)
    denom = np.maximum(steps, 1).reshape(s_count, p)[None]
    return SimResult(
        mid=mid.reshape(*per_start, -1).mean(2),
        lo=lo.reshape(*per_start, -1).mean(2),
        hi=hi.reshape(*per_start, -1).mean(2),
        outside=(outside.reshape(per_start) / denom).mean(2),
        state_outside=(state_out.reshape(per_start) / denom).mean(2),
        hazard=(1 - trust_e).reshape(per_start).mean(2),
    )


def _redraw(model, s, a, nxt, in_support, redraws: int, seed: int, t: int) -> np.ndarray:
    """Draw again the next states that left the support (see :func:`simulate`)."""
    e, m, d = nxt.shape
    bad = ~in_support(nxt.reshape(e * m, d)).reshape(e, m)
    for attempt in range(1, redraws + 1):
        cols = np.flatnonzero(bad.any(axis=0))
        if not len(cols):
            break
        rng = np.random.default_rng([seed, t, attempt])
        u = rng.uniform(size=(e, len(cols), d))
        normals = rng.standard_normal((e, len(cols), d))
        again, *_ = model.step(s[:, cols], a[:, cols], u, normals)
        ok = in_support(again.reshape(-1, d)).reshape(e, len(cols))
        take = bad[:, cols] & ok
        sub = nxt[:, cols]
        sub[take] = again[take]
        nxt[:, cols] = sub
        bad[:, cols] &= ~take
    return nxt
