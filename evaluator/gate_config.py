"""The gate's settings: typed dataclasses read from a validated TOML file.

Every key has a default, so a file only lists what it changes. Unknown sections or
keys and values of the wrong type are errors that list the valid keys: a typo in a
CI gate must not silently loosen it.

Example (every key, with its default)::

    [evaluation]            # how candidate and baseline are evaluated
    gamma = 0.99
    seed = 0
    heads = 10              # bootstrap heads (and of the paired differences)
    estimator = "auto"      # "auto" (the rule of docs/evaluator.md), "model" or "fqe"
    model_steps = 1500      # gradient steps of the learned driving model
    iterations = 0          # FQE: fitted Q iterations, 0: horizon + 20
    steps_per_iteration = 80
    hidden_units = 64       # FQE: width of the two hidden layers of the Q-networks
    pessimism = "terminal"  # or "horizon"
    support_alpha = 0.001
    confidence = 0.95

    [value]                 # non-inferiority of the value
    enabled = true
    margin = 0.0            # absolute, in return units
    relative_margin = 0.1   # share of |baseline value|
    bound = "estimate"      # the candidate's figure: "estimate" (graded pessimism) or "lower" (strictest)
    baseline_bound = "same" # like for like: the baseline's figure of the same kind;
                            # "estimate" or "upper" for a stricter gate

    [coverage]
    min = 0.95              # share of the candidate's decisions in the trusted support

    [costs]                 # per cost channel: candidate's cost vs the baseline's
    enabled = true
    channels = []           # [] = every channel in the log but disengagement
    margin = 0.02           # absolute, expected discounted cost (crash channels: a probability)
    relative_margin = 0.5   # share of the baseline's cost estimate
    bound = "estimate"      # the candidate's figure: "estimate" (graded pessimism) or "upper" (strictest)
    baseline_bound = "same" # like for like; "estimate": the candidate alone carries the doubt

    [costs.margins]         # absolute margins of single channels (instead of margin)
    ttc = 0.5               # expected discounted number of steps with TTC below 1.5 s
    headway = 1.0           # ... with time headway below 0.5 s
    lane_departure = 0.5    # ... with a corner of the car over 0.3 m beyond the road's edge

    [costs.limits]          # absolute limits on the candidate's pessimistic cost (none by default)
    collision = 0.1

    [ood]                   # optional: out-of-support rate per group (off by default)
    max_rate = 0.1
    by = ["source", "scenario"]
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from roadworthy.data.errors import UsageError, check_finite, check_seed

if TYPE_CHECKING:
    from roadworthy.evaluator.evaluate_config import EvaluateConfig


@dataclass(frozen=True)
class EvaluationSection:
    """How candidate and baseline are evaluated (see ``roadworthy evaluate``)."""

    gamma: float = 0.99
    seed: int = 0
    heads: int = 10
    estimator: str = "auto"
    model_steps: int = 1500
    iterations: int = 0
    steps_per_iteration: int = 80
    hidden_units: int = 64
    pessimism: str = "terminal"
    support_alpha: float = 0.001
    confidence: float = 0.95

    def to_config(self) -> EvaluateConfig:
        """The :class:`~roadworthy.evaluator.evaluate_config.EvaluateConfig` these settings ask for.

        The one place where flat settings (the CLI's flags, the TOML's ``[evaluation]`` keys)
        become the estimators' configs; :meth:`of` is its inverse.
        """
        from dataclasses import replace

        from roadworthy.evaluator.evaluate_config import EvaluateConfig
        from roadworthy.evaluator.settings import FQEConfig, ModelConfig, RolloutSettings

        fqe = replace(
            FQEConfig(),
            heads=self.heads,
            iterations=self.iterations,
            steps_per_iteration=self.steps_per_iteration,
            hidden=(self.hidden_units, self.hidden_units),
            pessimism=self.pessimism,
        )
        return EvaluateConfig(
            gamma=self.gamma,
            seed=self.seed,
            heads=self.heads,
            estimator=self.estimator,
            support_alpha=self.support_alpha,
            confidence=self.confidence,
            fqe=fqe,
            model=replace(ModelConfig(), steps=self.model_steps, heads=self.heads),
            rollout=replace(RolloutSettings(), pessimism=self.pessimism),
        )

    @classmethod
    def of(cls, config: EvaluateConfig) -> EvaluationSection:
        """The section that describes an :class:`roadworthy.evaluator.evaluate.EvaluateConfig` (the inverse of
        :meth:`GateConfig.evaluate_config`), e.g. to record settings used outside ``roadworthy gate``."""
        return cls(
            gamma=config.gamma,
            seed=config.seed,
            heads=config.heads,
            estimator=config.estimator,
            model_steps=config.model.steps,
            iterations=config.fqe.iterations,
            steps_per_iteration=config.fqe.steps_per_iteration,
            hidden_units=config.fqe.hidden[0],
            pessimism=config.fqe.pessimism,
            support_alpha=config.support_alpha,
            confidence=config.confidence,
        )


@dataclass(frozen=True)
class ValueSection:
    """Non-inferiority of the value: lower bound of (candidate - baseline) >= -margin."""

    enabled: bool = True
    margin: float = 0.0
    relative_margin: float = 0.1
    #: The candidate's figure: ``estimate`` (the learned world's value, pessimistic in
    #: proportion to how far and how often the policy leaves the support) or ``lower`` (the
    #: identification bound: every decision outside the support may end in the worst reward).
    bound: str = "estimate"
    #: The baseline's figure it meets. ``same`` (like for like): both carry the same kind of
    #: doubt about what the logs cannot tell, so a candidate pays only for the doubt it adds;
    #: A/A comparisons are exactly 0. ``lower``, ``estimate`` or ``upper`` name one.
    baseline_bound: str = "same"

    def baseline_figure(self) -> str:
        """The baseline's per-head figure the check uses."""
        return self.bound if self.baseline_bound == "same" else self.baseline_bound


@dataclass(frozen=True)
class CoverageSection:
    """Minimum share of the candidate's decisions inside the trusted support."""

    min: float = 0.95


#: Channels the gate leaves out unless named: a takeover is the safety driver's call,
#: counted only where an autopilot drove, and has no closed-loop truth; the surrogate
#: channels measure the risky moments that trigger takeovers directly.
NOT_GATED_BY_DEFAULT = ("disengagement",)


@dataclass(frozen=True)
class CostsSection:
    """Per cost channel: upper bound of (candidate - baseline) <= margin; absolute limits."""

    enabled: bool = True
    channels: list[str] = field(default_factory=list)
    margin: float = 0.02
    relative_margin: float = 0.5
    margins: dict[str, float] = field(default_factory=lambda: {"ttc": 0.5, "headway": 1.0, "lane_departure": 0.5})
    #: The candidate's figure: ``estimate`` (graded pessimism) or ``upper`` (strictest).
    bound: str = "estimate"
    #: The baseline's figure: ``same`` (like for like), ``estimate`` or ``upper``.
    baseline_bound: str = "same"
    limits: dict[str, float] = field(default_factory=dict)

    def baseline_figure(self) -> str:
        """The baseline's per-head figure the check uses."""
        return self.bound if self.baseline_bound == "same" else self.baseline_bound

    def margin_for(self, channel: str) -> float:
        """Absolute margin of one channel."""
        return self.margins.get(channel, self.margin)

    def gated(self, available: list[str]) -> list[str]:
        """The channels checked: those named, or every available one but the default exclusions."""
        return list(self.channels) or [c for c in available if c not in NOT_GATED_BY_DEFAULT]


@dataclass(frozen=True)
class OodSection:
    """Optional maximum out-of-support rate in every group of the given kinds."""

    max_rate: float | None = None
    by: list[str] = field(default_factory=lambda: ["source", "scenario"])


@dataclass(frozen=True)
class GateConfig:
    """All settings of ``roadworthy gate``."""

    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    value: ValueSection = field(default_factory=ValueSection)
    coverage: CoverageSection = field(default_factory=CoverageSection)
    costs: CostsSection = field(default_factory=CostsSection)
    ood: OodSection = field(default_factory=OodSection)

    def to_dict(self) -> dict:
        """Plain dict (for the verdict)."""
        return asdict(self)

    def evaluate_config(self) -> EvaluateConfig:
        """The :class:`roadworthy.evaluator.evaluate_config.EvaluateConfig` that ``[evaluation]`` asks for."""
        return self.evaluation.to_config()


OOD_GROUPS = ("source", "scenario")


def _fail(where: str, problem: str, hint: str) -> UsageError:
    return UsageError(f"{where}: {problem}", hint)


def _coerce(where: str, value: object, annotation: object) -> object:
    """Check ``value`` against a field's annotation (the few types the config uses)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _coerce(where, value, args[0])
    if annotation is bool:
        if not isinstance(value, bool):
            raise _fail(where, f"expected true or false, got {value!r}", "write true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(where, f"expected an integer, got {value!r}", "write a whole number")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(where, f"expected a number, got {value!r}", "write a number such as 0.05")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise _fail(where, f"expected a string, got {value!r}", 'write it in quotes, e.g. "estimate"')
        return value
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _fail(where, f"expected a list of strings, got {value!r}", 'write e.g. ["collision"]')
        return list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(where, f"expected a table of numbers, got {value!r}", "write e.g. collision = 0.1")
        out = {}
        for k, v in value.items():
            out[k] = _coerce(f"{where}.{k}", v, float)
        return out
    raise TypeError(annotation)  # pragma: no cover - a config field of a new type


def _section(cls: type, raw: object, where: str) -> object:
    if not isinstance(raw, dict):
        raise _fail(where, f"expected a table, got {raw!r}", f"write it as [{where.split(':')[-1].strip()}]")
    types_ = typing.get_type_hints(cls)
    valid = [f.name for f in fields(cls)]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise _fail(
            where,
            f"unknown key(s) {', '.join(unknown)}",
            f"valid keys here are {', '.join(valid)} (see docs/gate.md)",
        )
    return cls(**{k: _coerce(f"{where}.{k}", v, types_[k]) for k, v in raw.items()})


def parse_gate_config(raw: dict, source: str = "gate config") -> GateConfig:
    """Validate a parsed TOML document; raise :class:`UsageError` naming the bad key."""
    sections = {f.name: f for f in fields(GateConfig)}
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise _fail(
            source,
            f"unknown section(s) {', '.join(unknown)}",
            f"valid sections are {', '.join(f'[{s}]' for s in sections)} (see docs/gate.md)",
        )
    hints = typing.get_type_hints(GateConfig)
    cfg = GateConfig(**{k: _section(hints[k], v, f"{source}: [{k}]") for k, v in raw.items()})
    if "margins" in raw.get("costs", {}):
        # A file names the channels whose margin it changes; the others keep theirs.
        from dataclasses import replace

        cfg = replace(cfg, costs=replace(cfg.costs, margins=CostsSection().margins | cfg.costs.margins))
    _check_ranges(cfg, source)
    return cfg


def _check_ranges(cfg: GateConfig, source: str) -> None:
    ev = cfg.evaluation
    if not 0.0 < ev.gamma <= 1.0:
        raise _fail(f"{source}: [evaluation].gamma", f"must lie in (0, 1], got {ev.gamma}", "e.g. 0.99")
    if ev.heads < 2:
        raise _fail(f"{source}: [evaluation].heads", f"needs at least 2, got {ev.heads}", "e.g. 5")
    if ev.iterations < 0 or ev.steps_per_iteration < 1 or ev.hidden_units < 1:
        raise _fail(
            f"{source}: [evaluation]",
            "iterations must be >= 0, steps_per_iteration and hidden_units >= 1",
            "e.g. iterations = 0, steps_per_iteration = 80, hidden_units = 64",
        )
    if ev.estimator not in ("auto", "model", "fqe"):
        raise _fail(f"{source}: [evaluation].estimator", f"got {ev.estimator!r}", 'use "auto", "model" or "fqe"')
    if ev.model_steps < 1:
        raise _fail(f"{source}: [evaluation].model_steps", f"must be >= 1, got {ev.model_steps}", "e.g. 1500")
    if ev.pessimism not in ("terminal", "horizon"):
        raise _fail(f"{source}: [evaluation].pessimism", f"got {ev.pessimism!r}", 'use "terminal" or "horizon"')
    if not 0.0 < ev.support_alpha < 1.0:
        raise _fail(
            f"{source}: [evaluation].support_alpha", f"must lie in (0, 1), got {ev.support_alpha}", "e.g. 0.001"
        )
    if not 0.5 <= ev.confidence < 1.0:
        raise _fail(f"{source}: [evaluation].confidence", f"must lie in [0.5, 1), got {ev.confidence}", "e.g. 0.95")
    for key, got, allowed in (
        ("[value].bound", cfg.value.bound, ("estimate", "lower")),
        ("[value].baseline_bound", cfg.value.baseline_bound, ("same", "lower", "estimate", "upper")),
        ("[costs].bound", cfg.costs.bound, ("estimate", "upper")),
        ("[costs].baseline_bound", cfg.costs.baseline_bound, ("same", "upper", "estimate")),
    ):
        if got not in allowed:
            names = ", ".join(f'"{a}"' for a in allowed)
            raise _fail(f"{source}: {key}", f"got {got!r}", f"use one of {names}")
    check_seed(ev.seed, f"{source}: [evaluation].seed")
    for name, v in (
        ("[evaluation].gamma", ev.gamma),
        ("[evaluation].support_alpha", ev.support_alpha),
        ("[evaluation].confidence", ev.confidence),
        ("[coverage].min", cfg.coverage.min),
        *((f"[costs.limits].{k}", v) for k, v in cfg.costs.limits.items()),
        *(() if cfg.ood.max_rate is None else (("[ood].max_rate", cfg.ood.max_rate),)),
    ):
        check_finite(v, f"{source}: {name}", low=0.0)
    if ev.heads > 1000 or ev.model_steps > 10**7 or ev.iterations > 10**5 or ev.hidden_units > 4096:
        raise _fail(
            f"{source}: [evaluation]",
            "heads, model_steps, iterations or hidden_units is beyond what one machine can run",
            "use at most 1000 heads, 10^7 model steps, 10^5 iterations and 4096 hidden units",
        )
    for name, v in (
        ("[value].margin", cfg.value.margin),
        ("[value].relative_margin", cfg.value.relative_margin),
        ("[costs].margin", cfg.costs.margin),
        ("[costs].relative_margin", cfg.costs.relative_margin),
        *((f"[costs.margins].{k}", v) for k, v in cfg.costs.margins.items()),
    ):
        check_finite(v, f"{source}: {name}", low=0.0)
    if not 0.0 <= cfg.coverage.min <= 1.0:
        raise _fail(f"{source}: [coverage].min", f"must lie in [0, 1], got {cfg.coverage.min}", "e.g. 0.95")
    bad = sorted(set(cfg.ood.by) - set(OOD_GROUPS))
    if bad:
        raise _fail(f"{source}: [ood].by", f"unknown group(s) {', '.join(bad)}", f"use {', '.join(OOD_GROUPS)}")


def load_gate_config(path: str | Path | None) -> GateConfig:
    """Read a gate TOML file (defaults when ``path`` is None).

    Raises
    ------
    UsageError
        For a missing or unreadable file, TOML syntax errors, unknown keys and bad values.
    """
    if path is None:
        return GateConfig()
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such gate config file", "check the `config` path")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})", "fix the syntax; see docs/gate.md for an example") from None
    return parse_gate_config(raw, str(path))
