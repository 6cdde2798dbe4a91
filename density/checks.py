"""A reusable contract check for density models, like scikit-learn's
``parametrize_with_checks``: ``for check in density_checks(make): check()``.

Each check builds fresh estimators with ``make(**overrides)`` and raises
``AssertionError`` when the model breaks the contract of :mod:`roadworthy.density.base`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.base import clone
from sklearn.exceptions import NotFittedError


def _data(n: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, 2))
    a = s @ np.array([[1.0], [-0.5]]) + 0.3 * rng.normal(size=(n, 1))
    return np.hstack([s, a])


def _raises(exc: type[Exception], fn: Callable, *words: str) -> None:
    try:
        fn()
    except exc as e:
        for w in words:
            assert w in str(e), f"message {str(e)!r} lacks {w!r}"
        return
    raise AssertionError(f"{fn} did not raise {exc.__name__}")


def density_checks(make: Callable[..., object]) -> list[Callable[[], None]]:
    """Checks for the estimator built by ``make(**overrides)`` (n_condition is set by the checks)."""

    def init_stores_params_without_work() -> None:
        est = make(n_condition=2)
        params = est.get_params()
        assert params["n_condition"] == 2
        bad = make(n_condition=-1)  # no validation in __init__
        assert bad.get_params()["n_condition"] == -1
        assert not any(k.endswith("_") and not k.startswith("_") for k in vars(est)), "fitted state set in __init__"

    def clone_keeps_params() -> None:
        est = make(n_condition=2)
        assert clone(est).get_params() == est.get_params()

    def fit_returns_self_and_sets_fitted_attributes() -> None:
        est = make(n_condition=2)
        assert est.fit(_data()) is est
        assert est.n_features_in_ == 3

    def score_before_fit_raises() -> None:
        _raises(NotFittedError, lambda: make(n_condition=2).score_samples(_data()[:5]), "not fitted")

    def scores_are_one_finite_value_per_row() -> None:
        est = make(n_condition=2).fit(_data())
        s = est.score_samples(_data(50, seed=1))
        assert s.shape == (50,) and np.isfinite(s).all()

    def higher_score_means_more_usual() -> None:
        est = make(n_condition=2).fit(_data())
        usual = np.array([[0.0, 0.0, 0.0]])
        odd = np.array([[0.0, 0.0, 6.0]])  # an action far from any seen in this state
        assert est.score_samples(usual)[0] > est.score_samples(odd)[0]

    def same_seed_same_scores() -> None:
        x = _data()
        a = make(n_condition=2, random_state=3).fit(x).score_samples(x[:40])
        b = make(n_condition=2, random_state=3).fit(x).score_samples(x[:40])
        np.testing.assert_array_equal(a, b)

    def unit_weights_equal_no_weights() -> None:
        x = _data()
        a = make(n_condition=2).fit(x).score_samples(x[:40])
        b = make(n_condition=2).fit(x, sample_weight=np.ones(len(x))).score_samples(x[:40])
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)

    def bad_input_is_refused_clearly() -> None:
        x = _data()
        nan = x.copy()
        nan[7, 1] = np.nan
        _raises(ValueError, lambda: make(n_condition=2).fit(nan), "NaN", "row 7")
        est = make(n_condition=2).fit(x)
        _raises(ValueError, lambda: est.score_samples(x[:, :2]), "2 features", "expecting 3")
        _raises(ValueError, lambda: est.score_samples(x[0]), "2-D")
        _raises(ValueError, lambda: make(n_condition=3).fit(x), "n_condition=3")
        _raises(ValueError, lambda: make(n_condition=-1).fit(x), "The 'n_condition' parameter", "Got -1 instead")
        _raises(ValueError, lambda: make(n_condition=2).fit(x, sample_weight=-np.ones(len(x))), "sample_weight")

    def arrays_round_trip() -> None:
        x = _data()
        est = make(n_condition=2).fit(x)
        fresh = make(n_condition=2)
        fresh.set_arrays({k: np.array(v) for k, v in est.get_arrays().items()})
        np.testing.assert_allclose(fresh.score_samples(x[:40]), est.score_samples(x[:40]), rtol=1e-6, atol=1e-6)

    def unconditional_mode_works() -> None:
        x = _data()[:, :2]
        est = make(n_condition=0).fit(x)
        s = est.score_samples(np.array([[0.0, 0.0], [8.0, 8.0]]))
        assert s[0] > s[1]

    return [
        init_stores_params_without_work,
        clone_keeps_params,
        fit_returns_self_and_sets_fitted_attributes,
        score_before_fit_raises,
        scores_are_one_finite_value_per_row,
        higher_score_means_more_usual,
        same_seed_same_scores,
        unit_weights_equal_no_weights,
        bad_input_is_refused_clearly,
        arrays_round_trip,
        unconditional_mode_works,
    ]
