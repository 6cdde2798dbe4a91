"""The estimator contract every density model follows (scikit-learn's).

* ``__init__`` stores keyword-only hyperparameters as given; no work, no validation.
* ``fit(X, y=None, sample_weight=None) -> self`` validates and fits; fitted
  attributes end in ``_``.
* ``score_samples(X)`` returns one log-density per row: **higher = more usual**.
  This is the project's one convention for OOD scores (PyOD uses the opposite
  sign); the boolean flag is always named ``is_ood``.

A model is conditional when ``n_condition > 0``: the first ``n_condition`` columns
of ``X`` are the conditioning state s and the rest the action a, and
``score_samples`` returns log p(a | s). With ``n_condition = 0`` it is a plain
density of all columns (used for p(state)).
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Self

    from numpy.typing import ArrayLike


def check_param(
    model: BaseEstimator,
    name: str,
    value: object,
    kind: str,
    low: float | None = None,
    high: float | None = None,
    choices: Sequence[object] | None = None,
) -> None:
    """Raise ``ValueError`` with scikit-learn's wording for a bad hyperparameter.

    Parameters
    ----------
    kind : {"int", "float", "choice", "tuple"}
    low, high : number, optional
        Inclusive bounds.
    choices : sequence, optional
        Allowed values for ``kind="choice"``.
    """
    cls = type(model).__name__
    ok = True
    if kind == "int":
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        what = "an int"
    elif kind == "float":
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
        what = "a float"
    elif kind == "choice":
        ok = value in choices
        what = "one of " + ", ".join(repr(c) for c in choices)
    elif kind == "tuple":
        ok = isinstance(value, tuple | list) and all(isinstance(v, numbers.Integral) and v >= 1 for v in value)
        what = "a tuple of ints >= 1"
    if ok and kind in ("int", "float"):
        ok = (low is None or value >= low) and (high is None or value <= high)
        bounds = []
        if low is not None:
            bounds.append(f">= {low}")
        if high is not None:
            bounds.append(f"<= {high}")
        what += (" " + " and ".join(bounds)) if bounds else ""
    if not ok:
        raise ValueError(f"The '{name}' parameter of {cls} must be {what}. Got {value!r} instead.")


def check_X(model: BaseEstimator, X: ArrayLike, *, fitting: bool) -> np.ndarray:
    """A finite 2-D float64 array with the right number of columns."""
    cls = type(model).__name__
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{cls} expects a 2-D array of shape (n_samples, n_features); got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{cls} got an empty array (0 rows).")
    if not np.isfinite(arr).all():
        row = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise ValueError(f"{cls} got NaN or infinity in row {row}; fix or drop non-finite rows first.")
    if fitting:
        if model.n_condition >= arr.shape[1]:
            raise ValueError(
                f"{cls} has n_condition={model.n_condition} but X has {arr.shape[1]} columns; "
                "X must hold the conditioning columns followed by at least one modelled column."
            )
    else:
        if not hasattr(model, "n_features_in_"):
            raise NotFittedError(f"This {cls} instance is not fitted yet. Call 'fit' with appropriate arguments first.")
        if arr.shape[1] != model.n_features_in_:
            raise ValueError(
                f"X has {arr.shape[1]} features, but {cls} is expecting {model.n_features_in_} features as input."
            )
    return arr


def check_weights(model: BaseEstimator, sample_weight: ArrayLike | None, n: int) -> np.ndarray:
    """Non-negative finite weights of length ``n`` (ones when None)."""
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.shape[0] != n or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"{type(model).__name__}: sample_weight must hold {n} finite non-negative numbers with a positive sum."
        )
    return w


class Standardizer:
    """Column means and scales (scale 1 for constant columns)."""

    def __init__(self, mean: np.ndarray, scale: np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)

    @classmethod
    def fit(cls, X: np.ndarray, weights: np.ndarray | None = None) -> Standardizer:
        """Weighted mean and standard deviation of each column."""
        w = np.ones(len(X)) if weights is None else weights
        mean = np.average(X, axis=0, weights=w)
        var = np.average((X - mean) ** 2, axis=0, weights=w)
        scale = np.sqrt(var)
        scale[scale < 1e-8] = 1.0
        return cls(mean, scale)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Standardized copy of ``X``."""
        return (X - self.mean) / self.scale

    @property
    def log_det(self) -> float:
        """Sum of log scales: the log-Jacobian from standardized to original units."""
        return float(np.log(self.scale).sum())


class DensityModel(BaseEstimator):
    """Base class: shared validation; subclasses implement ``_fit`` and ``_score``."""

    n_condition: int = 0

    def _validate_common(self) -> None:
        check_param(self, "n_condition", self.n_condition, "int", low=0)

    def fit(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> Self:
        """Fit on rows of ``X`` (conditioning columns first).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        self
        """
        self._validate_common()
        self._validate_params_own()
        X = check_X(self, X, fitting=True)
        w = check_weights(self, sample_weight, len(X))
        self.n_features_in_ = X.shape[1]
        self._fit(X, w)
        return self

    def score_samples(self, X: ArrayLike) -> np.ndarray:
        """Log-density of each row (log p(a | s) for conditional models), higher = more usual.

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
        """
        X = check_X(self, X, fitting=False)
        return self._score(X)

    def score(self, X: ArrayLike, y: object = None) -> float:
        """Mean log-density (scikit-learn's model-selection convention)."""
        return float(np.mean(self.score_samples(X)))

    # -- for subclasses ------------------------------------------------------------
    def _validate_params_own(self) -> None:  # pragma: no cover - overridden
        pass

    def _fit(self, X: np.ndarray, w: np.ndarray) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def get_arrays(self) -> dict[str, np.ndarray]:
        """Fitted state as plain arrays, for safe persistence."""
        raise NotImplementedError

    def set_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore fitted state from :meth:`get_arrays`."""
        raise NotImplementedError
