"""Settings of the estimators: plain, torch-free dataclasses.

Each estimator's module re-uses its class from here, so that reading or validating a
configuration (the CLI, the API, the gate's TOML file) never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from roadworthy.data.errors import UsageError

#: Headline estimators: ``auto`` applies the rule of :mod:`roadworthy.evaluator.headline`.
ESTIMATORS = ("auto", "model", "fqe")


@dataclass(frozen=True)
class FQEConfig:
    """Settings of Fitted Q Evaluation.

    Parameters
    ----------
    heads : int
        Bootstrap heads (>= 2).
    hidden : tuple of int
    iterations : int
        Fitted Q iterations (target-network updates); values propagate one step per
        iteration, so 0 (the default) means the log's horizon plus 20.
    steps_per_iteration : int
        Gradient steps between target updates.
    batch_size : int
    learning_rate : float
    max_rows : int
        Training rows (whole episodes are subsampled, seeded, above this).
    pessimism : {"terminal", "horizon"}
        Value backed up through an out-of-support decision (see the module docstring).
    failure_prob : float
        For the plain estimate: the assumed chance that an out-of-support decision
        ends in the worst outcome (0.5: no information either way).
    """

    heads: int = 5
    hidden: tuple[int, ...] = (64, 64)
    iterations: int = 0
    steps_per_iteration: int = 80
    batch_size: int = 512
    learning_rate: float = 1e-3
    max_rows: int = 300_000
    pessimism: str = "terminal"
    failure_prob: float = 0.5


@dataclass(frozen=True)
class ModelConfig:
    """Settings of the learned driving model and of its rollouts.

    Parameters
    ----------
    heads : int
        Ensemble members (>= 2); each is one bootstrap head of the intervals.
    dynamics : {"mixture", "autoregressive"}
        Next-state distribution of the learned features: one joint mixture of diagonal
        Gaussians given the state, the action and the computed features' next values
        (default; one network pass per step), or each feature in turn given the ones
        before (MADE; a pass per feature).
    components : int
        Mixture components (per feature for ``autoregressive``).
    hidden : tuple of int
        Hidden layer widths.
    steps : int
        Gradient steps.
    batch_size : int
    learning_rate, weight_decay : float
    max_rows : int
        Training rows (whole episodes are subsampled, seeded, above this).
    """

    heads: int = 10
    dynamics: str = "mixture"
    components: int = 8
    hidden: tuple[int, ...] = (128, 128)
    steps: int = 1500
    batch_size: int = 512
    learning_rate: float = 2e-3
    weight_decay: float = 1e-5
    max_rows: int = 300_000

    def validate(self) -> None:
        """Raise :class:`UsageError` for settings out of range."""
        if self.heads < 2:
            raise UsageError(f"the driving model needs at least 2 heads, got {self.heads}", "use e.g. 10")
        for name, v in (("components", self.components), ("steps", self.steps)):
            if v < 1:
                raise UsageError(f"model {name} must be at least 1, got {v}", "see docs/evaluator.md")
        if self.dynamics not in ("autoregressive", "mixture"):
            raise UsageError(f"unknown dynamics model {self.dynamics!r}", "use autoregressive or mixture")


@dataclass(frozen=True)
class RolloutSettings:
    """How the rollout treats what the logs do not cover.

    Parameters
    ----------
    hazard_estimate, hazard_bound : float
        kappa of the failure hazard h = 1 - exp(-kappa * z) of a decision whose support
        shortfall is z, for the estimate and for the bounds.
    pessimism : {"terminal", "horizon"}
        What a failure costs: the terminal reward, or the worst reward to the horizon.
    particles : int
        Simulated futures per logged start and member.
    state_weight : float
        Weight of the simulated *state's* shortfall beside the decision's (0: decisions
        only). A policy whose every decision looks ordinary can still drive, one small
        step at a time, into states no log holds (a slow drift off the road); the state
        shortfall of each simulated step sees the accumulated drift.
    base_rate_outside : bool
        Outside the state support, learned event probabilities stay at least at their
        base rates (off by default: the crash channels are computed where the log
        declares what they need, and a policy that drives where nobody drove pays through
        ``state_weight``, not through the fleet's crash rate).
    crash_rules : tuple of str
        Crash channels that computed rules detect (:mod:`roadworthy.evaluator.world`):
        ``collision`` from the gaps, ``off_road`` from the pose and the map.
    lane_change : {"learned", "kinematic"}
        How the ego's slots are refilled when it changes lanes
        (:meth:`roadworthy.evaluator.world.World._follow_lane_change`).
    """

    hazard_estimate: float = 0.05
    hazard_bound: float = 2.0
    pessimism: str = "terminal"
    particles: int = 2
    state_weight: float = 0.0
    base_rate_outside: bool = False
    crash_rules: tuple[str, ...] = ("collision", "off_road")
    lane_change: str = "learned"


@dataclass(frozen=True)
class HeadlineSettings:
    """Thresholds of the rule (module docstring)."""

    tolerance: float = 0.1
    anchor_s: float = 2.0
    danger_lead_s: float = 1.0
    danger_detection: float = 0.5
    fqe_checks: str = "auto"
