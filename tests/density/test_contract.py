"""Every density model passes the estimator contract (density.checks)."""

from __future__ import annotations

import functools

import pytest

from roadworthy.density.checks import density_checks
from roadworthy.density.gmm import GaussianMixtureDensity
from roadworthy.density.iforest import IsolationForestDensity
from roadworthy.density.knn import KNNDensity
from roadworthy.density.mdn import MDN

FAST = {
    "MDN": functools.partial(MDN, epochs=4, hidden=(16,), n_components=3, batch_size=256),
    "GaussianMixtureDensity": functools.partial(GaussianMixtureDensity, n_components=3),
    "KNNDensity": functools.partial(KNNDensity, n_neighbors=5),
    "IsolationForestDensity": functools.partial(IsolationForestDensity, n_estimators=50),
}
CASES = [(name, check) for name, make in FAST.items() for check in density_checks(make)]


@pytest.mark.parametrize(("name", "check"), CASES, ids=[f"{n}-{c.__name__}" for n, c in CASES])
def test_density_contract(name, check):
    check()
