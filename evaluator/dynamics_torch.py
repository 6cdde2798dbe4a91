"""Tensor code of the learned driving model (the facade is :mod:`roadworthy.evaluator.model_based`).

One module holds E independent networks (an ensemble on bootstrap resamples of the
episodes) as batched weight tensors, so a minibatch trains every member at once.
Each member maps a standardized (state, action) to

* a mixture of K diagonal Gaussians over the standardized state change
  s' - s (a mixture, not one Gaussian: a lane change, a car cutting in or braking
  hard move several features at once, and the modes must stay apart);
* the expected per-step reward of a step that does not end the episode;
* one logit or value per event: the episode ends (absorbing), then each learned
  cost channel (a logit for 0/1 costs, a value for real-valued ones).

Everything here works in standardized units; the facade converts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from roadworthy.evaluator.fqe_torch import ensemble_layers

LOG_2PI = math.log(2 * math.pi)


class DynamicsEnsemble(nn.Module):
    """E networks in one module: inputs (E, B, d_in) -> grouped mixtures, reward, events.

    The state change is split into G groups of features (``groups``: one id per
    feature); each group has its own mixture of K diagonal Gaussians, drawn
    independently of the others given the inputs. Features that move together (a gap
    and its closing speed) share a group, so their modes stay joint; groups that move
    independently (the vehicle ahead and the one beside) do not compete for components.
    One group for every feature is a single joint mixture.

    Parameters
    ----------
    heads : int
        Ensemble members E.
    d_in, d_state : int
        Input width and state width D.
    components : int
        Mixture components K per group.
    hidden : tuple of int
    events : int
        Event outputs (termination first, then the learned cost channels).
    seed : int
        Seed of the initial weights.
    groups : sequence of int, optional
        Group id of each of the D features (default: one group).
    """

    def __init__(
        self,
        heads: int,
        d_in: int,
        d_state: int,
        components: int,
        hidden: tuple[int, ...],
        events: int,
        seed: int,
        groups: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.heads, self.d_state, self.k, self.events = heads, d_state, components, events
        g = torch.zeros(d_state, dtype=torch.long) if groups is None else torch.as_tensor(groups, dtype=torch.long)
        self.register_buffer("groups", g)
        self.n_groups = int(g.max()) + 1 if d_state else 1
        dims = [d_in, *hidden]
        self.weights, self.biases = ensemble_layers(heads, dims, gen)
        self.d_out = components * (self.n_groups + 2 * d_state) + 1 + events
        bound = 1 / math.sqrt(dims[-1])
        self.out_w = nn.Parameter((torch.rand(heads, dims[-1], self.d_out, generator=gen) * 2 - 1) * bound * 0.1)
        self.out_b = nn.Parameter(torch.zeros(heads, 1, self.d_out))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Mixture logits (E, B, G, K), means and log-stds (E, B, K, D), reward (E, B), events (E, B, J)."""
        h = x
        for w, b in zip(self.weights, self.biases, strict=True):
            h = torch.nn.functional.silu(torch.baddbmm(b, h, w))
        out = torch.baddbmm(self.out_b, h, self.out_w)
        e, n, k, d, g = out.shape[0], out.shape[1], self.k, self.d_state, self.n_groups
        logits = out[..., : g * k].reshape(e, n, g, k)
        at = g * k
        mean = out[..., at : at + k * d].reshape(e, n, k, d)
        raw = out[..., at + k * d : at + 2 * k * d].reshape(e, n, k, d)
        # Bounded log-stds: a floor keeps point masses (a feature that never moves) finite.
        log_std = -5.0 + 6.0 * torch.sigmoid(raw)
        reward = out[..., at + 2 * k * d]
        events = out[..., at + 2 * k * d + 1 :]
        return logits, mean, log_std, reward, events


def _degrees(n: int, d: int) -> torch.Tensor:
    """Degrees 0..d-1 spread over n hidden units (every degree present when n >= d)."""
    return torch.arange(n) % max(d, 1)


class ARDynamicsEnsemble(nn.Module):
    """E autoregressive networks: p(s' - s | s, a) = prod_j p(delta_j | s, a, delta_<j).

    Each factor is a mixture of K one-dimensional Gaussians, so every feature can jump
    (a vehicle appears in a slot) or move smoothly, and features that move together
    (a gap and its relative speed) follow each other through the conditioning.

    Layout: a context network encodes (s, a) into h (width H); reward and events are
    read from h. The factors come from one masked layer over [h, delta] (MADE,
    Germain et al. 2015): hidden unit k has a degree m_k in 0..D-1 and sees h and
    delta_1..delta_{m_k}; output j sees the units of degree < j, plus h directly, so
    even the first features get the whole context.

    Parameters
    ----------
    heads, d_in, d_state, components, hidden, events, seed : as :class:`DynamicsEnsemble`
        (``hidden`` gives the context network's widths; the masked layer has the last).
    """

    def __init__(
        self, heads: int, d_in: int, d_state: int, components: int, hidden: tuple[int, ...], events: int, seed: int
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.heads, self.d_in, self.d_state, self.k, self.events = heads, d_in, d_state, components, events

        def param(*shape: int, fan_in: int, scale: float = 1.0) -> nn.Parameter:
            bound = scale / math.sqrt(fan_in)
            return nn.Parameter((torch.rand(*shape, generator=gen) * 2 - 1) * bound)

        dims = [d_in, *hidden]
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for a, b in itertools.pairwise(dims):
            self.weights.append(param(heads, a, b, fan_in=a))
            self.biases.append(nn.Parameter(torch.zeros(heads, 1, b)))
        width = dims[-1]
        per = 3 * components
        self.ar_h = param(heads, width, width, fan_in=width + d_state)
        self.ar_d = param(heads, d_state, width, fan_in=width + d_state)
        self.ar_b = nn.Parameter(torch.zeros(heads, 1, width))
        self.out_a = param(heads, width, d_state * per, fan_in=2 * width, scale=0.1)
        self.out_h = param(heads, width, d_state * per, fan_in=2 * width, scale=0.1)
        self.out_b = nn.Parameter(torch.zeros(heads, 1, d_state * per))
        self.ev_w = param(heads, width, 1 + events, fan_in=width, scale=0.1)
        self.ev_b = nn.Parameter(torch.zeros(heads, 1, 1 + events))
        deg = _degrees(width, d_state)
        self.register_buffer("mask_in", (torch.arange(1, d_state + 1)[:, None] <= deg[None, :]).float())
        out_deg = torch.arange(1, d_state + 1).repeat_interleave(per)
        self.register_buffer("mask_out", (deg[:, None] < out_deg[None, :]).float())

    def context(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(h, the masked layer's context part, the outputs' context part) of inputs x (E, B, d_in)."""
        h = x
        for w, b in zip(self.weights, self.biases, strict=True):
            h = torch.nn.functional.silu(torch.baddbmm(b, h, w))
        return h, torch.baddbmm(self.ar_b, h, self.ar_h), torch.baddbmm(self.out_b, h, self.out_h)

    def factors(
        self, ctx: tuple[torch.Tensor, ...], delta: torch.Tensor, dim: int | None = None
    ) -> tuple[torch.Tensor, ...]:
        """Mixture logits, means, log-stds (E, B, D, K) of every factor, or (E, B, K) of one (``dim``)."""
        _, ar_ctx, out_ctx = ctx
        a = torch.nn.functional.silu(ar_ctx + torch.bmm(delta, self.ar_d * self.mask_in))
        per = 3 * self.k
        if dim is None:
            out = out_ctx + torch.bmm(a, self.out_a * self.mask_out)
            out = out.reshape(out.shape[0], out.shape[1], self.d_state, 3, self.k)
            return out[..., 0, :], out[..., 1, :], -5.0 + 6.0 * torch.sigmoid(out[..., 2, :])
        cols = slice(dim * per, (dim + 1) * per)
        out = out_ctx[..., cols] + torch.bmm(a, self.out_a[..., cols] * self.mask_out[:, cols])
        out = out.reshape(out.shape[0], out.shape[1], 3, self.k)
        return out[..., 0, :], out[..., 1, :], -5.0 + 6.0 * torch.sigmoid(out[..., 2, :])

    def reward_events(self, ctx: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Reward (E, B) and event outputs (E, B, J)."""
        out = torch.baddbmm(self.ev_b, ctx[0], self.ev_w)
        return out[..., 0], out[..., 1:]


@dataclass
class DynamicsProblem:
    """Training rows of the driving model, all standardized tensors.

    Attributes
    ----------
    x : (N, d_in) state and action
    delta : (N, D) the state change to the next row
    has_next : (N,) 1 where the row has a next state in its episode
    reward : (N,) per-step reward
    reward_mask : (N,) 1 on rows that do not end in an absorbing state
    events : (N, J) event targets (termination, then learned costs)
    binary : (J,) bool, which events are 0/1 (logits) rather than values
    weights : (E, N) bootstrap weight of each row in each member
    learned : (D,) 1 for features whose change is learned, 0 for computed ones (not trained)
    """

    x: torch.Tensor
    delta: torch.Tensor
    has_next: torch.Tensor
    reward: torch.Tensor
    reward_mask: torch.Tensor
    events: torch.Tensor
    binary: torch.Tensor
    weights: torch.Tensor
    learned: torch.Tensor | None = None


def mixture_nll(
    logits: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, y: torch.Tensor, groups: torch.Tensor
) -> torch.Tensor:
    """Negative log-likelihood (E, B) of y (B, D) under each member's grouped mixtures
    (logits (E, B, G, K); means, log-stds (E, B, K, D); ``groups`` (D,) the group of each feature)."""
    z = (y[None, :, None, :] - mean) * torch.exp(-log_std)
    per_dim = -0.5 * z * z - log_std - 0.5 * LOG_2PI  # (E, B, K, D)
    g = logits.shape[2]
    comp = torch.zeros(*per_dim.shape[:3], g, dtype=per_dim.dtype).index_add_(3, groups, per_dim)  # (E, B, K, G)
    return -torch.logsumexp(torch.log_softmax(logits, dim=-1) + comp.transpose(2, 3), dim=-1).sum(-1)


def ar_nll(
    logits: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Negative log-likelihood (E, B) of y (B, D) under the product of per-feature mixtures (E, B, D, K);
    ``mask`` (D,) leaves out the factors of features that are computed, not learned."""
    z = (y[None, :, :, None] - mean) * torch.exp(-log_std)
    comp = -0.5 * z * z - log_std - 0.5 * LOG_2PI
    per = -torch.logsumexp(torch.log_softmax(logits, dim=-1) + comp, dim=-1)
    return (per * mask).sum(-1) if mask is not None else per.sum(-1)


def train_dynamics(
    net: DynamicsEnsemble | ARDynamicsEnsemble,
    problem: DynamicsProblem,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Minibatch training of every member on its bootstrap weights; mean loss per 100 steps."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=lr * 0.05)
    p = problem
    n, e = p.x.shape[0], net.heads
    d = float(p.learned.sum()) if p.learned is not None else p.delta.shape[1]
    d = max(d, 1.0)
    binary = p.binary
    losses, total = [], 0.0
    for step in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        x = p.x[idx].expand(e, -1, -1)
        if isinstance(net, ARDynamicsEnsemble):
            delta = p.delta[idx]
            ctx = net.context(x)
            logits, mean, log_std = net.factors(ctx, delta.expand(e, -1, -1))
            reward, events = net.reward_events(ctx)
            nll = ar_nll(logits, mean, log_std, delta, p.learned) / d * p.has_next[idx]
        else:
            logits, mean, log_std, reward, events = net(x)
            nll = mixture_nll(logits, mean, log_std, p.delta[idx], net.groups) / d * p.has_next[idx]
        w = p.weights[:, idx]
        r_err = (reward - p.reward[idx]) ** 2 * p.reward_mask[idx]
        tgt = p.events[idx].expand(e, -1, -1)
        ev = torch.where(
            binary,
            torch.nn.functional.binary_cross_entropy_with_logits(events, tgt, reduction="none"),
            (events - tgt) ** 2,
        ).sum(-1)
        loss = (w * (nll + r_err + ev)).sum() / w.sum().clamp_min(1e-9)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        sched.step()
        total += float(loss.detach())
        if (step + 1) % 100 == 0 or step + 1 == steps:
            losses.append(total / (step % 100 + 1))
            total = 0.0
            if on_step:
                on_step(step + 1, losses[-1])
    return losses


@torch.no_grad()
def predict_step(
    net: DynamicsEnsemble, x: torch.Tensor, u_component: np.ndarray, normals: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One simulated step of every member.

    Parameters
    ----------
    x : (E, M, d_in) standardized inputs, member e's particles in row e
    u_component : (E, M, >= G) uniforms that pick each group's mixture component
    normals : (E, M, D) standard normals of the Gaussian draw

    Returns
    -------
    delta (E, M, D) sampled standardized state change, reward (E, M), events (E, M, J) raw outputs
    """
    logits, mean, log_std, reward, events = net(x)
    cdf = torch.cumsum(torch.softmax(logits, dim=-1), dim=-1)  # (E, M, G, K)
    u = torch.as_tensor(u_component, dtype=cdf.dtype)[..., : cdf.shape[2], None]
    k = (u > cdf).sum(-1).clamp(max=cdf.shape[-1] - 1)  # (E, M, G)
    # Each feature's drawn component is its group's; only it leaves torch: (E, M, D), not (E, M, K, D).
    idx = k[..., net.groups][:, :, None, :]
    mean_k = torch.gather(mean, 2, idx)[:, :, 0, :].double().numpy()
    std_k = torch.exp(torch.gather(log_std, 2, idx)[:, :, 0, :]).double().numpy()
    return mean_k + std_k * normals, reward.double().numpy(), events.double().numpy()


@torch.no_grad()
def predict_step_ar(
    net: ARDynamicsEnsemble,
    x: torch.Tensor,
    u_component: np.ndarray,
    normals: np.ndarray,
    fix: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    given: dict[int, torch.Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One simulated step of every member of an autoregressive ensemble.

    Features are drawn one after the other, each given the ones before; the masked
    layer's pre-activation is updated by one rank-one term per drawn feature.
    ``fix(j, z)`` may adjust draws of feature j (standardized, (E, M) tensor) before
    later features see them (clipping, snapping flags). ``given`` maps positions in the
    order to standardized values that are known, not drawn (computed features): later
    features are drawn given them. ``u_component`` (E, M, D) picks each feature's component.

    Returns
    -------
    as :func:`predict_step`
    """
    d, per = net.d_state, 3 * net.k
    h, pre, out_ctx = net.context(x)
    w_in = net.ar_d * net.mask_in  # (E, D, H)
    w_out = net.out_a * net.mask_out  # (E, H, D * per)
    u = torch.as_tensor(u_component)
    nrm = torch.as_tensor(normals)
    delta = torch.zeros(x.shape[0], x.shape[1], d, dtype=torch.float64)
    given = given or {}
    for j in range(d):
        if j in given:
            z = given[j]
            delta[..., j] = z
            pre = pre + z.float()[..., None] * w_in[:, j, None, :]
            continue
        cols = slice(j * per, (j + 1) * per)
        out = out_ctx[..., cols] + torch.bmm(torch.nn.functional.silu(pre), w_out[..., cols])
        logits, mean, raw = out[..., : net.k], out[..., net.k : 2 * net.k], out[..., 2 * net.k :]
        cdf = torch.cumsum(torch.softmax(logits.double(), dim=-1), dim=-1)
        k = (u[..., j, None] > cdf).sum(-1, keepdim=True).clamp(max=net.k - 1)
        mu = torch.gather(mean.double(), -1, k)[..., 0]
        sd = torch.exp(-5.0 + 6.0 * torch.sigmoid(torch.gather(raw.double(), -1, k)[..., 0]))
        z = mu + sd * nrm[..., j]
        if fix is not None:
            z = fix(j, z)
        delta[..., j] = z
        pre = pre + z.float()[..., None] * w_in[:, j, None, :]
    reward, events = net.reward_events((h, None, None))
    return delta.numpy(), reward.double().numpy(), events.double().numpy()
