"""The evaluator on a CARLA import: a Town map, fitted kinematics, computed road departures.

A real recording (shared data) is imported with its town's lanes, cut into episodes, and two
policies are evaluated on it: one that keeps its lane and one that steers hard to the right.
Nothing here is declared by the simulator: the kinematics are fitted to the recording's poses
and the road is CARLA's own map.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("carla")
torch = pytest.importorskip("torch")

from tests.data.carla.conftest import recording, town  # noqa: E402


class _Steer(torch.nn.Module):
    """Throttle 0.4, steering by lane offset and heading error, or a fixed hard right."""

    def __init__(self, hard_right: bool) -> None:
        super().__init__()
        self.hard_right = hard_right

    def forward(self, obs):
        from roadworthy.data.carla.features import IDX

        steer = -0.8 * obs[:, IDX["heading_error_rad"]] - 0.1 * obs[:, IDX["lane_offset_m"]]
        if self.hard_right:
            steer = steer * 0.0 + 0.6
        zero = steer * 0.0
        return torch.stack([steer.clamp(-1, 1), zero + 0.4, zero], 1)


@pytest.fixture(scope="module")
def carla_log(tmp_path_factory):
    from roadworthy.data.carla.features import ACTION_NAMES, OBS_NAMES
    from roadworthy.data.carla.importer import import_recording
    from roadworthy.data.sim.policies import export_policy

    base = tmp_path_factory.mktemp("carla-eval")
    imp = base / "import"
    import_recording(recording("DistanceBetweenVehicles"), map_path=town("Town01"), out=imp)
    # One recording is one episode: cut it into episodes of 120 frames (6 s), as the density
    # benchmark does, so that the bootstrap has episodes to resample.
    table = pq.read_table(sorted(imp.glob("*.parquet")))
    n, length = table.num_rows, 120
    k = np.arange(n) // length
    step = np.arange(n) % length
    last = np.r_[k[1:] != k[:-1], True]
    t0 = table.column("t").to_numpy()
    start_t = t0[np.flatnonzero(step == 0)][k]
    table = (
        table.set_column(table.schema.get_field_index("episode_id"), "episode_id", pa.array([f"e{i:03d}" for i in k]))
        .set_column(table.schema.get_field_index("step"), "step", pa.array(step.astype(np.int32)))
        .set_column(table.schema.get_field_index("t"), "t", pa.array(t0 - start_t))
        .set_column(table.schema.get_field_index("done"), "done", pa.array(last))
    )
    logs = base / "logs"
    (logs / "_maps").mkdir(parents=True)
    pq.write_table(table, logs / "part-0.parquet")
    for f in (imp / "_maps").iterdir():
        shutil.copy(f, logs / "_maps" / f.name)
    paths = []
    for name, hard in (("keeps-lane", False), ("hard-right", True)):
        paths.append(
            export_policy(
                _Steer(hard), base / f"{name}.onnx", name=name, obs_names=OBS_NAMES, action_names=ACTION_NAMES
            )
        )
    return logs, paths


def test_carla_import_declares_its_geometry_and_the_evaluator_computes_road_departures(carla_log):
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel
    from roadworthy.evaluator.evaluate import evaluate
    from roadworthy.evaluator.evaluate_config import EvaluateConfig
    from roadworthy.evaluator.model_based import ModelConfig

    logs, paths = carla_log
    meta = pq.read_schema(logs / "part-0.parquet").metadata
    assert json.loads(meta[b"roadworthy.geometry"])["features"]["lane_offset"] == "lane_offset_m"
    assert "roadworthy.kinematics" not in {k.decode() for k in meta}  # fitted, not declared
    bm = BehaviorModel.fit(logs, BehaviorConfig(model_params={"epochs": 5, "hidden": (32, 32)}, min_bin=50))
    config = EvaluateConfig(heads=2, estimator="model", model=ModelConfig(hidden=(32, 32), steps=100, batch_size=128))
    report = evaluate(logs, paths, model=bm, config=config)
    geo = report["geometry"]
    assert geo["maps"] == ["Town01"] and geo["kinematics"]["source"] == "fitted"
    assert geo["kinematics_one_step_error"]["position_m"] < 0.1
    assert report["channels"]["off_road"]["kind"] == "computed"
    assert report["channels"]["collision"]["kind"] == "computed"  # the four nearest actors' boxes
    assert report["channels"]["lane_departure"]["kind"] == "computed"
    by = {p["name"]: p for p in report["policies"]}
    # Steering hard right leaves the town's drivable lanes within seconds; keeping the lane does not.
    assert by["hard-right"]["costs"]["off_road"]["estimate"] > 0.5
    assert by["keeps-lane"]["costs"]["off_road"]["estimate"] < 0.2
    assert (
        by["hard-right"]["costs"]["lane_departure"]["estimate"]
        > by["keeps-lane"]["costs"]["lane_departure"]["estimate"]
    )
