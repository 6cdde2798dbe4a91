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

* value estimate: with a typical logged crash (the mean reward of logged absorbing
  steps): the learned reward cannot vouch for actions the logs never took;
* cost estimates: not at all: the costs are the simulated world's own, computed where
  the log declares what they need (:mod:`roadworthy.evaluator.world`), so a policy is
  charged the crashes its simulated trajectories have, not the fleet's;
* lower value bound: with the worst reward the reward range allows (``terminal``
  pessimism) or the worst reward at every remaining step (``horizon``);
* upper value bound: with the best reward at every remaining step;
* cost upper bounds: with the largest cost on every channel, once (``terminal``) or
  at every remaining step (``horizon``) for per-step channels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.evaluator.settings import RolloutSettings
from roadworthy.evaluator.world import World

if TYPE_CHECKING:
    from roadworthy.density.behavior import BehaviorModel
    from roadworthy.density.calibration import ConformalCalibrator


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
    def of(cls, model: BehaviorModel, alpha: float) -> Support:
        """From a fitted :class:`roadworthy.density.behavior.BehaviorModel` at level ``alpha``."""

        def edge(cal: ConformalCalibrator) -> tuple[float, float]:
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
        self, model: BehaviorModel, obs: np.ndarray, act: np.ndarray, *, states: bool = True
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


def simulate(
    world: World,
    act: Callable[[np.ndarray, int], np.ndarray],
    start_rows: np.ndarray,
    horizons: np.ndarray,
    *,
    gamma: float,
    reward_range: tuple[float, float],
    shortfall: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    settings: RolloutSettings,
    seed: int,
) -> SimResult:
    """Simulate a policy from logged starts in every member (see the module docstring).

    Parameters
    ----------
    world : World
        The learned model and what is computed around it.
    act : callable
        ``act(obs (E*M, D), t) -> actions (E*M, A)``, already within the action bounds.
    start_rows : (S,) logged rows to start from
    horizons : (S,) steps to simulate from each
    shortfall : callable
        ``shortfall(obs (N, D), act (N, A)) -> (z_action (N,), z_state (N,))``; a state
        with a positive shortfall lies outside the logged state support (there the
        learned event probabilities count at least at their base rates).
    """
    model = world.model
    e, p = model.heads, settings.particles
    s_count = len(start_rows)
    m = s_count * p
    channels = world.channels
    c = len(channels)
    st = world.start(np.repeat(np.asarray(start_rows), p), e)
    d = st.obs.shape[-1]
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
    once = np.array([ch.once for ch in channels], dtype=bool)
    cost_max = np.array([ch.cost_max for ch in channels])
    for t in range(int(h.max(initial=0))):
        active = (t < h).astype(np.float64)[None, :]
        if not active.any():
            break
        flat = st.obs.reshape(e * m, d)
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
        out = (zs > 0).reshape(e, m) if settings.base_rate_outside else None
        st, r, p_end, cost = world.step(st, a.reshape(e, m, -1), u, normals, out)
        g = gamma**t
        left = np.where(h > t, h - t, 0).astype(np.float64)
        span = (1 - gamma**left) / (1 - gamma) if gamma < 1 else left
        r_step = (1 - p_end) * r + p_end * model.terminal_reward
        w = alive * trust_e * active * g
        mid[..., 0] += w * ((1 - h_e) * r_step + h_e * model.terminal_reward)
        # Costs: the simulated world's own figures, whatever the support (the crash channels are
        # computed where the log allows; a failure booked here would charge crashes a policy never
        # has, and stop counting the ones it has).
        mid[..., 1:] += (alive * active * g)[..., None] * cost
        wb = alive * trust_b * active * g
        worst_r = r_lo * span if settings.pessimism == "horizon" else r_lo
        lo[..., 0] += wb * ((1 - h_b) * r_step + h_b * worst_r)
        hi[..., 0] += wb * ((1 - h_b) * r_step + h_b * r_hi * span)
        if settings.pessimism == "horizon":
            worst_c = np.where(once, cost_max, cost_max * span[:, None])
        else:
            worst_c = cost_max
        lo[..., 1:] += wb[..., None] * (1 - h_b)[..., None] * cost
        hi[..., 1:] += wb[..., None] * ((1 - h_b)[..., None] * cost + h_b[..., None] * worst_c)
        trust_e *= 1 - h_e
        trust_b *= 1 - h_b
        alive *= 1 - p_end * active
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
