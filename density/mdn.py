"""MDN: the default behaviour density, a mixture density network p(a | s) in torch.

A small MLP maps the standardized state to a mixture of diagonal Gaussians over
the standardized action (Bishop 1994). It is trained in minibatches, early
stopping on held-out rows, and scores log p(a | s) in the action's physical units
(the standardization's Jacobian is accounted for). With ``n_condition=0`` it is
an unconditional mixture. The same model supplies behaviour densities for
importance sampling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from roadworthy.density.base import DensityModel, Standardizer, check_param
from roadworthy.density.mdn_torch import MixtureNet, components, log_prob, resolve_device, train

if TYPE_CHECKING:
    from collections.abc import Callable

    from numpy.typing import ArrayLike


class MDN(DensityModel):
    """Mixture density network.

    Parameters
    ----------
    n_condition : int
        Leading columns of ``X`` that are the conditioning state.
    n_components : int
        Mixture components K.
    hidden : tuple of int
        Hidden layer widths of the MLP.
    min_std : float
        Smallest component standard deviation, in standardized action units.
    epochs : int
        Maximum training epochs.
    batch_size : int
    learning_rate : float
    weight_decay : float
    patience : int
        Epochs without validation improvement before stopping.
    validation_fraction : float
        Share of rows held out for early stopping.
    device : str
        ``"cpu"`` or ``"cuda"`` (an error where CUDA is absent).
    random_state : int
    """

    def __init__(
        self,
        *,
        n_condition: int = 0,
        n_components: int = 8,
        hidden: tuple[int, ...] = (128, 128),
        min_std: float = 0.02,
        epochs: int = 40,
        batch_size: int = 2048,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-6,
        patience: int = 5,
        validation_fraction: float = 0.1,
        device: str = "cpu",
        random_state: int = 0,
    ) -> None:
        self.n_condition = n_condition
        self.n_components = n_components
        self.hidden = hidden
        self.min_std = min_std
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state

    def _validate_params_own(self) -> None:
        check_param(self, "n_components", self.n_components, "int", low=1)
        check_param(self, "hidden", self.hidden, "tuple")
        check_param(self, "min_std", self.min_std, "float", low=1e-6)
        check_param(self, "epochs", self.epochs, "int", low=1)
        check_param(self, "batch_size", self.batch_size, "int", low=1)
        check_param(self, "learning_rate", self.learning_rate, "float", low=0)
        check_param(self, "weight_decay", self.weight_decay, "float", low=0)
        check_param(self, "patience", self.patience, "int", low=1)
        check_param(self, "validation_fraction", self.validation_fraction, "float", low=0, high=0.5)
        check_param(self, "random_state", self.random_state, "int", low=0)
        resolve_device(self.device)

    def _net(self) -> MixtureNet:
        d = self.n_condition
        return MixtureNet(
            d,
            self.n_features_in_ - d,
            self.n_components,
            tuple(self.hidden),
            float(np.log(self.min_std)),
            float(np.log(5.0)),
        )

    def _fit(self, X: np.ndarray, w: np.ndarray) -> None:
        import torch

        d = self.n_condition
        self.state_scaler_ = Standardizer.fit(X[:, :d], w) if d else Standardizer(np.zeros(0), np.ones(0))
        self.action_scaler_ = Standardizer.fit(X[:, d:], w)
        # nn.Linear draws its initial weights from torch's global generator: seed it
        # inside a fork, so that fitting is reproducible and leaves the caller's state alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            self.net_ = self._net()
        self.history_ = train(
            self.net_,
            self.state_scaler_.transform(X[:, :d]),
            self.action_scaler_.transform(X[:, d:]),
            w,
            val_fraction=self.validation_fraction,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.learning_rate,
            weight_decay=self.weight_decay,
            patience=self.patience,
            seed=self.random_state,
            device=resolve_device(self.device),
            on_epoch=getattr(self, "_on_epoch", None),
        )

    def fit(
        self,
        X: ArrayLike,
        y: object = None,
        sample_weight: ArrayLike | None = None,
        *,
        on_epoch: Callable[[int, float], None] | None = None,
    ) -> MDN:
        """Fit; ``on_epoch(epoch, train_nll, val_nll)`` reports progress."""
        self._on_epoch = on_epoch
        try:
            return super().fit(X, y, sample_weight)
        finally:
            self._on_epoch = None

    def _score(self, X: np.ndarray) -> np.ndarray:
        d = self.n_condition
        s = self.state_scaler_.transform(X[:, :d])
        a = self.action_scaler_.transform(X[:, d:])
        lp = log_prob(self.net_, s, a, batch_size=65536, device=resolve_device(self.device))
        return lp - self.action_scaler_.log_det

    def mixture(self, S: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mixture weights (n, K), means (n, K, A) and standard deviations (n, K, A)
        of p(a | s), in physical units."""
        S = np.asarray(S, dtype=np.float64).reshape(-1, self.n_condition)
        w, mean, std = components(self.net_, self.state_scaler_.transform(S), resolve_device(self.device))
        sc = self.action_scaler_
        return w, mean * sc.scale + sc.mean, std * sc.scale

    def sample(self, S: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        """One action per state drawn from p(a | s)."""
        w, mean, std = self.mixture(S)
        k = (rng.uniform(size=(len(w), 1)) > np.cumsum(w, axis=1)).sum(axis=1).clip(max=w.shape[1] - 1)
        rows = np.arange(len(w))
        return mean[rows, k] + std[rows, k] * rng.standard_normal(mean[rows, k].shape)

    # -- persistence -----------------------------------------------------------------
    def get_arrays(self) -> dict[str, np.ndarray]:
        """Scalers and network weights as plain arrays."""
        out = {
            "state_mean": self.state_scaler_.mean,
            "state_scale": self.state_scaler_.scale,
            "action_mean": self.action_scaler_.mean,
            "action_scale": self.action_scaler_.scale,
            "n_features_in": np.array([self.n_features_in_]),
        }
        for k, v in self.net_.state_dict().items():
            out[f"net.{k}"] = v.detach().cpu().numpy()
        return out

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Rebuild the fitted model from :meth:`get_arrays`."""
        import torch

        self.n_features_in_ = int(arrays["n_features_in"][0])
        self.state_scaler_ = Standardizer(arrays["state_mean"], arrays["state_scale"])
        self.action_scaler_ = Standardizer(arrays["action_mean"], arrays["action_scale"])
        self.net_ = self._net()
        state = {k[4:]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("net.")}
        self.net_.load_state_dict(state)
        self.net_.eval()
