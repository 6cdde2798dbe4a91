"""Tensor code of Fitted Q Evaluation (the facade is :mod:`roadworthy.evaluator.fqe`).

One module holds E independent Q-networks (the bootstrap heads) as batched weight
tensors, so a minibatch trains all heads at once. Each head predicts, for every
channel (reward, then each cost), three values: the plain FQE value, a lower and
an upper bound; the bounds differ from the plain value only through their Bellman
targets (see :mod:`roadworthy.evaluator.fqe`). The three outputs of a channel start from the
same weights, so where no target is gated they stay bit-for-bit equal.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import nn

MID, LO, HI = 0, 1, 2


def ensemble_layers(heads: int, dims: list[int], gen: torch.Generator) -> tuple[nn.ParameterList, nn.ParameterList]:
    """Weights (heads, a, b) and biases (heads, 1, b) of an ensemble MLP, uniform +-1/sqrt(fan-in)."""
    weights, biases = nn.ParameterList(), nn.ParameterList()
    for a, b in itertools.pairwise(dims):
        bound = 1 / math.sqrt(a)
        weights.append(nn.Parameter((torch.rand(heads, a, b, generator=gen) * 2 - 1) * bound))
        biases.append(nn.Parameter((torch.rand(heads, 1, b, generator=gen) * 2 - 1) * bound))
    return weights, biases


class EnsembleMLP(nn.Module):
    """E Q-networks in one module: inputs (E, B, d_in) -> (E, B, C, 3).

    ``d_action`` names how many of the last input columns are the action (kept for
    callers that split inputs); the network sees state, time to go and action side
    by side.
    """

    def __init__(
        self, heads: int, d_state: int, d_action: int, hidden: tuple[int, ...], channels: int, seed: int
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.heads, self.channels, self.d_action = heads, channels, d_action
        dims = [d_state + d_action, *hidden]
        self.weights, self.biases = ensemble_layers(heads, dims, gen)
        bound = 1 / math.sqrt(dims[-1])
        w = (torch.rand(heads, dims[-1], channels, 1, generator=gen) * 2 - 1) * bound
        # Identical starting weights for the three outputs of each channel.
        self.out_w = nn.Parameter(w.expand(heads, dims[-1], channels, 3).reshape(heads, dims[-1], channels * 3).clone())
        self.out_b = nn.Parameter(torch.zeros(heads, 1, channels * 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for w, b in zip(self.weights, self.biases, strict=True):
            h = torch.nn.functional.silu(torch.baddbmm(b, h, w))
        out = torch.baddbmm(self.out_b, h, self.out_w)
        return out.reshape(out.shape[0], out.shape[1], self.channels, 3)


@dataclass(frozen=True)
class FQEProblem:
    """The tensors of one fitted Q evaluation, row-aligned (N logged rows, K policy actions).

    Attributes
    ----------
    x : (N, d_in) inputs of the logged (state, action, time) rows.
    scale, scale_next : (N,) and (N * next_k,) the discounted number of steps to go,
        sum_{j < k} gamma^j; the network predicts Q / scale, a per-step average
        whose size does not depend on how far the horizon is, which is much easier to
        fit than raw values that range from one step's reward to ~100 of them.
    channel_scale : (C,) the typical size of one step of each channel (a cost that
        occurs once in 10,000 steps is learnt on its own scale, not the reward's).
    reward : (N, C) per-channel rewards (reward, then costs).
    cont : (N,) 1 where the episode continues after the row, else 0.
    x_next : (N * next_k, d_in) inputs of (next state, policy action k, next time).
    next_k : int, the policy's actions per state (K).
    gate : (N, next_k) bool, the policy's next decision is out of the trusted support.
    pess_lo, pess_hi : (N, C) values backed up through a gated decision by the lower
        and the upper output (for a cost channel: no cost, and the worst cost).
    fail : (N, C) the value of a failure (the worst reward, the worst cost), for the
        plain estimate.
    weights : (E, N) bootstrap weights of each row for each head.
    bounds : (N, C, 2) the smallest and largest value any policy can have from each
        row (from the per-step reward range and the steps to go); targets are clipped
        to it, which keeps extrapolated values of unfamiliar actions from diverging.
    """

    x: torch.Tensor
    scale: torch.Tensor
    channel_scale: torch.Tensor
    reward: torch.Tensor
    cont: torch.Tensor
    x_next: torch.Tensor
    scale_next: torch.Tensor
    next_k: int
    gate: torch.Tensor
    pess_lo: torch.Tensor
    pess_hi: torch.Tensor
    fail: torch.Tensor
    weights: torch.Tensor
    bounds: torch.Tensor

    def to(self, device: torch.device) -> FQEProblem:
        """The same problem with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return FQEProblem(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in moved.items()})


@dataclass(frozen=True)
class FQESchedule:
    """How the Q-networks are trained: discount, failure chance and optimiser settings."""

    gamma: float
    fail_prob: float
    iterations: int
    steps_per_iteration: int
    batch_size: int
    lr: float
    seed: int
    huber: float = 1.0
    weight_decay: float = 1e-4


def resolve_device(device: str) -> torch.device:
    """A torch device that exists here, or :class:`ValueError` naming what is available."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r} ({exc}); use 'cpu' or 'cuda'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU here; use 'cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return dev


def train_fqe(
    net: EnsembleMLP,
    problem: FQEProblem,
    schedule: FQESchedule,
    on_iteration: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Fitted Q iterations with a frozen target network per iteration.

    ``net`` and ``problem`` must be on the same device. Returns the mean training loss
    per iteration.
    """
    pr, sch = problem, schedule
    dev = pr.x.device
    gen = torch.Generator().manual_seed(sch.seed)
    target = EnsembleMLP(
        net.heads, pr.x.shape[1] - net.d_action, net.d_action, tuple(w.shape[2] for w in net.weights), net.channels, 0
    ).to(dev)
    # An exponential moving average of the weights is the final model: it averages out
    # the noise of the last gradient steps. (As the target network it would slow the
    # step-by-step propagation of values that fitted Q iterations rely on.)
    ema = {k: v.detach().clone() for k, v in net.state_dict().items()}
    cs = pr.channel_scale[None, None, :, None]
    opt = torch.optim.AdamW(net.parameters(), lr=sch.lr, weight_decay=sch.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(sch.iterations, 1), eta_min=sch.lr * 0.1)
    n, e, k, b_size = pr.x.shape[0], net.heads, pr.next_k, sch.batch_size
    offsets = torch.arange(k, device=dev)
    losses = []
    for it in range(sch.iterations):
        target.load_state_dict(net.state_dict())
        total = 0.0
        for _ in range(sch.steps_per_iteration):
            # Indices drawn on the CPU generator: the same batches on every device.
            idx = torch.randint(0, n, (b_size,), generator=gen).to(dev)
            with torch.no_grad():
                nxt_idx = (idx[:, None] * k + offsets).reshape(-1)
                qn = _apply(target, pr.x_next[nxt_idx], e) * pr.scale_next[nxt_idx][None, :, None, None] * cs
                qn = qn.reshape(e, b_size, k, net.channels, 3)
                y = _targets(qn, pr, idx, sch.fail_prob, sch.gamma)
                b = pr.bounds[idx]
                y = torch.maximum(torch.minimum(y, b[None, :, :, 1:2]), b[None, :, :, 0:1])
            sc = pr.scale[idx][None, :, None, None] * cs
            q = _apply(net, pr.x[idx], e)
            w = pr.weights[:, idx][:, :, None, None]
            err = torch.nn.functional.huber_loss(q, y / sc, reduction="none", delta=sch.huber)
            loss = (w * err).sum() / (w.sum() * net.channels * 3).clamp_min(1e-9)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            with torch.no_grad():
                for name, v in net.state_dict().items():
                    ema[name].mul_(0.99).add_(v, alpha=0.01)
            total += float(loss.detach())
        sched.step()
        losses.append(total / sch.steps_per_iteration)
        if on_iteration:
            on_iteration(it, losses[-1])
    net.load_state_dict(ema)
    return losses


def _apply(net: EnsembleMLP, x: torch.Tensor, e: int) -> torch.Tensor:
    return net(x.expand(e, -1, -1))


def _targets(qn: torch.Tensor, pr: FQEProblem, idx: torch.Tensor, fail_prob: float, gamma: float) -> torch.Tensor:
    """Bellman targets (E, B, C, 3) of rows ``idx`` from next-state values qn (E, B, K, C, 3).

    Each output averages the next values over the policy's K actions. At a gated
    (out-of-support) action, the lower and upper outputs back up the pessimistic or
    optimistic value the data cannot rule out, and the plain estimate assumes a
    failure with probability ``fail_prob``.
    """
    g = pr.gate[idx][None, :, :, None].float()
    q_mid = qn[..., MID]
    mid = (q_mid + g * fail_prob * (pr.fail[idx][None, :, None, :] - q_mid)).mean(2)
    lo = (qn[..., LO] * (1 - g) + pr.pess_lo[idx][None, :, None, :] * g).mean(2)
    hi = (qn[..., HI] * (1 - g) + pr.pess_hi[idx][None, :, None, :] * g).mean(2)
    v = torch.stack([mid, lo, hi], dim=-1)
    return pr.reward[idx][None, :, :, None] + gamma * pr.cont[idx][None, :, None, None] * v


@torch.no_grad()
def predict(
    net: EnsembleMLP, x: torch.Tensor, scale: torch.Tensor, channel_scale: torch.Tensor, batch_size: int = 65536
) -> np.ndarray:
    """Q values (E, N, C, 3) for inputs (N, d_in) with their step scales (N,), on the CPU."""
    dev = next(net.parameters()).device
    out = []
    cs = channel_scale.to(dev)[None, None, :, None]
    for i in range(0, x.shape[0], batch_size):
        xb, sb = x[i : i + batch_size].to(dev), scale[i : i + batch_size].to(dev)
        out.append((_apply(net, xb, net.heads) * sb[None, :, None, None] * cs).cpu())
    return torch.cat(out, dim=1).double().numpy()
