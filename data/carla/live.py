"""``roadworthy collect carla``: drive a running CARLA server and log the hero.

The server-facing part is kept small: connect (failing fast when no server
answers), set synchronous mode with a fixed time step, spawn the hero and traffic,
drive with Traffic Manager's autopilot or a human (keyboard or wheel through
pygame; a takeover key hands control from the autopilot to the human and logs a
disengagement), run CARLA's recorder alongside, and reduce each tick to plain
numbers with :func:`tick_values`. The rows then come from the same code as a
replay import (:func:`roadworthy.data.carla.importer.log_table`), so a live run and a replay
of its recording give the same features.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roadworthy.data.carla.features import FrameBatch
from roadworthy.data.errors import RoadworthyError

#: carla.TrafficLightState names to the codes of :mod:`roadworthy.data.carla.features`.
_TL_CODES = {"Red": 0, "Yellow": 1, "Green": 2, "Off": 3, "Unknown": 4}


class ServerError(RoadworthyError):
    """No CARLA server could be used."""

    def __init__(self, host: str, port: int, timeout: float, problem: str) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        super().__init__(
            f"could not use a CARLA server at {host}:{port} (timeout {timeout:g} s): {problem.rstrip('.')}. "
            "Hint: start CarlaUE4.sh (or CarlaUnreal.sh) on that host, or set `host`, `port` and `timeout`; "
            "without a server, import a recording with `roadworthy import carla`."
        )


def check_server(host: str, port: int, timeout: float) -> None:
    """Fail fast, with a clear message, when nothing listens on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as exc:
        raise ServerError(host, port, timeout, f"no answer ({exc.strerror or exc})") from None


@dataclass
class TickValues:
    """One tick reduced to plain numbers (the unit of :func:`batch_from_ticks`)."""

    t: float
    pose: tuple[float, float, float]  # x (m), y (m), yaw (rad)
    velocity: tuple[float, float]  # vx, vy (m/s)
    control: tuple[float, float, float]  # steer, throttle, brake
    collision: bool
    others: list[tuple[float, float, float, float]]  # x, y, vx, vy
    lights: list[tuple[float, float, int]]  # x, y, state code


def tick_values(
    t: float,
    transform,
    velocity,
    control,
    collision: bool,
    others: Sequence[tuple],
    lights: Sequence[tuple],
) -> TickValues:
    """Reduce CARLA objects of one tick to plain numbers.

    Parameters
    ----------
    t : float
        Simulation time, s.
    transform : carla.Transform
        The hero's transform (metres, degrees).
    velocity : carla.Vector3D
        The hero's velocity, m/s.
    control : carla.VehicleControl
        The control applied this tick.
    collision : bool
        Whether the hero's collision sensor fired this tick.
    others : sequence of (carla.Location, carla.Vector3D)
        Other vehicles and walkers.
    lights : sequence of (carla.Location, carla.TrafficLightState)
        Traffic lights.
    """
    loc, rot = transform.location, transform.rotation
    return TickValues(
        t=float(t),
        pose=(float(loc.x), float(loc.y), math.radians(float(rot.yaw))),
        velocity=(float(velocity.x), float(velocity.y)),
        control=(float(control.steer), float(control.throttle), float(control.brake)),
        collision=bool(collision),
        others=[(float(a.x), float(a.y), float(v.x), float(v.y)) for a, v in others],
        lights=[(float(a.x), float(a.y), _TL_CODES.get(str(s).split(".")[-1], 4)) for a, s in lights],
    )


def batch_from_ticks(ticks: Sequence[TickValues]) -> FrameBatch:
    """A :class:`FrameBatch` from consecutive ticks."""
    n = len(ticks)
    others = [(i, *o) for i, tk in enumerate(ticks) for o in tk.others]
    lights = [(i, *lt) for i, tk in enumerate(ticks) for lt in tk.lights]
    o = np.array(others, dtype=np.float64).reshape(-1, 5)
    lt = np.array(lights, dtype=np.float64).reshape(-1, 4)
    return FrameBatch(
        t=np.array([tk.t for tk in ticks]),
        x=np.array([tk.pose[0] for tk in ticks]),
        y=np.array([tk.pose[1] for tk in ticks]),
        yaw=np.array([tk.pose[2] for tk in ticks]),
        vx=np.array([tk.velocity[0] for tk in ticks]),
        vy=np.array([tk.velocity[1] for tk in ticks]),
        control=np.clip(np.array([tk.control for tk in ticks]).reshape(n, 3), [-1, 0, 0], [1, 1, 1]),
        collision=np.array([tk.collision for tk in ticks], dtype=bool),
        others={"frame": o[:, 0].astype(np.int64), "x": o[:, 1], "y": o[:, 2], "vx": o[:, 3], "vy": o[:, 4]},
        lights={"frame": lt[:, 0].astype(np.int64), "x": lt[:, 1], "y": lt[:, 2], "state": lt[:, 3].astype(np.int64)},
    )


@dataclass(frozen=True)
class LiveConfig:
    """Settings of a live collection.

    Parameters
    ----------
    host, port : str, int
        The CARLA server.
    timeout : float
        Seconds to wait for the server.
    town : str
        Map to load (e.g. ``Town01``).
    episodes : int
    duration : float
        Seconds of simulation per episode.
    fixed_delta : float
        Synchronous-mode time step, s.
    traffic : int
        Vehicles driven by Traffic Manager around the hero.
    human : bool
        A human drives from the start (pygame window); otherwise the autopilot
        drives and, with a window, the takeover key hands control to the human.
    seed : int
    tm_port : int
        Traffic Manager port.
    """

    host: str = "localhost"
    port: int = 2000
    timeout: float = 10.0
    town: str = "Town01"
    episodes: int = 1
    duration: float = 60.0
    fixed_delta: float = 0.05
    traffic: int = 30
    human: bool = False
    seed: int = 0
    tm_port: int = 8000


class _Keyboard:
    """pygame keyboard/wheel driving with a takeover key (T). Optional dependency."""

    def __init__(self) -> None:
        import pygame

        pygame.init()
        self.pg = pygame
        self.screen = pygame.display.set_mode((480, 120))
        pygame.display.set_caption("roadworthy: W/S throttle/brake, A/D steer, T take over, Esc stop")
        self.steer = 0.0
        self.wheel = pygame.joystick.Joystick(0) if pygame.joystick.get_count() else None
        self.takeover = False
        self.quit = False

    def poll(self):
        import carla

        pg = self.pg
        for ev in pg.event.get():
            if ev.type == pg.QUIT or (ev.type == pg.KEYDOWN and ev.key == pg.K_ESCAPE):
                self.quit = True
            if ev.type == pg.KEYDOWN and ev.key == pg.K_t:
                self.takeover = True
        keys = pg.key.get_pressed()
        if self.wheel is not None:
            steer = self.wheel.get_axis(0)
            throttle = max(0.0, -self.wheel.get_axis(1))
            brake = max(0.0, self.wheel.get_axis(1))
        else:
            target = (keys[pg.K_d] - keys[pg.K_a]) * 0.5
            self.steer += 0.2 * (target - self.steer)
            steer, throttle, brake = self.steer, float(keys[pg.K_w]), float(keys[pg.K_s])
        return carla.VehicleControl(throttle=throttle, steer=steer, brake=brake)


def collect_carla(
    config: LiveConfig, out: str | Path, *, on_tick: Callable[[int], None] | None = None, overwrite: bool = False
) -> dict:
    """Drive ``config.episodes`` episodes on a live server; write logs, recordings and the map.

    Raises
    ------
    ServerError
        When no server answers (fast: a TCP check comes first).
    """
    import carla

    from roadworthy.data.carla.importer import OPTIONAL, carla_metadata, log_table
    from roadworthy.data.carla.opendrive import MapLayer
    from roadworthy.data.roads import MAPS_DIR
    from roadworthy.data.schema import arrow_schema
    from roadworthy.data.writer import AtomicFile, LogWriter, guard_output, staging_dir

    out = Path(out)
    guard_output(out, overwrite=overwrite, folder=True, option="out")
    check_server(config.host, config.port, min(config.timeout, 5.0))
    client = carla.Client(config.host, config.port)
    client.set_timeout(config.timeout)
    try:
        world = client.get_world()
        if world.get_map().name.split("/")[-1] != config.town:
            world = client.load_world(config.town)
    except RuntimeError as exc:
        raise ServerError(config.host, config.port, config.timeout, str(exc)) from None

    original = world.get_settings()
    settings = world.get_settings()
    settings.synchronous_mode = True
    settings.fixed_delta_seconds = config.fixed_delta
    world.apply_settings(settings)
    tm = client.get_trafficmanager(config.tm_port)
    tm.set_synchronous_mode(True)
    tm.set_random_device_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    keyboard = _Keyboard() if config.human else None

    xodr = world.get_map().to_opendrive()
    layer = MapLayer.from_xodr(xodr, name=config.town)
    schema = arrow_schema(carla_metadata(config.fixed_delta, {"live_seed": config.seed}), optional=OPTIONAL)
    rows = 0
    try:
        with staging_dir(out, prefix=".collect-carla-") as staging:
            (staging / "recordings").mkdir()
            for ep in range(config.episodes):
                episode_id = f"carla-{config.town}-s{config.seed}-e{ep:04d}"
                ticks, sources, disengaged = _drive_episode(
                    client, world, tm, config, rng, keyboard, staging / "recordings" / f"{episode_id}.log", on_tick
                )
                if len(ticks) < 2:
                    continue
                table = log_table(
                    batch_from_ticks(ticks),
                    layer,
                    episode_id=episode_id,
                    source=sources,
                    schema=schema,
                    scenario="live",
                    disengagement=np.array(disengaged, dtype=bool),
                )
                with LogWriter(staging / f"{episode_id}.parquet", schema) as w:
                    w.write(table)
                rows += table.num_rows
            layer.write(staging / MAPS_DIR)
            with AtomicFile(staging / MAPS_DIR / f"{config.town}.xodr") as f:
                f.tmp.write_text(xodr, encoding="utf-8")
    finally:
        world.apply_settings(original)
        tm.set_synchronous_mode(False)
    return {"out": str(out), "episodes": config.episodes, "rows": rows}


def _drive_episode(client, world, tm, config, rng, keyboard, recording: Path, on_tick):
    import carla

    lib = world.get_blueprint_library()
    spawns = world.get_map().get_spawn_points()
    order = rng.permutation(len(spawns))
    hero_bp = lib.find("vehicle.lincoln.mkz_2017")
    hero_bp.set_attribute("role_name", "hero")
    hero = world.spawn_actor(hero_bp, spawns[int(order[0])])
    actors = [hero]
    hits: list[int] = []
    sensor = world.spawn_actor(lib.find("sensor.other.collision"), carla.Transform(), attach_to=hero)
    sensor.listen(lambda event: hits.append(event.frame))
    actors.append(sensor)
    car_bps = [b for b in lib.filter("vehicle.*") if int(b.get_attribute("number_of_wheels").as_int()) == 4]
    for k in order[1 : 1 + config.traffic]:
        bp = car_bps[int(rng.integers(len(car_bps)))]
        v = world.try_spawn_actor(bp, spawns[int(k)])
        if v is not None:
            v.set_autopilot(True, config.tm_port)
            actors.append(v)
    human = config.human
    if not human:
        hero.set_autopilot(True, config.tm_port)
    client.start_recorder(str(recording), True)
    ticks, sources, disengaged = [], [], []
    try:
        for step in range(round(config.duration / config.fixed_delta)):
            takeover = False
            if keyboard is not None:
                control = keyboard.poll()
                if keyboard.quit:
                    break
                if not human and keyboard.takeover:
                    human, takeover = True, True
                    hero.set_autopilot(False, config.tm_port)
                if human:
                    hero.apply_control(control)
            frame = world.tick()
            snap = world.get_snapshot()
            others, lights = [], []
            for a in world.get_actors():
                if a.id == hero.id:
                    continue
                if a.type_id.startswith(("vehicle.", "walker.")):
                    s = snap.find(a.id)
                    if s is not None:
                        others.append((s.get_transform().location, s.get_velocity()))
                elif a.type_id == "traffic.traffic_light":
                    lights.append((a.get_location(), a.get_state()))
            hs = snap.find(hero.id)
            ticks.append(
                tick_values(
                    snap.timestamp.elapsed_seconds,
                    hs.get_transform(),
                    hs.get_velocity(),
                    hero.get_control(),
                    frame in hits,
                    others,
                    lights,
                )
            )
            sources.append("human" if human else "autopilot")
            disengaged.append(takeover)
            if on_tick:
                on_tick(step)
    finally:
        client.stop_recorder()
        sensor.stop()
        client.apply_batch([carla.command.DestroyActor(a) for a in actors])
        world.tick()
    return ticks, sources, disengaged
