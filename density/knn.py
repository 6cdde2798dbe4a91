"""KNNDensity: k-nearest-neighbour density on a subsampled reference set.

The classic estimate p(x) ~ k / (n * V_D * r_k(x)^D), with r_k the distance to the
k-th nearest reference point in standardized units; conditional scores subtract
the same estimate on the state columns alone. It is a baseline: consistent but
noisy in high dimension, and not normalized exactly. Sample weights drive the
(seeded) choice of the reference subset.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import gammaln

from roadworthy.density.base import DensityModel, Standardizer, check_param

if TYPE_CHECKING:
    from sklearn.neighbors import NearestNeighbors


def _log_ball_volume(d: int) -> float:
    return 0.5 * d * np.log(np.pi) - gammaln(0.5 * d + 1)


class KNNDensity(DensityModel):
    """k-NN density estimate.

    Parameters
    ----------
    n_condition : int
    n_neighbors : int
    max_reference : int
        Size of the reference subsample.
    random_state : int
    """

    def __init__(
        self, *, n_condition: int = 0, n_neighbors: int = 10, max_reference: int = 20_000, random_state: int = 0
    ) -> None:
        self.n_condition = n_condition
        self.n_neighbors = n_neighbors
        self.max_reference = max_reference
        self.random_state = random_state

    def _validate_params_own(self) -> None:
        check_param(self, "n_neighbors", self.n_neighbors, "int", low=1)
        check_param(self, "max_reference", self.max_reference, "int", low=2)
        check_param(self, "random_state", self.random_state, "int", low=0)

    def _fit(self, X: np.ndarray, w: np.ndarray) -> None:
        self.scaler_ = Standardizer.fit(X, w)
        Z = self.scaler_.transform(X)
        rng = np.random.default_rng(self.random_state)
        m = min(len(Z), self.max_reference)
        idx = rng.choice(len(Z), size=m, replace=False, p=w / w.sum()) if m < len(Z) else np.arange(len(Z))
        self.reference_ = Z[np.sort(idx)]
        self._build()

    def _build(self) -> None:
        from sklearn.neighbors import NearestNeighbors

        d = self.n_condition
        k = min(self.n_neighbors, len(self.reference_))
        self._joint = NearestNeighbors(n_neighbors=k).fit(self.reference_)
        self._state = NearestNeighbors(n_neighbors=k).fit(self.reference_[:, :d]) if d else None

    def _log_knn(self, nn: NearestNeighbors, Z: np.ndarray) -> np.ndarray:
        dist, _ = nn.kneighbors(Z)
        r = np.maximum(dist[:, -1], 1e-6)
        n, dim = len(self.reference_), Z.shape[1]
        k = dist.shape[1]
        return np.log(k) - np.log(n) - _log_ball_volume(dim) - dim * np.log(r)

    def _score(self, X: np.ndarray) -> np.ndarray:
        d = self.n_condition
        Z = self.scaler_.transform(X)
        out = self._log_knn(self._joint, Z)
        if d:
            out = out - self._log_knn(self._state, Z[:, :d])
        return out - np.log(self.scaler_.scale[d:]).sum()

    def get_arrays(self) -> dict[str, np.ndarray]:
        """Reference set and scaler."""
        return {
            "mean": self.scaler_.mean,
            "scale": self.scaler_.scale,
            "reference": self.reference_,
            "n_features_in": np.array([self.n_features_in_]),
        }

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`get_arrays`."""
        self.n_features_in_ = int(arrays["n_features_in"][0])
        self.scaler_ = Standardizer(arrays["mean"], arrays["scale"])
        self.reference_ = arrays["reference"]
        self._build()
