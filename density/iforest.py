"""IsolationForestDensity: scikit-learn's IsolationForest behind the density interface.

``score_samples`` is the forest's own score (higher = more normal), not a
log-density, and the forest sees the joint (s, a): it cannot condition. It serves
as a baseline in the benchmarks. To persist without pickling, the model keeps the
seeded subsample it was fitted on and refits on load, which rebuilds the same
trees.
"""

from __future__ import annotations

import numpy as np

from roadworthy.density.base import DensityModel, Standardizer, check_param


class IsolationForestDensity(DensityModel):
    """Isolation forest on the standardized joint.

    Parameters
    ----------
    n_condition : int
        Kept for the common interface; the forest scores the joint.
    n_estimators : int
    max_fit_rows : int
        Rows kept (seeded subsample) to fit and to persist.
    random_state : int
    """

    def __init__(
        self, *, n_condition: int = 0, n_estimators: int = 200, max_fit_rows: int = 50_000, random_state: int = 0
    ) -> None:
        self.n_condition = n_condition
        self.n_estimators = n_estimators
        self.max_fit_rows = max_fit_rows
        self.random_state = random_state

    def _validate_params_own(self) -> None:
        check_param(self, "n_estimators", self.n_estimators, "int", low=1)
        check_param(self, "max_fit_rows", self.max_fit_rows, "int", low=2)
        check_param(self, "random_state", self.random_state, "int", low=0)

    def _fit(self, X: np.ndarray, w: np.ndarray) -> None:
        self.scaler_ = Standardizer.fit(X, w)
        Z = self.scaler_.transform(X)
        rng = np.random.default_rng(self.random_state)
        m = min(len(Z), self.max_fit_rows)
        idx = np.sort(rng.choice(len(Z), size=m, replace=False)) if m < len(Z) else np.arange(len(Z))
        self.fit_rows_, self.fit_weights_ = Z[idx], w[idx]
        self._build()

    def _build(self) -> None:
        from sklearn.ensemble import IsolationForest

        self.forest_ = IsolationForest(n_estimators=self.n_estimators, random_state=self.random_state)
        self.forest_.fit(self.fit_rows_, sample_weight=self.fit_weights_)

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self.forest_.score_samples(self.scaler_.transform(X))

    def get_arrays(self) -> dict[str, np.ndarray]:
        """The fit subsample and scaler (the forest is rebuilt from them)."""
        return {
            "mean": self.scaler_.mean,
            "scale": self.scaler_.scale,
            "fit_rows": self.fit_rows_,
            "fit_weights": self.fit_weights_,
            "n_features_in": np.array([self.n_features_in_]),
        }

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore from :meth:`get_arrays` by refitting deterministically."""
        self.n_features_in_ = int(arrays["n_features_in"][0])
        self.scaler_ = Standardizer(arrays["mean"], arrays["scale"])
        self.fit_rows_, self.fit_weights_ = arrays["fit_rows"], arrays["fit_weights"]
        self._build()
