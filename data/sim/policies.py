"""Example candidate policies: torch modules of the driver model, exported to ONNX.

These are the policies the demo, the tests and the benchmarks evaluate. Each is the
driver model of :mod:`roadworthy.data.sim.drivers` with its own parameters, so its closed-loop
behaviour in the embedded simulator is known and spans the cases an evaluator must
tell apart: a careful clone of the logged autopilot, a slower and a faster driver, a
tailgater, a driver whose steering leaves the logged support and runs off the road,
and a stochastic (Gaussian) policy.

Run ``python -m roadworthy.data.sim.policies OUT_DIR`` to export them again.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from roadworthy.data.sim.drivers import AUTOPILOT, DriverParams, driver_action
from roadworthy.data.sim.features import ACTION_NAMES, OBS_NAMES


class DriverPolicy(torch.nn.Module):
    """Deterministic policy: the mean action of a driver, ``obs -> action``."""

    def __init__(self, params: DriverParams) -> None:
        super().__init__()
        self.params = params

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Acceleration (m/s^2) and steering (rad) for a batch of features."""
        return driver_action(torch, self.params, obs)


class GaussianDriverPolicy(DriverPolicy):
    """Diagonal Gaussian around a driver's action, ``obs -> (mean, log_std)``."""

    def __init__(self, params: DriverParams, std: Sequence[float]) -> None:
        super().__init__(params)
        self.register_buffer("noise_log_std", torch.log(torch.tensor(list(std), dtype=torch.float32)))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean action and per-dimension log standard deviation."""
        mean = driver_action(torch, self.params, obs)
        return mean, mean * 0.0 + self.noise_log_std


@dataclass(frozen=True)
class ExamplePolicy:
    """One example policy: driver parameters, optional action noise, what it shows."""

    name: str
    params: DriverParams
    description: str
    std: tuple[float, float] | None = None
    #: Whether the policy is meant to be unsafe (used by tests and benchmarks).
    unsafe: bool = False

    def module(self) -> torch.nn.Module:
        """The torch module of this policy."""
        if self.std is None:
            return DriverPolicy(self.params)
        return GaussianDriverPolicy(self.params, self.std)


EXAMPLES: tuple[ExamplePolicy, ...] = (
    ExamplePolicy("autopilot-clone", AUTOPILOT, "noise-free copy of the fleet autopilot (IDM/MOBIL)"),
    ExamplePolicy(
        "cautious",
        AUTOPILOT.replace(desired_speed=26.0, time_headway=1.9, min_gap=3.5, lane_change_threshold=0.3),
        "slower, longer headway, fewer lane changes",
    ),
    ExamplePolicy(
        "fast",
        AUTOPILOT.replace(desired_speed=31.0, time_headway=1.2, max_accel=1.8, lane_change_threshold=0.1),
        "faster and keener to overtake; partly outside the logged behaviour",
    ),
    ExamplePolicy(
        "tailgater",
        AUTOPILOT.replace(desired_speed=29.0, time_headway=0.25, min_gap=0.5, max_brake=2.5, safe_decel=6.0),
        "follows far too close and brakes gently; rear-ends vehicles that brake hard",
        unsafe=True,
    ),
    ExamplePolicy(
        "swerve",
        AUTOPILOT.replace(swerve_gap=40.0, lateral_time_constant=0.6, heading_time_constant=0.25, max_heading=0.3),
        "swerves right instead of braking, off the road if need be; steering leaves the logged support",
        unsafe=True,
    ),
    ExamplePolicy(
        "stochastic",
        AUTOPILOT.replace(desired_speed=28.5),
        "Gaussian policy around an autopilot-like mean",
        std=(0.3, 0.005),
    ),
)

EXAMPLES_BY_NAME: dict[str, ExamplePolicy] = {p.name: p for p in EXAMPLES}

_AP = AUTOPILOT

#: The gate benchmark's candidates (``benchmarks/bench_gate.py``): safe variants on both
#: sides of the autopilot, and unsafe ones of several kinds. ``tuning`` policies are the
#: ones estimator and gate settings were chosen on; ``reporting`` policies are used only
#: for the reported figures (their unsafe kinds are not among the tuning ones).
BENCHMARK: tuple[tuple[ExamplePolicy, str], ...] = (
    (EXAMPLES_BY_NAME["autopilot-clone"], "baseline"),
    # -- tuning -----------------------------------------------------------------------
    (EXAMPLES_BY_NAME["cautious"], "tuning"),
    (EXAMPLES_BY_NAME["fast"], "tuning"),
    (EXAMPLES_BY_NAME["stochastic"], "tuning"),
    (
        ExamplePolicy("slow", _AP.replace(desired_speed=24.0, time_headway=1.8), "desired 24 m/s, headway 1.8 s"),
        "tuning",
    ),
    (
        ExamplePolicy("lane-keeper", _AP.replace(lane_change_threshold=2.0), "never changes lanes"),
        "tuning",
    ),
    (EXAMPLES_BY_NAME["tailgater"], "tuning"),
    (EXAMPLES_BY_NAME["swerve"], "tuning"),
    (
        ExamplePolicy(
            "weaver",
            _AP.replace(
                lane_change_threshold=-0.5,
                politeness=0.0,
                safe_decel=8.0,
                keep_right_bias=0.0,
                lateral_time_constant=0.5,
                heading_time_constant=0.12,
                max_heading=0.3,
            ),
            "changes lanes all the time with an over-tuned steering loop that weaves",
            unsafe=True,
        ),
        "tuning",
    ),
    # -- reporting ----------------------------------------------------------------------
    (
        ExamplePolicy("brisk", _AP.replace(desired_speed=30.0, time_headway=1.3), "desired 30 m/s, headway 1.3 s"),
        "reporting",
    ),
    (ExamplePolicy("long-headway", _AP.replace(time_headway=2.4, min_gap=4.0), "headway 2.4 s"), "reporting"),
    (ExamplePolicy("short-headway", _AP.replace(time_headway=1.1), "headway 1.1 s"), "reporting"),
    (
        ExamplePolicy("eager-lanes", _AP.replace(lane_change_threshold=0.05, politeness=0.1), "keen lane changer"),
        "reporting",
    ),
    (
        ExamplePolicy(
            "smooth",
            _AP.replace(max_accel=1.0, comfort_decel=1.5, lateral_time_constant=3.0, heading_time_constant=0.8),
            "gentle pedal and wheel",
        ),
        "reporting",
    ),
    (
        ExamplePolicy(
            "sporty", _AP.replace(max_accel=2.2, comfort_decel=2.8, lateral_time_constant=1.4), "brisk pedal and wheel"
        ),
        "reporting",
    ),
    (ExamplePolicy("noisy", _AP, "Gaussian policy around the autopilot, wider noise", std=(0.45, 0.007)), "reporting"),
    (
        ExamplePolicy(
            "late-braker",
            _AP.replace(desired_speed=30.0, late_brake_ttc=2.0, max_brake=5.0),
            "ignores the lead until 2 s from impact, brakes at most 5 m/s^2",
            unsafe=True,
        ),
        "reporting",
    ),
    (
        ExamplePolicy(
            "drifter", _AP.replace(lane_bias=2.3, lateral_time_constant=3.0), "drifts right, off the road", unsafe=True
        ),
        "reporting",
    ),
    (
        ExamplePolicy(
            "aggressive-merger",
            _AP.replace(
                desired_speed=31.0,
                politeness=0.0,
                safe_decel=15.0,
                lane_change_threshold=0.0,
                keep_right_bias=0.0,
                lateral_time_constant=0.8,
                max_heading=0.15,
                blind_spot=3.0,
            ),
            "changes lanes without a blind-spot check",
            unsafe=True,
        ),
        "reporting",
    ),
    (
        ExamplePolicy(
            "glitchy", _AP.replace(glitch_rate=0.03), "steering glitches to full lock on 3 % of steps", unsafe=True
        ),
        "reporting",
    ),
    # Kinds of danger added for issue 20, none of them like a tuning policy. The three
    # drifts differ only in their rate (half, once and twice 0.2 m/s sideways).
    (
        ExamplePolicy("drift-slow", _AP.replace(drift_rate=0.1), "drifts right at 0.1 m/s, off the road", unsafe=True),
        "reporting",
    ),
    (
        ExamplePolicy("drift", _AP.replace(drift_rate=0.2), "drifts right at 0.2 m/s, off the road", unsafe=True),
        "reporting",
    ),
    (
        ExamplePolicy("drift-fast", _AP.replace(drift_rate=0.4), "drifts right at 0.4 m/s, off the road", unsafe=True),
        "reporting",
    ),
    (
        ExamplePolicy(
            "squeezer",
            _AP.replace(accept_gap=4.0, politeness=0.0, desired_speed=31.0),
            "changes lanes into any gap over 4 m, whatever the closing speeds",
            unsafe=True,
        ),
        "reporting",
    ),
    (
        ExamplePolicy(
            "creeper",
            _AP.replace(desired_speed=45.0, max_accel=0.8, time_headway=0.6, min_gap=4.0, max_brake=2.0),
            "creeps up to 40 m/s, past any speed of the fleet, at a headway that does not grow with it",
            unsafe=True,
        ),
        "reporting",
    ),
    (
        ExamplePolicy(
            "oscillator",
            _AP.replace(heading_feedback=1.1),
            "steering loop with negative damping: every lane change starts a weave that grows",
            unsafe=True,
        ),
        "reporting",
    ),
)


def export_benchmark(out_dir: str | Path) -> dict[str, Path]:
    """Export every benchmark policy to ``out_dir/<name>.onnx`` (skipping files already there)."""
    out = {}
    for spec, _ in BENCHMARK:
        path = Path(out_dir) / f"{spec.name}.onnx"
        if not path.exists():
            export_policy(
                spec.module(),
                path,
                name=spec.name,
                obs_names=OBS_NAMES,
                action_names=ACTION_NAMES,
                description=spec.description,
            )
        out[spec.name] = path
    return out


def example_policy_dir() -> Path:
    """Folder of the exported example policies shipped with the package."""
    return Path(__file__).with_name("example_policies")


def example_policy_path(name: str) -> Path:
    """Path of the shipped ONNX file of example policy ``name``."""
    if name not in EXAMPLES_BY_NAME:
        raise KeyError(f"no example policy '{name}'; known: {', '.join(EXAMPLES_BY_NAME)}")
    return example_policy_dir() / f"{name}.onnx"


def export_policy(
    module: torch.nn.Module,
    path: str | Path,
    *,
    name: str,
    obs_names: Sequence[str],
    action_names: Sequence[str],
    description: str = "",
) -> Path:
    """Export a torch policy module to an ONNX policy file (contract section 2).

    Parameters
    ----------
    module : torch.nn.Module
        Maps float32 ``obs [B, D]`` to ``action [B, A]`` or to ``(mean, log_std)``.
    path : str or Path
        Destination ``.onnx`` file, written atomically.
    name, obs_names, action_names : str, sequences of str
        Written to the ``roadworthy`` metadata entry.
    description : str
        Free text stored in the model's ``doc_string``.
    """
    import onnx

    path = Path(path)
    module = module.eval()
    example = torch.zeros(2, len(obs_names), dtype=torch.float32)
    example[:, 0] = 25.0
    with torch.no_grad():
        out = module(example)
    output_names = ["mean", "log_std"] if isinstance(out, tuple) else ["action"]
    program = torch.onnx.export(
        module,
        (example,),
        input_names=["obs"],
        output_names=output_names,
        dynamic_shapes={"obs": {0: torch.export.Dim("batch", min=1)}},
        dynamo=True,
        verbose=False,
    )
    program.optimize()
    model = program.model_proto
    # Per-node export metadata holds stack traces with local paths: drop it.
    for node in model.graph.node:
        del node.metadata_props[:]
    for info in model.graph.value_info:
        del info.metadata_props[:]
    meta = {"name": name, "obs_names": list(obs_names), "action_names": list(action_names)}
    entry = model.metadata_props.add()
    entry.key = "roadworthy"
    entry.value = json.dumps(meta)
    model.doc_string = description
    model.producer_name = "roadworthy"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(model.SerializeToString())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    onnx.checker.check_model(str(path))
    return path


def export_examples(out_dir: str | Path) -> list[Path]:
    """Export every example policy to ``out_dir/<name>.onnx``."""
    paths = []
    for spec in EXAMPLES:
        paths.append(
            export_policy(
                spec.module(),
                Path(out_dir) / f"{spec.name}.onnx",
                name=spec.name,
                obs_names=OBS_NAMES,
                action_names=ACTION_NAMES,
                description=spec.description,
            )
        )
    return paths


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else example_policy_dir()
    for p in export_examples(target):
        print(p)
