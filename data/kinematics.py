"""How the ego car moves under an action: a kinematic bicycle, declared by the log or fitted to it.

A learned model of driving logs must guess the ego's next position; a kinematic model
knows it. The kinematic bicycle (Rajamani 2012, section 2.2; highway-env's
``Vehicle.step``) moves a reference point ``rear`` metres ahead of the rear axle of a
car with wheelbase ``wheelbase``:

    beta  = atan(rear / wheelbase * tan(delta))
    x'    = x + v cos(yaw + beta) dt,   y' = y + v sin(yaw + beta) dt
    yaw'  = yaw + v sin(beta) / rear dt
    v'    = v + a dt

with the steering angle ``delta`` and the acceleration ``a`` linear in the action
entries. Speeds beyond ``[min_speed, max_speed]`` are pulled back at 1 m/s^2 per m/s
of excess (highway-env's rule). Everything is in the log's map frame: metres, radians
(yaw from x toward y), m/s.

Where a log declares its kinematics (metadata ``roadworthy.kinematics``, see
:mod:`roadworthy.data.geometry`) they are used as declared; otherwise :func:`fit_bicycle`
fits the action-to-acceleration and action-to-steering maps to the logged poses by
least squares, and :func:`residuals` says how well any model predicts the logged
next poses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from roadworthy.data.errors import UsageError


@dataclass(frozen=True)
class Bicycle:
    """A kinematic bicycle with linear action maps.

    Parameters
    ----------
    wheelbase, rear : float
        Axle distance and distance of the reference point ahead of the rear axle, m.
    accel, steer : tuple of float
        ``(b, w_1, ..., w_A)``: acceleration (m/s^2) and steering angle (rad) are
        ``b + sum_i w_i * action_i``.
    drag : float
        Acceleration per m/s of speed (fitted models; 0 when declared), 1/s.
    min_speed, max_speed : float
        Speeds pulled back at 1 m/s^2 per m/s beyond them, m/s.
    max_steer : float
        Largest steering angle, rad.
    source : str
        ``declared`` or ``fitted``.
    """

    wheelbase: float
    rear: float
    accel: tuple[float, ...]
    steer: tuple[float, ...]
    drag: float = 0.0
    min_speed: float = -np.inf
    max_speed: float = np.inf
    max_steer: float = 1.2
    source: str = "declared"

    def controls(self, action: np.ndarray, speed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Acceleration (m/s^2) and steering angle (rad) of actions (N, A) at speeds (N,)."""
        action = np.asarray(action, dtype=np.float64)
        acc = self.accel[0] + action @ np.asarray(self.accel[1:]) + self.drag * speed
        delta = np.clip(self.steer[0] + action @ np.asarray(self.steer[1:]), -self.max_steer, self.max_steer)
        acc = np.where(speed > self.max_speed, np.minimum(acc, self.max_speed - speed), acc)
        acc = np.where(speed < self.min_speed, np.maximum(acc, self.min_speed - speed), acc)
        return acc, delta

    def step(self, pose: np.ndarray, action: np.ndarray, dt: float) -> np.ndarray:
        """Next poses (N, 4) ``x, y, yaw, speed`` of poses (N, 4) under actions (N, A) for ``dt`` s."""
        pose = np.asarray(pose, dtype=np.float64)
        x, y, yaw, v = pose[:, 0], pose[:, 1], pose[:, 2], pose[:, 3]
        acc, delta = self.controls(action, v)
        beta = np.arctan(self.rear / self.wheelbase * np.tan(delta))
        return np.column_stack(
            [
                x + v * np.cos(yaw + beta) * dt,
                y + v * np.sin(yaw + beta) * dt,
                yaw + v * np.sin(beta) / self.rear * dt,
                v + acc * dt,
            ]
        )

    def to_dict(self) -> dict:
        """JSON-ready."""
        d = asdict(self)
        for k in ("min_speed", "max_speed"):
            d[k] = None if not np.isfinite(d[k]) else d[k]
        d["accel"], d["steer"] = list(self.accel), list(self.steer)
        return d

    @classmethod
    def from_metadata(cls, spec: Mapping, action_names: Sequence[str]) -> Bicycle:
        """From a declaration (JSON object of ``roadworthy.kinematics``)::

            {"model": "bicycle", "wheelbase_m": 5.0, "rear_m": 2.5,
             "accel": "accel_mps2", "steer": "steer_rad", "min_speed_mps": 0.0, "max_speed_mps": 40.0}

        ``accel`` and ``steer`` name the action entries that *are* the acceleration
        (m/s^2) and the steering angle (rad); ``max_steer_rad`` (optional) bounds it.

        Raises
        ------
        UsageError
            For a declaration that is incomplete or names actions the log lacks.
        """
        hint = (
            'write e.g. {"model": "bicycle", "wheelbase_m": 5.0, "rear_m": 2.5, "accel": "accel_mps2", '
            '"steer": "steer_rad"} (docs/formats.md, contract v1.1 proposal)'
        )
        if spec.get("model") != "bicycle":
            raise UsageError(f"metadata roadworthy.kinematics: unknown model {spec.get('model')!r}", hint)
        index = {n: i for i, n in enumerate(action_names)}
        maps = {}
        for key in ("accel", "steer"):
            name = spec.get(key)
            if name not in index:
                raise UsageError(f"metadata roadworthy.kinematics: '{key}' names {name!r}, not an action entry", hint)
            w = [0.0] * (1 + len(action_names))
            w[1 + index[name]] = 1.0
            maps[key] = tuple(w)
        try:
            wheelbase, rear = float(spec["wheelbase_m"]), float(spec["rear_m"])
        except (KeyError, TypeError, ValueError):
            raise UsageError("metadata roadworthy.kinematics needs numbers wheelbase_m and rear_m", hint) from None
        if not (0 < rear <= wheelbase < 50):
            raise UsageError(f"metadata roadworthy.kinematics: need 0 < rear_m <= wheelbase_m < 50 m, got {spec}", hint)

        def num(key: str, default: float) -> float:
            v = spec.get(key)
            return default if v is None else float(v)

        return cls(
            wheelbase=wheelbase,
            rear=rear,
            accel=maps["accel"],
            steer=maps["steer"],
            min_speed=num("min_speed_mps", -np.inf),
            max_speed=num("max_speed_mps", np.inf),
            max_steer=num("max_steer_rad", 1.2),
            source="declared",
        )


def _pairs(pose: np.ndarray, has_next: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(has_next[:-1]) if len(pose) > 1 else np.zeros(0, dtype=np.int64)
    return rows, rows + 1


def fit_bicycle(
    pose: np.ndarray,
    action: np.ndarray,
    has_next: np.ndarray,
    dt: float,
    *,
    wheelbase: float = 2.9,
    min_moving_speed: float = 2.0,
) -> Bicycle:
    """A bicycle whose action maps are fitted to logged poses by least squares.

    The acceleration is regressed on the actions and the speed (a drag term); the
    steering angle on the actions, from the yaw rates of rows moving faster than
    ``min_moving_speed`` (small angles: yaw rate = v tan(delta) / wheelbase). The
    reference point is the rear axle (``rear`` = wheelbase) unless declared.

    Parameters
    ----------
    pose : (N, 4) x, y, yaw, speed of consecutive rows
    action : (N, A)
    has_next : (N,) bool, row i + 1 follows row i in the same episode
    dt : float
        Control period, s.

    Raises
    ------
    UsageError
        With fewer than 10 usable pairs of rows.
    """
    i, j = _pairs(pose, has_next)
    if len(i) < 10:
        raise UsageError(
            f"only {len(i)} consecutive pairs of logged poses: too few to fit the ego's kinematics",
            "log longer episodes with x, y, yaw and speed, or declare roadworthy.kinematics",
        )
    a = np.asarray(action, dtype=np.float64)
    v = pose[:, 3].astype(np.float64)
    design = np.column_stack([np.ones(len(i)), a[i], v[i]])
    acc = (v[j] - v[i]) / dt
    coef_a, *_ = np.linalg.lstsq(design, acc, rcond=None)
    moving = v[i] > min_moving_speed
    yaw_rate = ((pose[j, 2] - pose[i, 2] + np.pi) % (2 * np.pi) - np.pi) / dt
    if moving.sum() >= 10:
        curv = np.arctan(yaw_rate[moving] * wheelbase / v[i][moving])
        coef_s, *_ = np.linalg.lstsq(np.column_stack([np.ones(moving.sum()), a[i][moving]]), curv, rcond=None)
    else:
        coef_s = np.zeros(1 + a.shape[1])
    return Bicycle(
        wheelbase=wheelbase,
        rear=wheelbase,
        accel=tuple(float(c) for c in coef_a[:-1]),
        steer=tuple(float(c) for c in coef_s),
        drag=float(coef_a[-1]),
        min_speed=0.0,
        source="fitted",
    )


def residuals(model: Bicycle, pose: np.ndarray, action: np.ndarray, has_next: np.ndarray, dt: float) -> dict:
    """One-step errors of ``model`` on logged consecutive rows: RMS of position (m), heading
    (rad) and speed (m/s), and the number of pairs."""
    i, j = _pairs(pose, has_next)
    if not len(i):
        return {"pairs": 0, "position_m": None, "heading_rad": None, "speed_mps": None}
    pred = model.step(pose[i], np.asarray(action)[i], dt)
    d_pos = np.hypot(pred[:, 0] - pose[j, 0], pred[:, 1] - pose[j, 1])
    d_yaw = (pred[:, 2] - pose[j, 2] + np.pi) % (2 * np.pi) - np.pi
    d_v = pred[:, 3] - pose[j, 3]
    return {
        "pairs": len(i),
        "position_m": float(np.sqrt(np.mean(d_pos**2))),
        "heading_rad": float(np.sqrt(np.mean(d_yaw**2))),
        "speed_mps": float(np.sqrt(np.mean(d_v**2))),
    }
