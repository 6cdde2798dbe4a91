"""Episodes of the embedded simulator: who drives, and what gets recorded.

Two kinds of controller drive the ego car:

* :class:`FleetController`, the logged fleet. An episode is either driven by a
  human from start to end, or by the autopilot with a human safety driver who
  takes over when the situation gets risky (time to collision or time headway
  below a threshold) or, rarely, for no visible reason, drives a few seconds and
  hands back. The autopilot is the driver model with fixed parameters plus
  Gaussian action noise, so its log-density is known and logged. Each human has
  their own sampled driver parameters, a reaction delay and autocorrelated action
  noise; their density is unknown, as in a real fleet, and left null.
* :class:`PolicyController`, an ONNX policy file driving alone (for rollouts).

Randomness: episode ``i`` of a run with seed ``s`` draws its traffic from the
stream ``SeedSequence(s, spawn_key=(i, 0))``, its drivers from ``(i, 1)`` and its
action noise from ``(i, 2)``. Collections and rollouts with the same seed
therefore start from the same traffic, and results do not depend on the number of
worker processes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from roadworthy.data.sim.drivers import ACTION_HIGH, ACTION_LOW, AUTOPILOT, DriverParams, driver_action
from roadworthy.data.sim.features import IDX, SENSOR_RANGE, time_to_collision
from roadworthy.data.sim.highway import HighwaySim

TRAFFIC, DRIVERS, NOISE = 0, 1, 2

_LOW = np.asarray(ACTION_LOW)
_HIGH = np.asarray(ACTION_HIGH)


def stream(seed: int, episode: int, kind: int) -> np.random.Generator:
    """Random generator of one episode's ``kind`` stream (traffic, drivers, noise)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(episode, kind)))


def traffic_seed(seed: int, episode: int) -> int:
    """Integer seed of episode ``episode``'s traffic."""
    return int(np.random.SeedSequence(seed, spawn_key=(episode, TRAFFIC)).generate_state(1)[0])


@dataclass(frozen=True)
class FleetConfig:
    """How the logged fleet drives.

    Parameters
    ----------
    autopilot_share : float
        Probability that an episode starts under autopilot (else a human drives it).
    autopilot_noise : tuple of float
        Standard deviation of the autopilot's Gaussian action noise: m/s^2, rad.
    takeover_ttc : float
        A safety driver takes over when the time to collision with the lead drops below this, s.
    takeover_headway : float
        ... or when the time headway (gap / speed) drops below this, s.
    takeover_prob : float
        Probability that the safety driver reacts at a risky step.
    spontaneous_takeover_rate : float
        Takeovers per second of autopilot driving without a visible reason, 1/s.
    takeover_duration : tuple of float
        Range of how long a human keeps control, s.
    """

    autopilot_share: float = 0.6
    autopilot_noise: tuple[float, float] = (0.25, 0.004)
    takeover_ttc: float = 3.0
    takeover_headway: float = 0.6
    takeover_prob: float = 0.9
    spontaneous_takeover_rate: float = 1.0 / 300.0
    takeover_duration: tuple[float, float] = (2.0, 5.0)


@dataclass
class HumanDriver:
    """One sampled human: driver parameters, reaction delay and action noise."""

    params: DriverParams
    reaction_steps: int
    noise_std: tuple[float, float]
    noise_rho: float = 0.7
    #: Glances away per second of driving, and how long one lasts (s).
    distraction_rate: float = 1.0 / 30.0
    distraction_duration: tuple[float, float] = (0.8, 2.5)
    noise: np.ndarray = field(default_factory=lambda: np.zeros(2))
    _distracted_left: int = 0
    _last: np.ndarray | None = None

    @classmethod
    def sample(cls, rng: np.random.Generator) -> HumanDriver:
        """Draw a driver from the population of the fleet's humans."""
        u = rng.uniform
        params = DriverParams(
            desired_speed=u(23.0, 33.0),
            time_headway=u(0.6, 2.0),
            min_gap=u(2.0, 4.0),
            max_accel=u(1.0, 2.5),
            comfort_decel=u(1.5, 3.0),
            politeness=u(0.0, 0.5),
            lane_change_threshold=u(0.1, 0.4),
            keep_right_bias=u(0.0, 0.3),
            lateral_time_constant=u(1.2, 2.5),
            heading_time_constant=u(0.35, 0.7),
            max_heading=u(0.07, 0.13),
        )
        reaction = int(rng.choice(3, p=[0.3, 0.5, 0.2]))
        return cls(params, reaction, (u(0.2, 0.6), u(0.002, 0.008)))

    def act(self, history: deque, rng: np.random.Generator, dt: float) -> np.ndarray:
        """Action from the features seen ``reaction_steps`` steps ago, plus AR(1) noise.

        While distracted, the driver holds the pedal and wheel where they were.
        """
        innovation = rng.standard_normal(2) * np.asarray(self.noise_std)
        self.noise = self.noise_rho * self.noise + math.sqrt(1 - self.noise_rho**2) * innovation
        if self._distracted_left > 0 and self._last is not None:
            self._distracted_left -= 1
            return self._last
        if rng.uniform() < self.distraction_rate * dt:
            self._distracted_left = round(rng.uniform(*self.distraction_duration) / dt)
        obs = history[max(0, len(history) - 1 - self.reaction_steps)]
        mean = np.clip(driver_action(np, self.params, obs[None].astype(np.float64))[0], _LOW, _HIGH)
        self._last = mean + self.noise
        return self._last

    def take_over(self) -> None:
        """Start a fresh stint at the wheel (no carried-over noise or distraction)."""
        self.noise = np.zeros(2)
        self._distracted_left = 0
        self._last = None


@dataclass(frozen=True)
class Decision:
    """One control decision: the action and who took it."""

    action: np.ndarray
    source: str
    disengagement: bool = False
    #: Mean and std of the Gaussian the action was drawn from, when known.
    behavior: tuple[np.ndarray, tuple[float, ...]] | None = None


def gaussian_logp(residual: np.ndarray, std: tuple[float, ...]) -> float:
    """Log-density of a diagonal Gaussian residual (units of the action)."""
    s = np.asarray(std, dtype=np.float64)
    z = np.asarray(residual, dtype=np.float64) / s
    return float(np.sum(-0.5 * z * z - np.log(s) - 0.5 * math.log(2 * math.pi)))


class FleetController:
    """The logged fleet: human episodes, and autopilot episodes with takeovers."""

    def __init__(self, config: FleetConfig, dt: float) -> None:
        self.config = config
        self.dt = dt

    def begin(self, drivers: np.random.Generator, noise: np.random.Generator) -> str:
        """Start an episode; return ``"autopilot"`` or ``"human"`` (who starts)."""
        self.noise = noise
        self.drivers = drivers
        self.autopilot_episode = bool(drivers.uniform() < self.config.autopilot_share)
        self.human = HumanDriver.sample(drivers)
        self.takeover_left = 0
        self.history: deque = deque(maxlen=3)
        return "autopilot" if self.autopilot_episode else "human"

    def _risky(self, obs: np.ndarray) -> bool:
        ttc = float(time_to_collision(obs))
        gap = float(obs[IDX["lead_gap_m"]])
        speed = max(float(obs[IDX["speed_mps"]]), 0.1)
        headway = gap / speed if gap < SENSOR_RANGE - 1e-3 else math.inf
        return ttc < self.config.takeover_ttc or headway < self.config.takeover_headway

    def decide(self, obs: np.ndarray) -> Decision:
        """Who drives this step, and with what action."""
        self.history.append(obs)
        cfg = self.config
        if not self.autopilot_episode:
            return Decision(self.human.act(self.history, self.noise, self.dt), "human")
        disengage = False
        if self.takeover_left > 0:
            self.takeover_left -= 1
            if self.takeover_left == 0 and self._risky(obs):
                self.takeover_left = 1
        else:
            risky = self._risky(obs) and self.drivers.uniform() < cfg.takeover_prob
            spontaneous = self.drivers.uniform() < cfg.spontaneous_takeover_rate * self.dt
            if risky or spontaneous:
                disengage = True
                seconds = self.drivers.uniform(*cfg.takeover_duration)
                self.takeover_left = max(1, round(seconds / self.dt)) - 1
                self.human.take_over()
        if disengage or self.takeover_left > 0:
            return Decision(self.human.act(self.history, self.noise, self.dt), "human", disengagement=disengage)
        mean = np.clip(driver_action(np, AUTOPILOT, obs[None].astype(np.float64))[0], _LOW, _HIGH)
        residual = self.noise.standard_normal(2) * np.asarray(cfg.autopilot_noise)
        return Decision(mean + residual, "autopilot", behavior=(mean, cfg.autopilot_noise))


class PolicyController:
    """An ONNX policy driving alone; a Gaussian policy's actions are sampled."""

    def __init__(self, policy, source: str | None = None) -> None:
        self.policy = policy
        self.source = source or policy.name

    def begin(self, drivers: np.random.Generator, noise: np.random.Generator) -> str:
        """Start an episode."""
        self.noise = noise
        return self.source

    def decide(self, obs: np.ndarray) -> Decision:
        """The policy's action for ``obs``."""
        action = self.policy.act(obs[None], rng=self.noise)[0].astype(np.float64)
        return Decision(action, self.source)


@dataclass
class EpisodeRecord:
    """Arrays of one simulated episode, one entry per control step."""

    episode_id: str
    scenario: str
    map_name: str
    dt: float
    obs: list = field(default_factory=list)
    action: list = field(default_factory=list)
    reward: list = field(default_factory=list)
    source: list = field(default_factory=list)
    disengagement: list = field(default_factory=list)
    logp: list = field(default_factory=list)
    collision: list = field(default_factory=list)
    off_road: list = field(default_factory=list)
    pose: list = field(default_factory=list)
    terminal: bool = False

    def __len__(self) -> int:
        return len(self.reward)

    def discounted(self, values, gamma: float) -> float:
        """Discounted sum of a per-step quantity."""
        v = np.asarray(values, dtype=np.float64)
        return float(np.sum(v * gamma ** np.arange(len(v))))


def run_episode(sim: HighwaySim, controller, *, seed: int, index: int, episode_id: str) -> EpisodeRecord:
    """Simulate episode ``index`` of a run with ``seed`` under ``controller``."""
    scenario = sim.reset(traffic_seed(seed, index))
    controller.begin(stream(seed, index, DRIVERS), stream(seed, index, NOISE))
    rec = EpisodeRecord(episode_id, scenario.name, sim.config.map_name, sim.config.dt)
    for _ in range(sim.config.max_steps):
        obs = sim.observe()
        pose = sim.pose()
        decision = controller.decide(obs)
        action = np.clip(decision.action, _LOW, _HIGH)
        outcome = sim.step(action)
        rec.obs.append(obs)
        rec.action.append(action.astype(np.float32))
        rec.reward.append(outcome.reward)
        rec.source.append(decision.source)
        rec.disengagement.append(decision.disengagement)
        if decision.behavior is None:
            rec.logp.append(math.nan)
        else:
            # Density of the stored (clipped) action; clipping is rare for the
            # autopilot, whose mean already lies inside the bounds.
            mean, std = decision.behavior
            rec.logp.append(gaussian_logp(action - mean, std))
        rec.collision.append(outcome.collision)
        rec.off_road.append(outcome.off_road)
        rec.pose.append(pose)
        if outcome.terminal:
            rec.terminal = True
            break
    return rec
