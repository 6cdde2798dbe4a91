"""Poisson bootstrap weights of episodes, shared by every estimator of a run (numpy only)."""

from __future__ import annotations

import numpy as np


def episode_bootstrap(rng: np.random.Generator, heads: int, n_episodes: int) -> np.ndarray:
    """Poisson(1) weights of each episode in each bootstrap head, shape (heads, n_episodes).

    Drawn first from a fresh generator of the evaluation's seed, so every policy and the
    logged behaviour share the same resamples: comparisons between them are paired.
    """
    return rng.poisson(1.0, size=(heads, n_episodes)).astype(np.float64)
