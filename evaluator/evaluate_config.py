"""Settings of an evaluation (:func:`roadworthy.evaluator.evaluate.evaluate`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from roadworthy.data.errors import UsageError, check_finite, check_seed
from roadworthy.evaluator.importance import ISConfig
from roadworthy.evaluator.settings import ESTIMATORS, FQEConfig, HeadlineSettings, ModelConfig, RolloutSettings


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of an evaluation.

    Parameters
    ----------
    gamma : float
        Discount in (0, 1].
    support_alpha : float
        Conformal level below which a decision leaves the trusted support. Smaller
        than the flags' default: over a long episode, false alarms at 0.01 per
        decision would gate almost every trajectory.
    trust_alpha : float
        (FQE) Conformal level above which the Q-function is evaluated at the policy's
        own action; below it, at the action pulled back toward the logged one.
    confidence : float
        Of the intervals.
    heads : int
        Bootstrap heads of whichever estimator runs (and of the paired comparisons).
    estimator : {"auto", "model", "fqe"}
        The headline estimator; ``auto`` applies the rule of :mod:`roadworthy.evaluator.headline`.
    headline : HeadlineSettings
        Thresholds of that rule (value tolerance, danger check).
    next_samples : int
        (FQE) Actions drawn per state for a stochastic policy.
    cell : float
        Map cell size for coverage, m.
    seed : int
    model, rollout, fqe, importance : configs of the estimators
    """

    gamma: float = 0.99
    support_alpha: float = 0.001
    trust_alpha: float = 0.05
    confidence: float = 0.95
    heads: int = 10
    estimator: str = "auto"
    next_samples: int = 8
    cell: float = 25.0
    seed: int = 0
    headline: HeadlineSettings = field(default_factory=HeadlineSettings)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    fqe: FQEConfig = field(default_factory=FQEConfig)
    importance: ISConfig = field(default_factory=ISConfig)

    def validate(self) -> None:
        """Raise :class:`UsageError` for settings out of range."""
        if not 0.0 < self.gamma <= 1.0:
            raise UsageError(f"`gamma` must lie in (0, 1], got {self.gamma}", "use a discount such as 0.99")
        if not 0.0 < self.support_alpha < 1.0:
            raise UsageError(f"`support_alpha` must lie in (0, 1), got {self.support_alpha}", "e.g. 0.001")
        if not 0.5 <= self.confidence < 1.0:
            raise UsageError(f"confidence must lie in [0.5, 1), got {self.confidence}", "e.g. 0.95")
        if self.heads < 2:
            raise UsageError(f"the estimators need at least 2 bootstrap heads, got {self.heads}", "use `heads` 10")
        if self.estimator not in ESTIMATORS:
            raise UsageError(f"unknown estimator {self.estimator!r}", f"use one of {', '.join(ESTIMATORS)}")
        if self.fqe.pessimism not in ("terminal", "horizon") or self.rollout.pessimism not in ("terminal", "horizon"):
            raise UsageError("unknown pessimism", "use terminal or horizon")
        check_seed(self.seed)
        if self.fqe.iterations < 0 or self.fqe.steps_per_iteration < 1 or min(self.fqe.hidden, default=1) < 1:
            raise UsageError(
                f"FQE needs iterations >= 0 and steps and hidden units >= 1 (got iterations={self.fqe.iterations}, "
                f"steps_per_iteration={self.fqe.steps_per_iteration}, hidden={list(self.fqe.hidden)})",
                "use e.g. `iterations` 0 (the log's horizon + 20)",
            )
        h = self.headline
        check_finite(h.tolerance, "tolerance", low=0.0)
        check_finite(h.anchor_s, "anchor_s", low=0.0)
        check_finite(h.danger_lead_s, "danger_lead_s", low=0.0)
        check_finite(h.danger_detection, "danger_detection", low=0.0, high=1.0)
        if h.fqe_checks not in ("auto", "always", "never"):
            raise UsageError(f"unknown fqe_checks {h.fqe_checks!r}", "use auto, always or never")
        self.model.validate()

    @property
    def fqe_config(self) -> FQEConfig:
        """FQE's settings with this evaluation's heads."""
        return replace(self.fqe, heads=self.heads)
