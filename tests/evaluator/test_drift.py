"""A policy that drives out of the support one small step at a time is charged in proportion.

Three policies drift sideways at half, one and two times 0.2 m/s (the benchmark's ``drift``
family): every decision of theirs looks ordinary, the danger is where the steps add up to.
Their road departures in the evaluator's simulated world are compared with closed-loop
rollouts of the simulator from the same starting traffic as the log (ground truth).
"""

from __future__ import annotations

import pytest

RATES = (0.1, 0.2, 0.4)


@pytest.fixture(scope="module")
def drift_case(sim_logs, tmp_path_factory):
    pytest.importorskip("highway_env")
    from roadworthy.data.sim.drivers import AUTOPILOT
    from roadworthy.data.sim.features import ACTION_NAMES, OBS_NAMES
    from roadworthy.data.sim.highway import HighwayConfig
    from roadworthy.data.sim.policies import DriverPolicy, export_policy
    from roadworthy.data.sim.rollout import rollout_highway

    out = tmp_path_factory.mktemp("drift")
    paths = [
        export_policy(
            DriverPolicy(AUTOPILOT.replace(drift_rate=r)),
            out / f"drift-{r}.onnx",
            name=f"drift-{r}",
            obs_names=OBS_NAMES,
            action_names=ACTION_NAMES,
        )
        for r in RATES
    ]
    # The fixture's log: 12 episodes of 12 s, collect seed 7; the same seed starts the same traffic.
    truth = rollout_highway(paths, episodes=12, seed=7, workers=1, config=HighwayConfig(duration=12.0))
    return paths, {p["name"]: p["costs"]["off_road"]["estimate"] for p in truth["policies"]}


@pytest.mark.slow
def test_drift_is_charged_in_proportion_to_its_truth(sim_logs, drift_case):
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel
    from roadworthy.evaluator.evaluate import evaluate
    from roadworthy.evaluator.evaluate_config import EvaluateConfig
    from roadworthy.evaluator.model_based import ModelConfig

    paths, truth = drift_case
    bm = BehaviorModel.fit(sim_logs, BehaviorConfig(model_params={"epochs": 8, "hidden": (32, 32)}))
    config = EvaluateConfig(heads=3, estimator="model", model=ModelConfig(hidden=(32, 32), steps=200, batch_size=256))
    report = evaluate(sim_logs, paths, model=bm, config=config)
    est = {p["name"]: p["costs"]["off_road"]["estimate"] for p in report["policies"]}
    names = [f"drift-{r}" for r in RATES]
    # Charged in proportion: a faster drift leaves the road sooner and more often, in the
    # simulated world as in truth.
    assert [est[n] for n in names] == sorted(est[n] for n in names)
    assert truth[names[-1]] > truth[names[0]]
    for n in names:
        if truth[n] > 0.02:
            assert 0.5 <= est[n] / truth[n] <= 2.0, (n, est[n], truth[n])
        else:
            assert est[n] < 0.05, (n, est[n], truth[n])
    assert report["channels"]["off_road"]["kind"] == "computed"
    lane = {p["name"]: p["costs"]["lane_departure"]["estimate"] for p in report["policies"]}
    assert lane[names[-1]] > lane[names[0]] >= 0.0
