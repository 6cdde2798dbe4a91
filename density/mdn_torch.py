"""Tensor code of the mixture density network (the facade is :mod:`roadworthy.density.mdn`).

Everything here works in standardized units; the facade converts to and from the
user's physical units.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def resolve_device(device: str) -> torch.device:
    """The one place a device string becomes a torch device; no silent CPU fallback."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{device}' was asked for but CUDA is not available on this machine; use 'cpu'.")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device '{device}' is not supported; use 'cpu' or 'cuda'.")
    return dev


class MixtureNet(nn.Module):
    """s -> mixture of K diagonal Gaussians over a (all in standardized units).

    Parameters
    ----------
    d_in : int
        Conditioning dimension (0 for an unconditional mixture).
    d_out : int
        Modelled dimension.
    n_components : int
    hidden : tuple of int
    min_log_std, max_log_std : float
        Bounds of each component's log standard deviation; the lower bound keeps
        densities finite on point masses (a throttle held at exactly 0).
    """

    def __init__(
        self, d_in: int, d_out: int, n_components: int, hidden: tuple[int, ...], min_log_std: float, max_log_std: float
    ) -> None:
        super().__init__()
        self.d_in, self.d_out, self.k = d_in, d_out, n_components
        self.min_log_std, self.max_log_std = min_log_std, max_log_std
        layers: list[nn.Module] = []
        width = max(d_in, 1)
        for h in hidden if d_in > 0 else ():
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_components * (1 + 2 * d_out))

    def forward(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mixture logits (B, K), means (B, K, A), log standard deviations (B, K, A)."""
        if self.d_in == 0:
            s = torch.zeros(s.shape[0], 1, dtype=self.head.weight.dtype, device=self.head.weight.device)
        out = self.head(self.body(s))
        b, k, a = out.shape[0], self.k, self.d_out
        logits = out[:, :k]
        mean = out[:, k : k + k * a].reshape(b, k, a)
        raw = out[:, k + k * a :].reshape(b, k, a)
        # A smooth squash into [min, max] keeps gradients alive at the bounds.
        span = self.max_log_std - self.min_log_std
        log_std = self.min_log_std + span * torch.sigmoid(raw)
        return logits, mean, log_std


def mixture_log_prob(logits: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """log p(a) of each row under its mixture, standardized units, shape (B,)."""
    z = (a[:, None, :] - mean) * torch.exp(-log_std)
    comp = -0.5 * (z * z).sum(-1) - log_std.sum(-1) - 0.5 * a.shape[1] * LOG_2PI
    return torch.logsumexp(torch.log_softmax(logits, dim=-1) + comp, dim=-1)


@dataclass
class TrainResult:
    """How training went."""

    epochs: int
    best_epoch: int
    train_nll: list[float]
    val_nll: list[float]


def train(
    net: MixtureNet,
    s: np.ndarray,
    a: np.ndarray,
    w: np.ndarray,
    *,
    val_fraction: float,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    patience: int,
    seed: int,
    device: torch.device,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> TrainResult:
    """Minibatch Adam on the weighted negative log-likelihood, early-stopped on a
    random validation share of the rows; the best weights are restored."""
    gen = torch.Generator().manual_seed(seed)
    n = len(s)
    perm = torch.randperm(n, generator=gen).numpy()
    n_val = round(n * val_fraction) if n >= 20 else 0
    val, tr = perm[:n_val], perm[n_val:]
    S = torch.as_tensor(s, dtype=torch.float32)
    A = torch.as_tensor(a, dtype=torch.float32)
    W = torch.as_tensor(w / w[tr].mean(), dtype=torch.float32)
    net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1), eta_min=lr * 0.05)
    best, best_state, best_epoch, bad = math.inf, None, 0, 0
    hist_tr, hist_val = [], []
    tr_t = torch.as_tensor(tr)
    for epoch in range(epochs):
        net.train()
        order = tr_t[torch.randperm(len(tr_t), generator=gen)]
        total, count = 0.0, 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            sb, ab, wb = S[idx].to(device), A[idx].to(device), W[idx].to(device)
            lp = mixture_log_prob(*net(sb), ab)
            loss = -(wb * lp).sum() / wb.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * float(wb.sum())
            count += float(wb.sum())
        sched.step()
        hist_tr.append(total / max(count, 1e-12))
        if n_val:
            lp = log_prob(net, s[val], a[val], batch_size=65536, device=device)
            vloss = float(-(w[val] * lp).sum() / w[val].sum())
        else:
            vloss = hist_tr[-1]
        hist_val.append(vloss)
        if on_epoch:
            on_epoch(epoch, hist_tr[-1], vloss)
        if vloss < best - 1e-4:
            best, best_epoch, bad = vloss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return TrainResult(len(hist_tr), best_epoch, hist_tr, hist_val)


@torch.no_grad()
def log_prob(net: MixtureNet, s: np.ndarray, a: np.ndarray, *, batch_size: int, device: torch.device) -> np.ndarray:
    """log p(a | s) in standardized units, in batches, as float64 numpy."""
    net.eval()
    out = np.empty(len(s), dtype=np.float64)
    for i in range(0, len(s), batch_size):
        sb = torch.as_tensor(s[i : i + batch_size], dtype=torch.float32, device=device)
        ab = torch.as_tensor(a[i : i + batch_size], dtype=torch.float32, device=device)
        out[i : i + batch_size] = mixture_log_prob(*net(sb), ab).double().cpu().numpy()
    return out


@torch.no_grad()
def components(net: MixtureNet, s: np.ndarray, device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixture weights (B, K), means and standard deviations (B, K, A), standardized units."""
    logits, mean, log_std = net(torch.as_tensor(s, dtype=torch.float32, device=device))
    return (
        torch.softmax(logits, -1).double().cpu().numpy(),
        mean.double().cpu().numpy(),
        torch.exp(log_std).double().cpu().numpy(),
    )
