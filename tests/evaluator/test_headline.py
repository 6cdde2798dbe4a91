"""The data-driven headline rule: member screening, bias correction and the choice."""

from __future__ import annotations

import numpy as np
import pytest

from roadworthy.evaluator.headline import choose, screen_members


def _check(bias: np.ndarray, oob_err: np.ndarray, logged: float = 50.0) -> dict:
    return {
        "predicted": np.array([logged + oob_err.mean(), 0.0]),
        "logged": np.array([logged, 0.0]),
        "error": np.array([oob_err.mean(), 0.0]),
        "per_member": np.column_stack([oob_err, np.zeros_like(oob_err)]),
        "bias": np.column_stack([bias, np.zeros_like(bias)]),
    }


def test_an_outlying_member_is_dropped_and_the_rest_corrected():
    bias = np.array([-5.0, -4.0, -6.0, -31.0, -5.5, -4.5])
    # Out of bag, each member is off by its own bias plus a little noise.
    oob = bias + np.array([0.5, -0.5, 0.2, 3.0, -0.2, 0.0])
    screen, corrected = screen_members(_check(bias, oob), heads=6, channels=2, tolerance=0.1)
    assert screen.keep.tolist() == [True, True, True, False, True, True]
    np.testing.assert_allclose(screen.bias[:, 0], bias)
    # The corrected held-out error is the noise of the kept members alone.
    assert corrected["error"][0] == pytest.approx(np.mean([0.5, -0.5, 0.2, -0.2, 0.0]))
    assert corrected["raw_relative_error"] == pytest.approx(abs(oob.mean()) / 50.0)
    assert corrected["kept_members"] == [0, 1, 2, 4, 5]
    sel = choose("auto", model_check=corrected, fqe_check=lambda: pytest.fail("FQE not needed"), tolerance=0.1)
    assert sel.chosen == "model"


def test_screening_keeps_at_least_three_members():
    bias = np.array([0.0, 0.1, 40.0])
    screen, _ = screen_members(_check(bias, bias), heads=3, channels=2, tolerance=0.1)
    assert screen.keep.all()
    bias = np.array([0.0, 0.1, 40.0, 0.2])
    screen, _ = screen_members(_check(bias, bias), heads=4, channels=2, tolerance=0.1)
    assert screen.keep.tolist() == [True, True, False, True]


def test_without_a_closed_loop_check_nothing_is_screened():
    check = _check(np.zeros(4), np.ones(4))
    del check["bias"]
    screen, same = screen_members(check, heads=4, channels=2, tolerance=0.1)
    assert screen.keep.all() and not screen.bias.any() and same is check
    screen, none = screen_members(None, heads=4, channels=2, tolerance=0.1)
    assert screen.keep.all() and none is None


def test_a_large_held_out_error_hands_over_to_the_smaller_one():
    model = {
        "predicted": np.array([30.0]),
        "logged": np.array([50.0]),
        "error": np.array([-20.0]),
        "per_member": np.array([[-20.0]]),
    }
    fqe = {
        "predicted": np.array([48.0]),
        "logged": np.array([50.0]),
        "error": np.array([-2.0]),
        "per_member": np.array([[-2.0]]),
    }
    sel = choose("auto", model_check=model, fqe_check=lambda: fqe, tolerance=0.1)
    assert sel.chosen == "fqe" and "FQE 4.0 %" in sel.rule
    assert choose("model", model_check=model, tolerance=0.1).chosen == "model"
