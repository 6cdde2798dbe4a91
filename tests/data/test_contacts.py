"""Contacts from the features that place other road users: exact boxes, and the simulator's crashes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roadworthy.data.contacts import ContactSpec, boxes_overlap
from roadworthy.data.errors import UsageError


def test_box_overlap_is_exact_for_aligned_and_rotated_boxes():
    # Aligned 5 x 2 boxes touch when both centre distances are under one length / one width.
    x = np.array([4.9, 5.1, 0.0, 0.0, 3.0])
    y = np.array([0.0, 0.0, 1.9, 2.1, 1.5])
    np.testing.assert_array_equal(boxes_overlap(np.zeros(5), np.zeros(5), x, y, 5.0, 2.0), [1, 0, 1, 0, 1])
    # Turned by 90 degrees the ego is 2 long and 5 wide: a box 3.4 m ahead now misses it.
    turned = np.full(2, np.pi / 2)
    np.testing.assert_array_equal(boxes_overlap(np.zeros(2), turned, np.array([3.4, 3.6]), 0.0, 5.0, 2.0), [1, 0])
    # At 45 degrees the corner reaches sqrt(2.5^2 + 1^2) * cos(45 deg - atan(1/2.5)) sideways.
    reach = np.hypot(2.5, 1.0) * np.cos(np.pi / 4 - np.arctan(1 / 2.5))
    y = np.array([reach + 1.0 - 0.01, reach + 1.0 + 0.01])
    np.testing.assert_array_equal(boxes_overlap(np.zeros(2), np.full(2, np.pi / 4), 0.0, y, 5.0, 2.0), [1, 0])


SLOTS = {
    "vehicle_m": [5.0, 2.0],
    "lane_offset": "off",
    "heading_error": "psi",
    "absent_gap_m": 100.0,
    "slots": [
        {"gap": "lead", "rel_speed": "lead_v", "position": "ahead", "lateral_m": 0.0},
        {"gap": "right_follow", "rel_speed": "right_follow_v", "position": "behind", "lateral_m": 4.0},
    ],
}
NAMES = ["off", "psi", "lead", "lead_v", "right_follow", "right_follow_v"]


def test_slots_touch_only_the_vehicle_that_was_there():
    spec = ContactSpec.from_metadata({"contacts": json.dumps(SLOTS)}, NAMES)
    prev = np.array(
        [
            [0.0, 0.0, 1.0, -6.0, 100.0, 0.0],  # closing on the lead at 6 m/s, 1 m away
            [0.0, 0.0, 60.0, 0.0, 100.0, 0.0],  # a lead far away ...
            [1.5, 0.1, 100.0, 0.0, -3.0, 0.0],  # changing lanes right, a car alongside behind
            [0.5, 0.0, 100.0, 0.0, -3.0, 0.0],  # ... the same car, the ego still in its lane
        ]
    )
    obs = prev.copy()
    obs[0, 2] = -0.2  # the gap closed: a rear-end
    obs[1, 2] = -1.0  # ... a jump to a vehicle at -1 m: another vehicle, not this one
    obs[2, 0] = 2.1  # the ego's box reaches the car beside
    obs[3, 0] = 0.6
    np.testing.assert_array_equal(spec.touching(obs, prev, dt=0.2), [True, False, True, False])
    np.testing.assert_array_equal(spec.touching(obs), [True, True, True, False])


def test_actors_in_the_ego_frame():
    spec = ContactSpec.from_metadata(
        {"contacts": json.dumps({"vehicle_m": [4.5, 2.0], "absent_dx_m": 50.0, "actors": [{"dx": "dx", "dy": "dy"}]})},
        ["dx", "dy"],
    )
    obs = np.array([[4.0, 1.5], [4.6, 0.0], [50.0, 0.0], [-2.0, -1.9]])
    np.testing.assert_array_equal(spec.touching(obs), [True, False, False, True])


def test_declarations_are_checked():
    assert ContactSpec.from_metadata({}, NAMES) is None
    with pytest.raises(UsageError, match="not an obs entry"):
        ContactSpec.from_metadata({"contacts": json.dumps(SLOTS)}, NAMES[:3])
    with pytest.raises(UsageError, match="neither slots nor actors"):
        ContactSpec.from_metadata({"contacts": json.dumps({"vehicle_m": [4, 2]})}, NAMES)
    bad = {k: v for k, v in SLOTS.items() if k != "lane_offset"}
    with pytest.raises(UsageError, match="lane_offset"):
        ContactSpec.from_metadata({"contacts": json.dumps(bad)}, NAMES)


def test_no_false_contacts_on_logged_driving_and_the_logged_crashes_it_explains(sim_logs):
    """On real simulator rows the rule never fires where the simulator saw no collision."""
    from roadworthy.evaluator.logdata import load_eval_data

    data = load_eval_data(sim_logs)
    assert data.contacts is not None and len(data.contacts.slots) == 6
    rows = np.flatnonzero(data.has_next)
    touched = data.contacts.touching(data.next_obs[rows], data.obs[rows], data.dt)
    assert not touched.any()
