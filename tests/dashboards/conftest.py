"""Fixtures for the dashboards: simulator logs, a CARLA import, a behaviour model, a report."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("duckdb")
pytest.importorskip("plotly")


@pytest.fixture(scope="session")
def dash_model(sim_logs, tmp_path_factory) -> Path:
    from roadworthy.density.behavior import BehaviorConfig, BehaviorModel

    folder = tmp_path_factory.mktemp("dash-model") / "model"
    BehaviorModel.fit(sim_logs, BehaviorConfig(model="gmm")).save(folder)
    return folder


@pytest.fixture(scope="session")
def dash_report(sim_logs, dash_model, tmp_path_factory) -> Path:
    """A real evaluation report of two example policies (tiny estimator settings)."""
    from roadworthy.cli.common import write_json
    from roadworthy.data.sim.policies import example_policy_path
    from roadworthy.evaluator.evaluate import EvaluateConfig, evaluate
    from roadworthy.evaluator.fqe import FQEConfig
    from roadworthy.evaluator.importance import ISConfig
    from roadworthy.evaluator.model_based import ModelConfig

    config = EvaluateConfig(
        heads=3,
        estimator="model",
        model=ModelConfig(hidden=(16, 16), steps=50, components=2, batch_size=256),
        fqe=FQEConfig(hidden=(16, 16), iterations=10, steps_per_iteration=5, batch_size=256),
        importance=ISConfig(bootstrap=10),
    )
    rep = evaluate(
        sim_logs,
        [example_policy_path("autopilot-clone"), example_policy_path("swerve")],
        model=dash_model,
        config=config,
    )
    path = tmp_path_factory.mktemp("dash-report") / "report.json"
    write_json(rep, path)
    return path


@pytest.fixture(scope="session")
def carla_logs(tmp_path_factory) -> Path:
    """A real CARLA recording imported with its town's lanes."""
    pytest.importorskip("carla")
    from roadworthy.data.carla.importer import import_recording
    from tests.data.carla.conftest import recording, town

    out = tmp_path_factory.mktemp("carla-import") / "logs"
    import_recording(recording("DistanceBetweenVehicles"), map_path=town("Town01"), out=out)
    return out


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROADWORTHY_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def dmv_dir(tmp_path_factory) -> Path:
    """The real 2023 DMV reports, imported (from ../shared; never copied into the repo)."""
    from roadworthy.data.dmv.importer import import_dmv
    from tests.conftest import SHARED, require_shared

    dmv = SHARED / "data" / "dmv"
    dis = [
        require_shared(dmv / f"2023-Autonomous-Vehicle-Disengagement-Reports-CSV{s}.csv") for s in ("", "-driverless")
    ]
    mil = [require_shared(dmv / f"2023-Autonomous-Mileage-Reports-CSV{s}.csv") for s in ("", "-driverless")]
    out = tmp_path_factory.mktemp("dmv") / "dmv"
    import_dmv(dis, mil, out)
    return out


@pytest.fixture(scope="session")
def sgo_dir(tmp_path_factory) -> Path:
    """The real NHTSA crash reports (ADS August 2024 and ADAS January 2023), imported."""
    from roadworthy.data.sgo.importer import import_sgo
    from tests.conftest import SHARED, require_shared

    sgo = SHARED / "data" / "sgo"
    files = [require_shared(sgo / f"SGO-2021-01_Incident_Reports_{n}.csv") for n in ("ADS-2024-08", "ADAS-2023-01")]
    out = tmp_path_factory.mktemp("sgo") / "sgo"
    import_sgo(files, out)
    return out
