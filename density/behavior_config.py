"""Settings of a behaviour model: which estimators, how it is split and calibrated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from roadworthy.data.errors import UsageError, check_seed
from roadworthy.density.base import DensityModel
from roadworthy.density.gmm import GaussianMixtureDensity
from roadworthy.density.iforest import IsolationForestDensity
from roadworthy.density.knn import KNNDensity
from roadworthy.density.mdn import MDN

#: The estimators a model file may name (never an arbitrary import path).
MODELS: dict[str, type[DensityModel]] = {
    "mdn": MDN,
    "gmm": GaussianMixtureDensity,
    "knn": KNNDensity,
    "iforest": IsolationForestDensity,
}
SLICES = ("speed_band", "map_name", "scenario")
N_REFERENCE = 5_000


@dataclass(frozen=True)
class BehaviorConfig:
    """How a behaviour model is fitted and calibrated.

    Parameters
    ----------
    model : str
        Conditional estimator p(action | state): ``mdn`` (default), ``gmm``, ``knn``, ``iforest``.
    model_params : mapping
        Hyperparameters of that estimator.
    state_model : str
        Estimator of p(state) (``gmm`` by default).
    state_params : mapping
    alpha : float
        False-alarm rate of the OOD flags.
    calibration_fraction : float
        Share of episodes (or blocks) held out for calibration.
    slice_by : tuple of str
        Extra calibration slices among ``speed_band``, ``map_name``, ``scenario``.
    min_bin : int
        Fewest calibration rows for a slice to be calibrated on its own.
    block_steps : int
        0 splits by episode; N > 0 splits long episodes into blocks of N steps
        (for logs with few, long episodes, such as CARLA recordings).
    max_train_rows, max_calibration_rows : int
        Caps; whole episodes are subsampled (seeded) above them.
    seed : int
    """

    model: str = "mdn"
    model_params: Mapping[str, Any] = field(default_factory=dict)
    state_model: str = "gmm"
    state_params: Mapping[str, Any] = field(default_factory=dict)
    alpha: float = 0.01
    calibration_fraction: float = 0.2
    slice_by: tuple[str, ...] = ()
    min_bin: int = 200
    block_steps: int = 0
    max_train_rows: int = 1_000_000
    max_calibration_rows: int = 500_000
    seed: int = 0

    def validate(self) -> None:
        """Raise :class:`UsageError` for an invalid setting."""
        for name, value in (("model", self.model), ("state_model", self.state_model)):
            if value not in MODELS:
                raise UsageError(f"unknown {name} '{value}'", f"choose one of {', '.join(MODELS)}")
        if not 0.0 < self.alpha < 1.0:
            raise UsageError(f"alpha must lie in (0, 1), got {self.alpha}", "use e.g. 0.01")
        if not 0.0 < self.calibration_fraction < 1.0:
            raise UsageError(
                f"calibration fraction must lie in (0, 1), got {self.calibration_fraction}", "use e.g. 0.2"
            )
        bad = [s for s in self.slice_by if s not in SLICES]
        if bad:
            raise UsageError(f"unknown slice(s) {bad}", f"slices are {', '.join(SLICES)}")
        check_seed(self.seed)
        if self.block_steps < 0 or self.min_bin < 1:
            raise UsageError("block_steps must be >= 0 and min_bin >= 1", "check the options")
