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
from typing import TYPE_CHECKING

from roadworthy.results import (
    BehaviorFit,
    CarlaCollection,
    CarlaImport,
    Collection,
    DashboardLaunch,
    Demo,
    DmvImport,
    DmvSummary,
    Evaluation,
    ExamplePolicies,
    GateResult,
    RecordingInfo,
    Rollout,
    Scores,
    SgoImport,
    SgoRates,
    SgoSummary,
    Validation,
)

if TYPE_CHECKING:  # the configs load torch-free, but only when a function runs
    from roadworthy.evaluator.evaluate_config import EvaluateConfig
    from roadworthy.evaluator.gate_config import GateConfig

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
    evaluation: EvaluateConfig | None = None,
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
    evaluation : roadworthy.evaluator.evaluate_config.EvaluateConfig, optional
        Settings of that driving model (those of the evaluations that will reuse it);
        the defaults with ``seed`` when None.
    """
    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.writer import guard_output, staging_dir
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel

    guard_output(out, inputs=[logs], overwrite=overwrite, folder=True, option="out")
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

            settings = evaluation if evaluation is not None else EvaluateConfig(seed=seed)
            key = fit_and_save_driving(logs, driving_path(staging), settings, on_stage=on_stage)
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

    guard_output(out, inputs=[logs, model, policy], overwrite=overwrite, folder=engine == "ray", option="out")
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
    config: EvaluateConfig | None = None,
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
    config: GateConfig | str | Path | None = None,
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
        raise UsageError(f"`episodes` must be at least 1, got {episodes}", "ask for one or more episodes")
    if not duration > 0 or duration == float("inf"):
        raise UsageError(f"`duration` must be positive and finite, got {duration}", "give seconds, e.g. 30")
    if not 0.0 <= autopilot_share <= 1.0:
        raise UsageError(f"`autopilot_share` must lie in [0, 1], got {autopilot_share}", "e.g. 0.6")
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
        raise UsageError(f"`duration` must be positive and finite, got {duration}", "give seconds, e.g. 30")
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
        raise UsageError(f"`source` must be autopilot or human, got '{source}'", "e.g. human")
    result = import_recording(recording, map_path=map_path, out=out, hero=hero, source=source, overwrite=overwrite)
    return CarlaImport(result, validate_logs(out))


def carla_info(recording: str | Path, *, profile: str | None = None, events: bool = False) -> RecordingInfo:
    """Summary of a CARLA recorder file: map, frames, duration, actors, heroes, collisions, packets.

    ``profile`` forces a packet profile such as ``"0.9.13"`` (default: detected from the
    file); ``events`` adds CARLA's own event listing (``show_recorder_file_info``) as ``text``.
    """
    from roadworthy.data.carla.info import summarize_recording
    from roadworthy.data.errors import UsageError

    try:
        return RecordingInfo(summarize_recording(recording, profile=profile, events=events))
    except ValueError as exc:
        raise UsageError(str(exc), "leave `profile` out to detect it from the file") from None


def collect_carla(
    out: str | Path,
    *,
    host: str = "localhost",
    port: int = 2000,
    town: str = "Town01",
    episodes: int = 1,
    duration: float = 60.0,
    traffic: int = 30,
    human: bool = False,
    seed: int = 0,
    timeout: float = 10.0,
    overwrite: bool = False,
    on_tick: Progress = None,
) -> CarlaCollection:
    """Drive a running CARLA server (synchronous mode) and log the hero, with CARLA's recorder alongside.

    Needs the ``carla`` extra and a server at ``host:port`` (checked first, within
    ``timeout`` seconds); ``duration`` is seconds of simulation per episode.
    """
    from roadworthy.data.carla.live import LiveConfig
    from roadworthy.data.carla.live import collect_carla as run

    config = LiveConfig(
        host=host,
        port=port,
        timeout=timeout,
        town=town,
        episodes=episodes,
        duration=duration,
        traffic=traffic,
        human=human,
        seed=seed,
    )
    return CarlaCollection(run(config, out, on_tick=on_tick, overwrite=overwrite))


def collect_carla_steps(duration: float, episodes: int) -> int:
    """Simulation ticks of :func:`collect_carla` (for a progress bar)."""
    from roadworthy.data.carla.live import LiveConfig

    return round(duration / LiveConfig().fixed_delta) * episodes


def import_dmv(
    disengagements: Sequence[str | Path], mileage: Sequence[str | Path], out: str | Path, *, overwrite: bool = False
) -> DmvImport:
    """Read California DMV disengagement and mileage reports into Parquet tables in ``out``.

    The result's report says what was dropped or normalised, with counts (docs/dmv.md).
    """
    from roadworthy.data.dmv.importer import import_dmv as run

    return DmvImport(run(list(disengagements), list(mileage), out, overwrite=overwrite))


def dmv_summary(folder: str | Path, by: Sequence[str] = ("manufacturer", "year")) -> DmvSummary:
    """Disengagements, autonomous miles and the rate per 1,000 miles (exact 95 % interval) per group.

    ``folder`` is one written by :func:`import_dmv`; ``by`` any of manufacturer, year,
    initiator, location, cause.
    """
    from roadworthy.data.dmv.summary import summarize

    return DmvSummary(summarize(folder, tuple(by)))


def import_sgo(reports: Sequence[str | Path], out: str | Path, *, overwrite: bool = False) -> SgoImport:
    """Read NHTSA Standing General Order crash-report releases into Parquet tables in ``out``.

    ``reports``: ADS or level-2 ADAS incident report CSV files, any release; columns are
    placed by meaning. Writes ``reports`` (latest version of each report), ``incidents``
    (one row per crash) and ``report.json`` (what was superseded, merged, normalised or
    dropped; docs/sgo.md).
    """
    from roadworthy.data.sgo.importer import import_sgo as run

    return SgoImport(run(list(reports), out, overwrite=overwrite))


def sgo_summary(folder: str | Path, by: Sequence[str] = ("entity",)) -> SgoSummary:
    """Crashes (distinct incidents) per group: their share with an exact 95 % interval, and the severe ones.

    ``folder`` is one written by :func:`import_sgo`; ``by`` any of entity, operator, maker,
    state, month, year, severity, partner, movement, partner_movement, roadway, system.
    """
    from roadworthy.data.sgo.summary import summarize

    return SgoSummary(summarize(folder, tuple(by)))


def sgo_rates(folder: str | Path, dmv: str | Path) -> SgoRates:
    """California crashes per million autonomous miles per company and DMV report year.

    ``folder`` from :func:`import_sgo`, ``dmv`` from :func:`import_dmv`. Exact Poisson
    intervals; the disengagement rate beside; companies in one source only listed; the
    caveats in the result (``caveats``), to be shown with the numbers.
    """
    from roadworthy.data.sgo.rates import rates

    return SgoRates(rates(folder, dmv))


def example_policies(out: str | Path, *, overwrite: bool = False) -> ExamplePolicies:
    """Copy the example ONNX policies shipped with roadworthy to ``out`` (atomically, file by file)."""
    import shutil

    from roadworthy.data.sim.policies import EXAMPLES, example_policy_path
    from roadworthy.data.writer import guard_output

    out = Path(out)
    targets = {spec.name: out / f"{spec.name}.onnx" for spec in EXAMPLES}
    for target in targets.values():
        guard_output(target, overwrite=overwrite, option="out")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in EXAMPLES:
        target = targets[spec.name]
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(example_policy_path(spec.name), tmp)
        tmp.replace(target)
        kind = "gaussian" if spec.std else "deterministic"
        rows.append({"name": spec.name, "kind": kind, "description": spec.description, "file": str(target)})
    return ExamplePolicies(rows)


def dashboard_inputs(
    logs: Sequence[str | Path] = (),
    *,
    report: str | Path | None = None,
    model: str | Path | None = None,
    truth: str | Path | None = None,
    dmv: str | Path | None = None,
    sgo: str | Path | None = None,
    engine: str = "local",
    address: str | None = None,
) -> DashboardLaunch:
    """Check the dashboard's inputs and give the environment that hands them to the app.

    Each input is checked here, so that a wrong path is a clear error now rather than
    in the browser: ``logs`` (read as driving logs), ``report`` (``evaluate``'s JSON),
    ``model`` (a ``fit`` folder), ``truth`` (``rollout``'s JSON), ``dmv`` (an
    ``import_dmv`` folder), ``sgo`` (an ``import_sgo`` folder).
    """
    import importlib.util

    from roadworthy.dashboards.inputs import dashboard_env
    from roadworthy.data.dataset import scan_logs
    from roadworthy.data.errors import UsageError
    from roadworthy.data.ray_engine import check_engine

    check_engine(engine, address)
    if importlib.util.find_spec("streamlit") is None:
        raise UsageError("streamlit is not installed", "pip install 'roadworthy[dashboard]'")
    logs = list(logs)
    if not logs and dmv is None and sgo is None:
        raise UsageError(
            "nothing to show", "give driving `logs`, `dmv` (a folder from import_dmv) or `sgo` (from import_sgo)"
        )
    if dmv is not None and not (Path(dmv) / "events.parquet").is_file():
        raise UsageError(f"`dmv` {dmv}: no events.parquet there", "give a folder written by import_dmv")
    if sgo is not None and not (Path(sgo) / "incidents.parquet").is_file():
        raise UsageError(f"`sgo` {sgo}: no incidents.parquet there", "give a folder written by import_sgo")
    for log in logs:
        scan_logs(log)
    for path, what in ((report, "report"), (truth, "truth")):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"`{what}` {path}: no such file", "give a JSON file written by roadworthy")
    if model is not None and not Path(model).is_dir():
        raise UsageError(f"`model` {model}: no such model folder", "give a folder written by fit")
    return DashboardLaunch(dashboard_env(logs, report, model, truth, engine, address, dmv, sgo))


def demo(
    out: str | Path = "runs/demo",
    *,
    episodes: int = 200,
    rollout_episodes: int = 40,
    seed: int = 0,
    workers: int | None = None,
    quick: bool = False,
    on_stage: Stage = None,
    on_progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> Demo:
    """The main job on the embedded default, as a sequence of the calls above (docs/api.md).

    :func:`collect` fleet logs, :func:`example_policies`, :func:`fit` the behaviour and
    driving models, :func:`score` the logged actions and each policy's, :func:`evaluate`
    the policies, :func:`rollout` their ground truth, and each policy's gate verdict
    against ``autopilot-clone`` from that one evaluation. ``quick``: small estimator
    settings, for smoke tests. ``out`` may only be a new folder or the demo's own.
    """
    from roadworthy.demo import run_demo

    return Demo(
        run_demo(
            out,
            episodes=episodes,
            rollout_episodes=rollout_episodes,
            seed=seed,
            workers=workers,
            quick=quick,
            on_stage=on_stage,
            on_progress=on_progress,
        )
    )
