"""Split-conformal calibration: exact p-values, false-alarm rate, groups, BH."""

from __future__ import annotations

import numpy as np
import pytest

from roadworthy.density.calibration import ALL, ConformalCalibrator, benjamini_hochberg, group_levels, speed_band


def test_pvalue_formula_on_a_tiny_example():
    cal = ConformalCalibrator.fit(np.array([1.0, 2.0, 3.0, 4.0]), [np.full(4, ALL, object)], alpha=0.2, min_bin=1)
    p = cal.pvalues(np.array([0.5, 2.0, 3.5, 9.0]), [np.full(4, ALL, object)])
    np.testing.assert_allclose(p, [5 / 5, 4 / 5, 2 / 5, 1 / 5])
    assert cal.flags(p).tolist() == [False, False, False, True]


def test_false_alarm_rate_on_fresh_exchangeable_episodes():
    """Episodes with a shared random effect (rows within an episode are dependent);
    calibrating on whole episodes keeps the rate of fresh episodes at alpha."""
    rng = np.random.default_rng(0)

    def episodes(n):
        shift = rng.normal(0, 0.5, n)
        return np.concatenate([rng.gumbel(s, 1.0, 60) for s in shift]), np.repeat(np.arange(n), 60)

    alpha = 0.05
    cal_scores, _ = episodes(400)
    cal = ConformalCalibrator.fit(cal_scores, [np.full(len(cal_scores), ALL, object)], alpha=alpha)
    test, ep = episodes(2000)
    flags = cal.flags(cal.pvalues(test, [np.full(len(test), ALL, object)]))
    per_ep = np.bincount(ep, weights=flags) / np.bincount(ep)
    rate, se = per_ep.mean(), per_ep.std(ddof=1) / np.sqrt(len(per_ep))
    assert abs(rate - alpha) < 3 * se + 0.003, (rate, se)


def test_groups_fall_back_when_too_small():
    src = np.array(["human"] * 300 + ["autopilot"] * 50, dtype=object)
    levels = group_levels(src, {}, len(src))
    cal = ConformalCalibrator.fit(np.r_[np.zeros(300), np.full(50, 10.0)], levels, min_bin=100)
    resolved = cal.resolve(group_levels(np.array(["human", "autopilot", "robot"], dtype=object), {}, 3))
    assert resolved.tolist() == ["source=human", ALL, ALL]


def test_slice_labels():
    lv = group_levels(np.array(["h", "a"], dtype=object), {"speed_band": speed_band(np.array([3.0, 25.0]))}, 2)
    assert lv[0].tolist() == ["source=h|speed_band=0-5", "source=a|speed_band=20-30"]
    assert speed_band(np.array([35.0]))[0] == "30+"


def test_benjamini_hochberg():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True] + [False] * 8
    assert benjamini_hochberg(np.array([0.01, 0.02, 0.03]), 0.05).all()
    assert not benjamini_hochberg(np.array([0.5, 0.9]), 0.05).any()


def test_alpha_must_be_a_rate():
    with pytest.raises(ValueError, match="alpha"):
        ConformalCalibrator.fit(np.zeros(3), [np.full(3, ALL, object)], alpha=1.5)
