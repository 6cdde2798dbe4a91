"""The headline rule on exact inputs: member screening, the value's estimator, the danger check per channel."""

from __future__ import annotations

import numpy as np
import pytest

from roadworthy.evaluator.headline import choose_channel, screen_members


def _check(oob_err: np.ndarray, logged: float = 50.0) -> dict:
    return {
        "predicted": np.array([logged + oob_err.mean(), 0.0]),
        "logged": np.array([logged, 0.0]),
        "error": np.array([oob_err.mean(), 0.0]),
        "per_member": np.column_stack([oob_err, np.zeros_like(oob_err)]),
    }


def test_an_outlying_member_is_dropped_and_the_error_pooled_over_the_rest():
    err = np.array([-1.0, -0.5, 0.2, -31.0, 0.5, 0.0])
    keep, checked = screen_members(_check(err), heads=6, tolerance=0.1)
    assert keep.tolist() == [True, True, True, False, True, True]
    assert checked["error"][0] == pytest.approx(np.mean([-1.0, -0.5, 0.2, 0.5, 0.0]))
    assert checked["kept_members"] == [0, 1, 2, 4, 5]
    assert checked["screen_threshold"] == pytest.approx(5.0)  # 10 % of the logged value beats 4 robust sds


def test_screening_keeps_at_least_three_members_and_ignores_members_without_held_out_episodes():
    keep, _ = screen_members(_check(np.array([0.0, 0.1, 40.0])), heads=3, tolerance=0.1)
    assert keep.all()
    keep, _ = screen_members(_check(np.array([0.0, 0.1, 40.0, 0.2])), heads=4, tolerance=0.1)
    assert keep.tolist() == [True, True, False, True]
    keep, checked = screen_members(_check(np.array([0.0, np.nan, 1.0, 0.5])), heads=4, tolerance=0.1)
    assert keep.all() and checked["error"][0] == pytest.approx(0.5)


def _danger(detected, pairs=10):
    return {"events": 3, "pairs": pairs, "detected": detected}


def test_an_estimator_that_misses_the_logged_dangers_is_not_the_headline_for_that_channel():
    ch = choose_channel({"model": _danger(0.1), "fqe": _danger(0.8)}, "model", 0.5)
    assert ch.chosen == ["fqe"] and ch.checks["model"]["passed"] is False
    assert "fqe reproduce" in ch.status


def test_of_the_estimators_that_pass_the_more_pessimistic_is_taken():
    ch = choose_channel({"model": _danger(0.9), "fqe": _danger(0.6)}, "model", 0.5)
    assert ch.chosen == ["model", "fqe"]
    assert ch.to_dict()["chosen"] == "max(model, fqe)"


def test_a_channel_nobody_reproduces_is_unverified_and_one_without_events_unchecked():
    ch = choose_channel({"model": _danger(0.0)}, "model", 0.5)
    assert ch.chosen == ["model"] and ch.status.startswith("unverified")
    ch = choose_channel({"model": _danger(None, pairs=0)}, "model", 0.5)
    assert ch.status.startswith("no logged event")
    ch = choose_channel({"model": _danger(0.0)}, "model", 0.5, fixed="fqe")
    assert ch.chosen == ["fqe"] and ch.status.startswith("unverified")
