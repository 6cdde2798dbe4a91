"""The embedded simulator: highway-env's multi-lane highway, stepped by roadworthy.

highway-env supplies the road, the surrounding traffic (IDM/MOBIL vehicles with
randomized behaviour) and the kinematic bicycle model of the ego car; this module
applies physical actions to the ego car, computes features, reward and safety
events, and keeps the initial-state distribution a function of one integer seed so
that ``collect`` and ``rollout`` start from the same traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from roadworthy.data.sim.drivers import ACTION_HIGH, ACTION_LOW
from roadworthy.data.sim.features import LANE_WIDTH, VEHICLE_LENGTH, observe

if TYPE_CHECKING:
    from highway_env.road.road import Road

V_REF = 30.0  # m/s, speed at which progress reward is 1 per step
COLLISION_PENALTY = 200.0
OFF_ROAD_PENALTY = 200.0
MAX_SPEED = 40.0  # m/s, highway-env's Vehicle.MAX_SPEED
#: Lateral acceleration is capped in the comfort term so one absurd steering
#: command cannot dominate an episode's return.
MAX_LAT_ACCEL_PENALIZED = 10.0  # m/s^2
COMFORT_WEIGHT = 0.01  # per (m/s^2)^2
#: Bounds of the per-step reward, written to the log metadata for pessimistic bounds.
REWARD_RANGE: tuple[float, float] = (
    -COLLISION_PENALTY
    - OFF_ROAD_PENALTY
    - COMFORT_WEIGHT * (max(abs(ACTION_LOW[0]), abs(ACTION_HIGH[0])) ** 2 + MAX_LAT_ACCEL_PENALIZED**2),
    MAX_SPEED / V_REF,
)


@dataclass(frozen=True)
class Scenario:
    """A traffic regime: how many vehicles and how densely they are placed."""

    name: str
    vehicles_count: int
    density: float
    weight: float


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("free-flow", vehicles_count=12, density=0.8, weight=0.5),
    Scenario("dense", vehicles_count=24, density=1.4, weight=0.5),
)


@dataclass(frozen=True)
class BrakeEvents:
    """Sudden hard braking by the traffic ahead, the hazard that punishes tailgating.

    highway-env's IDM traffic alone flows too smoothly for time headway to matter,
    so vehicles ahead of the ego car brake hard now and then, as in real stop-and-go
    waves.

    Parameters
    ----------
    rate : float
        Events per second per vehicle within ``horizon`` metres ahead of the ego car, 1/s.
    horizon : float
        How far ahead vehicles are candidates, m.
    decel : tuple of float
        Range of the braking deceleration, m/s^2.
    duration : tuple of float
        Range of how long the braking lasts, s.
    """

    rate: float = 1.0 / 45.0
    horizon: float = 80.0
    decel: tuple[float, float] = (4.5, 8.0)
    duration: tuple[float, float] = (1.5, 3.5)


@dataclass(frozen=True)
class HighwayConfig:
    """Settings of the embedded simulator.

    Parameters
    ----------
    lanes : int
        Number of lanes.
    duration : float
        Episode time limit, s (episodes that reach it are truncated).
    dt : float
        Control period, s. The simulator integrates at the same rate.
    scenarios : tuple of Scenario
        Traffic regimes, drawn per episode with their weights.
    brake_events : BrakeEvents
        Sudden braking of vehicles ahead.
    """

    lanes: int = 3
    duration: float = 30.0
    dt: float = 0.2
    scenarios: tuple[Scenario, ...] = field(default=SCENARIOS)
    brake_events: BrakeEvents = field(default=BrakeEvents())

    @property
    def map_name(self) -> str:
        """Name of the road, as written to the ``map_name`` column."""
        return f"highway-{self.lanes}lane"

    @property
    def max_steps(self) -> int:
        """Steps before an episode is truncated."""
        return round(self.duration / self.dt)


def reward(speed: float, heading_error: float, accel: float, steer: float, collision: bool, off_road: bool) -> float:
    """Per-step reward: progress minus discomfort minus safety penalties.

    Parameters
    ----------
    speed : float
        Speed after the step, m/s.
    heading_error : float
        Heading relative to the lane after the step, rad.
    accel, steer : float
        Applied acceleration (m/s^2) and steering angle (rad).
    collision, off_road : bool
        Safety events during the step.

    Returns
    -------
    float
        ``speed*cos(heading_error)/30 - 0.01*(accel^2 + min(a_lat, 10)^2)
        - 5*collision - 5*off_road``, with a_lat the lateral acceleration of the
        bicycle model in m/s^2.
    """
    beta = math.atan(0.5 * math.tan(steer))
    lat_accel = min(abs(speed * speed * math.sin(beta) / (VEHICLE_LENGTH / 2)), MAX_LAT_ACCEL_PENALIZED)
    r = speed * math.cos(heading_error) / V_REF - COMFORT_WEIGHT * (accel * accel + lat_accel * lat_accel)
    return r - COLLISION_PENALTY * collision - OFF_ROAD_PENALTY * off_road


@dataclass(frozen=True)
class StepOutcome:
    """What one control step did."""

    reward: float
    collision: bool
    off_road: bool

    @property
    def terminal(self) -> bool:
        """A crash or leaving the road ends the episode in an absorbing state."""
        return self.collision or self.off_road


class HighwaySim:
    """One ego car in highway-env traffic, stepped with physical actions.

    Parameters
    ----------
    config : HighwayConfig
    """

    def __init__(self, config: HighwayConfig | None = None) -> None:
        self.config = config or HighwayConfig()
        self._envs: dict[str, object] = {}
        self.env = None
        self.ego = None
        self.scenario: Scenario | None = None

    def _make_env(self, scenario: Scenario):
        from highway_env.envs.highway_env import HighwayEnvFast

        hz = round(1 / self.config.dt)
        return HighwayEnvFast(
            config={
                # The observation is computed by roadworthy; keep highway-env's cheap.
                "observation": {"type": "Kinematics", "vehicles_count": 1},
                "action": {
                    "type": "ContinuousAction",
                    "acceleration_range": (ACTION_LOW[0], ACTION_HIGH[0]),
                    "steering_range": (ACTION_LOW[1], ACTION_HIGH[1]),
                },
                "lanes_count": self.config.lanes,
                "vehicles_count": scenario.vehicles_count,
                "vehicles_density": scenario.density,
                "simulation_frequency": hz,
                "policy_frequency": hz,
                "duration": self.config.duration,
                "offroad_terminal": True,
            }
        )

    def reset(self, traffic_seed: int) -> Scenario:
        """Start an episode; the traffic and scenario are a function of ``traffic_seed``."""
        rng = np.random.default_rng(traffic_seed)
        weights = np.array([s.weight for s in self.config.scenarios], dtype=float)
        scenario = self.config.scenarios[int(rng.choice(len(weights), p=weights / weights.sum()))]
        if scenario.name not in self._envs:
            self._envs[scenario.name] = self._make_env(scenario)
        self.env = self._envs[scenario.name]
        self.env.reset(seed=int(rng.integers(2**31 - 1)))
        self._rng = rng
        self._braking: dict[int, tuple[int, float]] = {}
        self.ego = self.env.unwrapped.vehicle
        # Braking must stop the car, not reverse it.
        self.ego.MIN_SPEED = 0.0
        self.scenario = scenario
        return scenario

    @property
    def road(self) -> Road:
        """The highway-env road."""
        return self.env.unwrapped.road

    def observe(self) -> np.ndarray:
        """Feature vector of the ego car, see :mod:`roadworthy.data.sim.features`."""
        return observe(self.road, self.ego)

    def pose(self) -> tuple[float, float, float, float]:
        """Ego x (m), y (m), yaw (rad) and speed (m/s) in highway-env's frame."""
        x, y = self.ego.position
        return float(x), float(y), float(self.ego.heading), float(self.ego.speed)

    def step(self, action: np.ndarray) -> StepOutcome:
        """Apply ``[accel (m/s^2), steer (rad)]`` for one control period."""
        accel = float(np.clip(action[0], ACTION_LOW[0], ACTION_HIGH[0]))
        steer = float(np.clip(action[1], ACTION_LOW[1], ACTION_HIGH[1]))
        self.ego.act({"acceleration": accel, "steering": steer})
        road = self.road
        road.act()
        self._apply_brake_events()
        road.step(self.config.dt)
        collision = bool(self.ego.crashed)
        off_road = not bool(self.ego.on_road)
        lane = self.ego.lane
        s, _ = lane.local_coordinates(self.ego.position)
        heading_error = float(self.ego.heading - lane.heading_at(s))
        r = reward(float(self.ego.speed), heading_error, accel, steer, collision, off_road)
        return StepOutcome(reward=r, collision=collision, off_road=off_road)

    def _apply_brake_events(self) -> None:
        cfg = self.config.brake_events
        if cfg.rate <= 0:
            return
        ego_x = float(self.ego.position[0])
        p = cfg.rate * self.config.dt
        for v in self.road.vehicles:
            if v is self.ego:
                continue
            key = id(v)
            left, decel = self._braking.get(key, (0, 0.0))
            ahead = 0.0 < float(v.position[0]) - ego_x < cfg.horizon
            # The same draws per vehicle and step whatever happens, so that the
            # stream, and the traffic, stay aligned across the policies compared.
            u, dur, dec = self._rng.uniform(size=3)
            if left == 0 and ahead and u < p:
                seconds = cfg.duration[0] + dur * (cfg.duration[1] - cfg.duration[0])
                left = max(1, round(seconds / self.config.dt))
                decel = cfg.decel[0] + dec * (cfg.decel[1] - cfg.decel[0])
            if left > 0:
                v.action["acceleration"] = -decel if v.speed > 0.5 else -v.speed
                self._braking[key] = (left - 1, decel)

    def lane_polylines(self, length: float | None = None) -> list[dict]:
        """Lane centre lines and borders of the road, for the map layer.

        Parameters
        ----------
        length : float, optional
            Length of road to describe from its start, m (default: the whole road).
        """
        if self.env is None:
            self.reset(0)
        net = self.road.network
        out = []
        for _from, tos in net.graph.items():
            for _to, lanes in tos.items():
                for k, lane in enumerate(lanes):
                    end = lane.length if length is None else min(length, lane.length)
                    s = np.array([0.0, end])
                    centre = np.array([lane.position(si, 0.0) for si in s])
                    left = np.array([lane.position(si, -LANE_WIDTH / 2) for si in s])
                    right = np.array([lane.position(si, LANE_WIDTH / 2) for si in s])
                    out.append(
                        {
                            "road_id": f"{_from}-{_to}",
                            "lane_id": k,
                            "lane_type": "driving",
                            "centre": centre,
                            "left": left,
                            "right": right,
                        }
                    )
        return out
