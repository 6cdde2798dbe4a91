"""The parametric driver model behind every simulated driver and example policy.

Longitudinal control is the Intelligent Driver Model (IDM, Treiber et al. 2000);
lane choice is a MOBIL-style rule (Kesting et al. 2007) evaluated on the feature
vector of :mod:`roadworthy.data.sim.features`; steering is a cascaded lateral-position /
heading controller like highway-env's ``ControlledVehicle.steering_control``.

The model is stateless: the action is a function of the current feature vector,
so it exports to ONNX as it is. The mathematics is written once against an array
namespace ``xp`` (``numpy`` for the simulator's drivers, ``torch`` for the policy
modules that are exported), so the logged autopilot and its ONNX clone compute the
same function.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from roadworthy.data.sim.features import IDX, LANE_WIDTH, SENSOR_RANGE, VEHICLE_LENGTH

#: Physical action bounds of the embedded simulator: acceleration (m/s^2), steering (rad).
ACTION_LOW: tuple[float, float] = (-6.0, -0.25)
ACTION_HIGH: tuple[float, float] = (4.0, 0.25)


@dataclass(frozen=True)
class DriverParams:
    """Parameters of one driver.

    Parameters
    ----------
    desired_speed : float
        IDM desired speed v0, m/s.
    time_headway : float
        IDM desired time gap T, s.
    min_gap : float
        IDM jam distance s0, m.
    max_accel : float
        IDM maximum acceleration a, m/s^2.
    comfort_decel : float
        IDM comfortable deceleration b, m/s^2.
    delta : float
        IDM acceleration exponent.
    politeness : float
        MOBIL politeness p (0 selfish, 1 altruistic).
    lane_change_threshold : float
        MOBIL incentive threshold, m/s^2.
    keep_right_bias : float
        MOBIL bias toward the right lane, m/s^2.
    safe_decel : float
        Largest braking a lane change may impose on the new follower, m/s^2.
    lateral_time_constant : float
        Time constant of the lateral-position loop, s.
    heading_time_constant : float
        Time constant of the heading loop, s.
    max_heading : float
        Largest heading relative to the lane during a lane change, rad.
    max_brake : float
        Hardest braking the driver ever applies, m/s^2 (a driver that never brakes
        harder than this rear-ends a vehicle that does).
    swerve_gap : float
        When > 0, the driver swerves right instead of braking whenever a closing
        lead vehicle is nearer than this many metres, with no safety check and
        whether or not a lane is there (an unsafe behaviour for tests), m.
    late_brake_ttc : float
        When > 0, the driver ignores the lead vehicle until the time to collision
        with it drops below this many seconds (or the gap below ``min_gap``): a late
        braker, s.
    lane_bias : float
        Offset of the lateral target from the lane centre, positive to the right; a
        bias beyond half a lane drifts across lane lines and, in the rightmost lane,
        off the road, m.
    glitch_rate : float
        Share of control steps on which the steering command glitches to
        ``glitch_steer`` (a pseudo-random but deterministic function of the
        features, so the policy stays a pure function of its input): a controller
        that fails only now and then.
    glitch_steer : float
        The glitched steering command, rad.
    blind_spot : float
        When > 0, vehicles in the side lanes that are alongside or less than this far
        behind are invisible to the lane choice: a driver with no blind-spot check, m.
    drift_rate : float
        When > 0, the lateral loop ignores the lane position and holds this sideways
        speed to the right instead: a slow, steady drift across the lanes and off the
        road, m/s.
    accept_gap : float
        When > 0, a lane change is admissible whenever both gaps in the target lane
        exceed this many metres, whatever the closing speeds and the braking it imposes
        on the new follower, and the target lane is judged as if free: a driver who
        squeezes into gaps that are too small, m.
    heading_feedback : float
        Share of the heading error fed back into the heading command. Above 1 the
        lateral loop has negative damping: every lane change starts a weave that grows
        (a mis-tuned steering controller).
    """

    desired_speed: float = 28.0
    time_headway: float = 1.5
    min_gap: float = 3.0
    max_accel: float = 1.5
    comfort_decel: float = 2.0
    delta: float = 4.0
    politeness: float = 0.3
    lane_change_threshold: float = 0.2
    keep_right_bias: float = 0.1
    safe_decel: float = 3.0
    lateral_time_constant: float = 2.0
    heading_time_constant: float = 0.5
    max_heading: float = 0.1
    max_brake: float = 1e3
    swerve_gap: float = 0.0
    late_brake_ttc: float = 0.0
    lane_bias: float = 0.0
    glitch_rate: float = 0.0
    glitch_steer: float = 0.25
    blind_spot: float = 0.0
    drift_rate: float = 0.0
    accept_gap: float = 0.0
    heading_feedback: float = 0.0

    def to_dict(self) -> dict[str, float]:
        """Plain dictionary of the parameters."""
        return asdict(self)

    def replace(self, **changes: float) -> DriverParams:
        """Copy with some parameters changed."""
        return replace(self, **changes)


#: The fleet's autopilot: careful IDM/MOBIL settings.
AUTOPILOT = DriverParams()


def _bool(xp: Any, cond: Any) -> Any:
    return xp.where(cond, 1.0, 0.0)


def idm_accel(xp: Any, p: DriverParams, v: Any, gap: Any, closing: Any, present: Any) -> Any:
    """IDM acceleration, m/s^2.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``torch``.
    p : DriverParams
    v : array
        Own speed, m/s.
    gap : array
        Bumper-to-bumper gap to the leader, m.
    closing : array
        Own speed minus the leader's, m/s.
    present : array of 0.0/1.0
        Whether there is a leader.
    """
    v = xp.maximum(v, 0.0 * v)
    free = 1.0 - (v / p.desired_speed) ** p.delta
    dyn = v * p.time_headway + v * closing / (2.0 * (p.max_accel * p.comfort_decel) ** 0.5)
    s_star = p.min_gap + xp.maximum(dyn, 0.0 * dyn)
    interaction = (s_star / xp.maximum(gap, 0.0 * gap + 0.5)) ** 2
    return p.max_accel * (free - present * interaction)


def _side_incentive(xp: Any, p: DriverParams, obs: Any, side: str, a_cur: Any) -> tuple[Any, Any]:
    """MOBIL incentive (m/s^2) and admissibility (0/1) of a change to ``side``."""
    v = obs[:, IDX["speed_mps"]]
    lead_gap = obs[:, IDX[f"{side}_lead_gap_m"]]
    lead_rel = obs[:, IDX[f"{side}_lead_rel_speed_mps"]]
    fol_gap = obs[:, IDX[f"{side}_follow_gap_m"]]
    fol_rel = obs[:, IDX[f"{side}_follow_rel_speed_mps"]]
    has_lane = obs[:, IDX[f"has_{side}_lane"]]
    if p.blind_spot > 0:
        # Unseen vehicles read as free space, as a sensor reports it.
        unseen_lead = _bool(xp, lead_gap < 0.0)
        unseen_fol = _bool(xp, fol_gap < p.blind_spot)
        lead_gap = lead_gap + unseen_lead * (SENSOR_RANGE - lead_gap)
        lead_rel = lead_rel * (1.0 - unseen_lead)
        fol_gap = fol_gap + unseen_fol * (SENSOR_RANGE - fol_gap)
        fol_rel = fol_rel * (1.0 - unseen_fol)
    lead_present = _bool(xp, lead_gap < SENSOR_RANGE - 1e-3)
    fol_present = _bool(xp, fol_gap < SENSOR_RANGE - 1e-3)

    # A gap squeezer judges the target lane as if it were free once the gaps exceed accept_gap.
    seen = lead_present * _bool(xp, lead_gap <= p.accept_gap) if p.accept_gap > 0 else lead_present
    a_new = idm_accel(xp, p, v, lead_gap, -lead_rel, seen)
    v_fol = v + fol_rel
    # The new follower, once we are its leader, and before, behind the side lead.
    fol_new = idm_accel(xp, p, v_fol, fol_gap, fol_rel, fol_present)
    fol_old = idm_accel(xp, p, v_fol, fol_gap + VEHICLE_LENGTH + lead_gap, fol_rel - lead_rel, lead_present)
    bias = p.keep_right_bias if side == "right" else -p.keep_right_bias
    incentive = a_new - a_cur + p.politeness * fol_present * (fol_new - fol_old) + bias
    safe = _bool(xp, fol_present * fol_new > -p.safe_decel) * _bool(xp, lead_gap > 0.0) * _bool(xp, fol_gap > 0.0)
    if p.accept_gap > 0:
        safe = _bool(xp, lead_gap > p.accept_gap) * _bool(xp, fol_gap > p.accept_gap)
    ok = has_lane * safe * _bool(xp, incentive > p.lane_change_threshold)
    return incentive, ok


def driver_action(xp: Any, p: DriverParams, obs: Any) -> Any:
    """Mean action of a driver with parameters ``p`` for a batch of features.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``torch``.
    p : DriverParams
    obs : array of shape (B, len(OBS_NAMES))
        Features from :func:`roadworthy.data.sim.features.observe`.

    Returns
    -------
    array of shape (B, 2)
        Acceleration (m/s^2) and steering angle (rad), not yet clipped.
    """
    v = obs[:, IDX["speed_mps"]]
    lane_offset = obs[:, IDX["lane_offset_m"]]
    heading_error = obs[:, IDX["heading_error_rad"]]
    lead_gap = obs[:, IDX["lead_gap_m"]]
    lead_rel = obs[:, IDX["lead_rel_speed_mps"]]
    lead_present = _bool(xp, lead_gap < SENSOR_RANGE - 1e-3)

    if p.late_brake_ttc > 0:
        # A late braker sees the lead only once it is about to hit it.
        closing = xp.maximum(-lead_rel, 0.0 * lead_rel)
        lead_present = lead_present * _bool(xp, lead_gap < p.late_brake_ttc * closing + p.min_gap)
    a_cur = idm_accel(xp, p, v, lead_gap, -lead_rel, lead_present)
    inc_l, ok_l = _side_incentive(xp, p, obs, "left", a_cur)
    inc_r, ok_r = _side_incentive(xp, p, obs, "right", a_cur)
    go_left = ok_l * (1.0 - ok_r * _bool(xp, inc_r > inc_l))
    go_right = ok_r * (1.0 - go_left)
    if p.swerve_gap > 0:
        swerve = lead_present * _bool(xp, lead_gap < p.swerve_gap) * _bool(xp, lead_rel < 0.0)
        go_right = xp.maximum(go_right, swerve)
        go_left = go_left * (1.0 - swerve)
        # A swerving driver holds its speed instead of braking for the lead.
        a_cur = (1.0 - swerve) * a_cur
    target = LANE_WIDTH * (go_right - go_left) + p.lane_bias

    # During a lane change, respect the leader in the target lane as well.
    side_gap = go_left * obs[:, IDX["left_lead_gap_m"]] + go_right * obs[:, IDX["right_lead_gap_m"]]
    side_rel = go_left * obs[:, IDX["left_lead_rel_speed_mps"]] + go_right * obs[:, IDX["right_lead_rel_speed_mps"]]
    changing = go_left + go_right
    side_present = changing * _bool(xp, side_gap < SENSOR_RANGE - 1e-3)
    a_side = idm_accel(xp, p, v, side_gap + (1.0 - changing) * SENSOR_RANGE, -side_rel, side_present)
    if p.swerve_gap > 0:
        a_side = a_side + swerve * 1e3
    accel = xp.maximum(xp.minimum(a_cur, a_side), 0.0 * a_cur - p.max_brake)

    # Cascaded lateral control: lateral speed -> heading -> yaw rate -> steering.
    speed = xp.maximum(v, 0.0 * v + 1.0)
    lat_speed = -(lane_offset - target) / p.lateral_time_constant
    if p.drift_rate > 0:
        lat_speed = 0.0 * lat_speed + p.drift_rate
    heading_cmd = xp.asin(xp.clip(lat_speed / speed, -1.0, 1.0))
    heading_ref = xp.clip(heading_cmd + p.heading_feedback * heading_error, -p.max_heading, p.max_heading)
    yaw_rate = (heading_ref - heading_error) / p.heading_time_constant
    slip = xp.asin(xp.clip(VEHICLE_LENGTH / 2.0 / speed * yaw_rate, -1.0, 1.0))
    steer = xp.atan(2.0 * xp.tan(slip))
    if p.glitch_rate > 0:
        glitch = _bool(xp, _hash01(xp, obs) < p.glitch_rate)
        steer = steer + glitch * (p.glitch_steer - steer)
    return xp.stack([accel, steer], 1)


def _hash01(xp: Any, obs: Any) -> Any:
    """A number in [0, 1) that jumps about with the features (a shader-style hash).

    Deterministic, so a glitching policy is still a function of its input, yet
    uncorrelated with the driving situation: glitches strike now and then.
    """
    v = obs[:, IDX["speed_mps"]]
    g = obs[:, IDX["lead_gap_m"]]
    f = obs[:, IDX["follow_gap_m"]]
    x = xp.sin(12.9898 * v + 78.233 * g + 37.719 * f) * 43758.5453
    return x - xp.floor(x)
