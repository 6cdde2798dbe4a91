"""The public Python API: one function per job, each returning a typed result.

Every command of the ``roadworthy`` CLI is a thin layer over exactly one of these
(it parses arguments, calls the function, renders the result), so a notebook or a
pipeline gets the same behaviour, the same errors and the same JSON. Errors are
:class:`roadworthy.data.errors.RoadworthyError` subclasses (``LogError``,
``PolicyError``, ``UsageError``) naming the file, the place and the fix.

Progress: functions that take long accept ``on_rows``/``on_episode``/``on_stage``
callbacks (the CLI draws progress bars with them); nothing prints.

See docs/api.md for a walk through the demo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from roadworthy.results import (
    BehaviorFit,
    CarlaImport,
    Collection,
    Evaluation,
    GateResult,
    Rollout,
    Scores,
    Validation,
)

Progress = Callable[[int], None] | None
Stage = Callable[[str], None] | None


def validate(logs: str | Path, *, on_rows: Progress = None) -> Validation:
    """Check a dataset against the log contract (``../shared/docs/contracts.md``) and summarize it.

    Raises :class:`~roadworthy.data.errors.LogError` at the first problem, naming the
    file, the column and the ``(episode_id, step)``.
    """
    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.validate import validate_logs

    return Validation(validate_logs(scan_logs(logs), on_rows=on_rows))


def fit(
    logs: str | Path,
    out: str | Path | None = None,
    *,
    model: str = "mdn",
    state_model: str = "gmm",
    alpha: float = 0.01,
    calibration_fraction: float = 0.2,
    slice_by: Sequence[str] = (),
    min_bin: int = 200,
    block_steps: int = 0,
    epochs: int | None = None,
    seed: int = 0,
    driving: bool = True,
    overwrite: bool = False,
    on_rows: Progress = None,
    on_stage: Stage = None,
) -> BehaviorFit:
    """Fit the behaviour density model, p(action | state) and p(state), with calibrated OOD thresholds,
    and (``driving``) the learned driving model that :func:`evaluate` and :func:`gate` reuse.

    Parameters
    ----------
    logs : path
        Driving logs (a Parquet file or folder).
    out : path, optional
        Model folder to write (atomically); None keeps the model in memory only.
    model, state_model : str
        Estimators: ``mdn`` (default), ``gmm``, ``knn`` or ``iforest``; ``gmm`` for the state.
    alpha : float
        False-alarm rate of the flags on logged behaviour (a share of rows).
    seed : int
        Seed of the calibration split and of training; also of the driving model's
        bootstrap resamples (an evaluation with another seed refits it).
    driving : bool
        Also fit the learned driving model with the evaluation's default settings and
        save it in ``out/driving`` (needs ``out``).
    """
    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.writer import guard_output, staging_dir
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel

    guard_output(out, inputs=[logs], overwrite=overwrite, folder=True, option="--output")
    params: dict = {"random_state": seed}
    if epochs is not None and model == "mdn":
        params["epochs"] = epochs
    config = BehaviorConfig(
        model=model,
        model_params=params,
        state_model=state_model,
        state_params={"random_state": seed},
        alpha=alpha,
        calibration_fraction=calibration_fraction,
        slice_by=tuple(slice_by),
        min_bin=min_bin,
        block_steps=block_steps,
        seed=seed,
    )
    config.validate()
    fitted = BehaviorModel.fit(scan_logs(logs), config, on_rows=on_rows, on_stage=on_stage)
    if out is None:
        return BehaviorFit(fitted, None)
    saved = None
    with staging_dir(out) as staging:
        fitted.save(staging)
        if driving:
            from roadworthy.evaluator.evaluate_config import EvaluateConfig
            from roadworthy.evaluator.model_io import driving_path, fit_and_save_driving

            key = fit_and_save_driving(logs, driving_path(staging), EvaluateConfig(seed=seed), on_stage=on_stage)
            saved = {"folder": str(driving_path(out)), "heads": key["heads"], "seed": key["seed"]}
    return BehaviorFit(fitted, Path(out), saved)


def score(
    logs: str | Path,
    model: str | Path,
    out: str | Path,
    *,
    policy: str | Path | None = None,
    alpha: float | None = None,
    bh: bool = False,
    engine: str = "local",
    address: str | None = None,
    overwrite: bool = False,
    on_rows: Progress = None,
    on_stage: Stage = None,
) -> Scores:
    """Per-row log-density and OOD flag of the logged actions (or of ``policy``'s), written to ``out``.

    See :func:`roadworthy.density.scoring.score_logs` for the parameters and the columns.
    """
    from roadworthy.data.writer import guard_output
    from roadworthy.density.scoring import score_logs

    guard_output(out, inputs=[logs, model, policy], overwrite=overwrite, folder=engine == "ray", option="--output")
    counts = score_logs(
        logs,
        model,
        out,
        policy=policy,
        alpha=alpha,
        bh=bh,
        engine=engine,
        address=address,
        on_rows=on_rows,
        on_stage=on_stage,
    )
    return Scores(counts)


def evaluate(
    logs: str | Path,
    policies: Sequence[str | Path],
    *,
    model: str | Path | None = None,
    config=None,
    allow_code: bool = False,
    engine: str = "local",
    address: str | None = None,
    on_stage: Stage = None,
    on_policy: Callable[[dict], None] | None = None,
) -> Evaluation:
    """Value, safety costs, coverage and intervals of each policy, from the logs alone.

    Parameters
    ----------
    logs : path
        Driving logs.
    policies : sequence of paths
        ONNX policy files (``.pt2`` and ``module:callable`` only with ``allow_code``).
    model : path, optional
        Behaviour model folder from :func:`fit` (default: one is fitted on ``logs``).
    config : roadworthy.evaluator.evaluate.EvaluateConfig, optional
        Estimator settings (gamma, seed, heads, ...; defaults when None).
    """
    from roadworthy.evaluator.evaluate import evaluate as run

    # The library validates the settings and the engine before reading anything.
    report = run(
        logs,
        list(policies),
        model=model,
        config=config,
        on_stage=on_stage,
        on_policy=on_policy,
        allow_code=allow_code,
        engine=engine,
        address=address,
    )
    return Evaluation(report)


def gate(
    logs: str | Path,
    candidate: str | Path,
    baseline: str | Path = "behavior",
    *,
    config=None,
    model: str | Path | None = None,
    seed: int | None = None,
    allow_code: bool = False,
    on_stage: Stage = None,
) -> GateResult:
    """Pass or fail ``candidate`` against ``baseline`` (a policy file, or ``"behavior"``), from the logs alone.

    ``config`` is a :class:`~roadworthy.evaluator.gate_config.GateConfig`, a TOML file
    (docs/gate.md) or None for the defaults. The result's ``passed``, ``exit_code``
    (0 or 1) and ``verdict`` (the versioned JSON) say how it went.
    """
    from roadworthy.evaluator.gate_run import run_gate

    verdict, report = run_gate(
        logs, candidate, baseline, config=config, model=model, seed=seed, allow_code=allow_code, on_stage=on_stage
    )
    return GateResult(verdict, report)


def collect(
    out: str | Path,
    episodes: int,
    *,
    seed: int = 0,
    workers: int | None = None,
    duration: float = 30.0,
    autopilot_share: float = 0.6,
    overwrite: bool = False,
    on_episode: Callable | None = None,
) -> Collection:
    """Simulate human and autopilot driving with takeovers (highway-env) and write it as Parquet.

    Needs the ``sim`` extra. ``duration`` is the episode time limit in seconds; the same
    seed gives the same files.
    """
    from roadworthy.data.errors import UsageError, check_seed
    from roadworthy.data.sim.collect import collect_highway
    from roadworthy.data.sim.episodes import FleetConfig
    from roadworthy.data.sim.highway import HighwayConfig
    from roadworthy.data.validate import validate_logs

    check_seed(seed)
    if episodes < 1:
        raise UsageError(f"--episodes must be at least 1, got {episodes}", "ask for one or more episodes")
    if not duration > 0 or duration == float("inf"):
        raise UsageError(f"--duration must be positive and finite, got {duration}", "give seconds, e.g. 30")
    if not 0.0 <= autopilot_share <= 1.0:
        raise UsageError(f"--autopilot-share must lie in [0, 1], got {autopilot_share}", "e.g. 0.6")
    result = collect_highway(
        out,
        episodes=episodes,
        seed=seed,
        workers=workers,
        config=HighwayConfig(duration=duration),
        fleet=FleetConfig(autopilot_share=autopilot_share),
        overwrite=overwrite,
        on_episode=on_episode,
    )
    return Collection(result, validate_logs(out))


def rollout(
    policies: Sequence[str | Path],
    episodes: int,
    *,
    gamma: float = 0.99,
    seed: int = 0,
    workers: int | None = None,
    duration: float = 30.0,
    out: str | Path | None = None,
    overwrite: bool = False,
    on_episode: Callable | None = None,
) -> Rollout:
    """Closed-loop ground truth: each policy drives the embedded simulator for ``episodes`` episodes.

    Needs the ``sim`` extra. With ``out``, the rollouts are also written as a driving log.
    """
    from roadworthy.data.errors import UsageError, check_seed
    from roadworthy.data.sim.highway import HighwayConfig
    from roadworthy.data.sim.rollout import rollout_highway

    check_seed(seed)
    if not duration > 0 or duration == float("inf"):
        raise UsageError(f"--duration must be positive and finite, got {duration}", "give seconds, e.g. 30")
    report = rollout_highway(
        list(policies),
        episodes=episodes,
        gamma=gamma,
        seed=seed,
        workers=workers,
        config=HighwayConfig(duration=duration),
        out=out,
        on_episode=on_episode,
        overwrite=overwrite,
    )
    return Rollout(report)


def import_carla(
    recording: str | Path,
    map_path: str | Path,
    out: str | Path,
    *,
    hero: str | None = None,
    source: str = "autopilot",
    overwrite: bool = False,
) -> CarlaImport:
    """Convert a CARLA recorder file into a contract-v1 driving log of its hero, with the map's lanes.

    ``map_path`` is the town's OpenDRIVE file; ``hero`` an actor id or role name
    (default: role ``hero``); ``source`` who drove it (``autopilot`` or ``human``).
    No CARLA server is needed.
    """
    from roadworthy.data.carla.importer import import_recording
    from roadworthy.data.errors import UsageError
    from roadworthy.data.validate import validate_logs

    if source not in ("autopilot", "human"):
        raise UsageError(f"--source must be autopilot or human, got '{source}'", "e.g. --source human")
    result = import_recording(recording, map_path=map_path, out=out, hero=hero, source=source, overwrite=overwrite)
    return CarlaImport(result, validate_logs(out))
