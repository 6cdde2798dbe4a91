"""``roadworthy rollout highway``: closed-loop ground truth for policy files.

Each policy drives the embedded simulator alone, from the same initial-state
distribution as ``collect`` (episode ``i`` of seed ``s`` starts from the same
traffic in both), and the Monte Carlo mean of the discounted return and of each
discounted cost is reported with its standard error. Off-policy estimates are
validated against these figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from roadworthy.data.errors import UsageError
from roadworthy.data.geometry import EgoGeometry
from roadworthy.data.policy import OnnxPolicy
from roadworthy.data.road_geometry import RoadGeometry
from roadworthy.data.roads import road_table, roads_path, write_roads
from roadworthy.data.schema import arrow_schema
from roadworthy.data.sim.collect import FRAME, OPTIONAL, default_workers, episode_table, log_metadata, simulate_many
from roadworthy.data.sim.episodes import EpisodeRecord, PolicyController, run_episode
from roadworthy.data.sim.features import ACTION_NAMES, OBS_NAMES
from roadworthy.data.sim.highway import HighwayConfig, HighwaySim
from roadworthy.data.surrogates import CHANNELS as SURROGATES
from roadworthy.data.surrogates import SurrogateSpec
from roadworthy.data.writer import LogWriter, guard_output, staging_dir

Z95 = 1.959963984540054
COSTS = ("collision", "off_road")

_WORKER: dict = {}


def _init_worker(config: HighwayConfig, paths: list[str]) -> None:
    _WORKER["sim"] = HighwaySim(config)
    _WORKER["controllers"] = [PolicyController(OnnxPolicy.load(p)) for p in paths]


def _simulate(job: tuple[int, int, int, str]) -> EpisodeRecord:
    k, seed, index, episode_id = job
    ctl = _WORKER["controllers"][k]
    return run_episode(_WORKER["sim"], ctl, seed=seed, index=index, episode_id=episode_id)


def mc_summary(values: Sequence[float]) -> dict[str, float]:
    """Mean, standard error and normal 95% interval of per-episode values."""
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return {"estimate": mean, "stderr": se, "lower": mean - Z95 * se, "upper": mean + Z95 * se, "confidence": 0.95}


def rollout_highway(
    policies: Sequence[str | Path],
    *,
    episodes: int,
    gamma: float = 0.99,
    seed: int = 0,
    workers: int | None = None,
    config: HighwayConfig | None = None,
    out: str | Path | None = None,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
    overwrite: bool = False,
) -> dict:
    """Run each policy file for ``episodes`` episodes; return the JSON-ready report.

    Parameters
    ----------
    policies : sequence of str or Path
        ONNX policy files whose names match the simulator's features.
    episodes : int
        Episodes per policy.
    gamma : float
        Discount factor in [0, 1].
    seed : int
        Seed of the initial states and of stochastic policies' sampling.
    workers : int, optional
        Processes to simulate in (default: one per core).
    config : HighwayConfig, optional
    out : str or Path, optional
        Also write the rollouts as a driving log to this folder (``source`` is the policy name).
    on_episode : callable, optional
        Called after each episode (progress).

    Raises
    ------
    PolicyError
        For a policy that cannot be loaded or does not fit the simulator.
    UsageError
        For out-of-range options.
    """
    if episodes < 1:
        raise UsageError(f"`episodes` must be at least 1, got {episodes}", "ask for one or more episodes")
    if not 0.0 <= gamma <= 1.0:
        raise UsageError(f"`gamma` must lie in [0, 1], got {gamma}", "use a discount such as 0.99")
    if not policies:
        raise UsageError("no policy given", "give one or more policy files in `policies`")
    guard_output(out, inputs=list(policies), overwrite=overwrite, folder=True, option="out")
    config = config or HighwayConfig()
    loaded = [OnnxPolicy.load(p, obs_names=OBS_NAMES, action_names=ACTION_NAMES) for p in policies]
    names = [p.name for p in loaded]
    if len(set(names)) != len(names):
        raise UsageError(f"two policy files declare the same name ({names})", "give each policy a distinct name")
    jobs = [(k, seed, i, f"ro-{name}-s{seed}-e{i:06d}") for k, name in enumerate(names) for i in range(episodes)]
    workers = default_workers(len(jobs)) if workers is None else workers

    meta = log_metadata(config)
    spec = SurrogateSpec.from_metadata(meta.extra, meta.obs_names)
    geo = road_geometry(config)
    per: list[dict[str, list]] = [
        {"ret": [], "steps": [], "speed": [], **{c: [] for c in (*COSTS, *SURROGATES, "lane_departure")}} for _ in names
    ]
    records = simulate_many(jobs, _init_worker, (config, [str(p) for p in policies]), _simulate, workers)

    def tally(k: int, rec: EpisodeRecord) -> None:
        acc = per[k]
        acc["ret"].append(rec.discounted(rec.reward, gamma))
        for c in COSTS:
            acc[c].append(rec.discounted(getattr(rec, c), gamma))
        surrogate = spec.costs(np.asarray(rec.obs))
        for j, c in enumerate(SURROGATES):
            acc[c].append(rec.discounted(surrogate[:, j], gamma))
        acc["lane_departure"].append(rec.discounted(lane_departures(geo, rec.pose), gamma))
        acc["steps"].append(len(rec))
        acc["speed"].append(float(np.mean([p[3] for p in rec.pose])))
        if on_episode:
            on_episode(rec)

    if out is None:
        for (k, *_), rec in zip(jobs, records, strict=True):
            tally(k, rec)
    else:
        _rollout_to_log(Path(out), config, seed, zip(jobs, records, strict=True), tally)
    return _report(config, episodes, gamma, seed, loaded, policies, per)


def road_geometry(config: HighwayConfig) -> EgoGeometry:
    """The simulator's road and ego kinematics, as an evaluator sees them in its logs."""
    meta = log_metadata(config)
    road = RoadGeometry.from_table(road_table(config.map_name, HighwaySim(config).lane_polylines()))
    return EgoGeometry.from_roads({config.map_name: road}, meta.extra, meta.obs_names, meta.action_names, config.dt)


def lane_departures(geo: EgoGeometry, poses) -> np.ndarray:
    """Per step (0/1): a corner of the car over the road's edge (``data.geometry``), from logged poses."""
    pose = np.asarray(poses, dtype=np.float64).reshape(-1, 4)
    _, q = geo.observe(pose, np.zeros(len(pose), dtype=np.int64))
    return geo.events(pose, q)["lane_departure"].astype(np.float64)


def _rollout_to_log(out: Path, config: HighwayConfig, seed: int, pairs, tally) -> None:
    """Tally the rollouts and write them as a driving log to ``out`` (staged, then swapped in)."""
    schema = arrow_schema(log_metadata(config, {"rollout_seed": seed}), optional=OPTIONAL)
    with staging_dir(out, prefix=".rollout-") as staging:
        with LogWriter(staging / "part-00000.parquet", schema) as writer:
            for (k, *_), rec in pairs:
                tally(k, rec)
                writer.write(episode_table(rec, schema))
        write_roads(
            road_table(config.map_name, HighwaySim(config).lane_polylines()),
            roads_path(staging, config.map_name),
            frame=FRAME,
            source="highway-env",
        )


def _report(config, episodes, gamma, seed, loaded, policies, per) -> dict:
    report = {
        "env": "highway",
        "simulator": "highway-env",
        "map_name": config.map_name,
        "episodes": episodes,
        "gamma": gamma,
        "seed": seed,
        "dt": config.dt,
        "max_steps": config.max_steps,
        "policies": [],
    }
    for pol, path, acc in zip(loaded, policies, per, strict=True):
        report["policies"].append(
            {
                "name": pol.name,
                "file": str(path),
                "stochastic": pol.stochastic,
                "value": mc_summary(acc["ret"]),
                "costs": {c: mc_summary(acc[c]) for c in COSTS},
                # Surrogate safety measures (data.surrogates) and lane departures (data.geometry):
                # discounted counts of risky steps.
                "surrogates": {c: mc_summary(acc[c]) for c in (*SURROGATES, "lane_departure")},
                "episode_rates": {
                    **{f"{c}_episodes": float(np.mean(np.asarray(acc[c]) > 0)) for c in COSTS},
                    "mean_steps": float(np.mean(acc["steps"])),
                    "mean_speed_mps": float(np.mean(acc["speed"])),
                },
                "returns": [float(r) for r in acc["ret"]],
                # Per-episode discounted costs: rollouts with the same seed start from the same
                # traffic, so two policies' figures can be compared episode by episode.
                "episode_costs": {c: [float(x) for x in acc[c]] for c in (*COSTS, *SURROGATES, "lane_departure")},
            }
        )
    return report
