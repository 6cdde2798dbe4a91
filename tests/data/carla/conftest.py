"""Fixtures over the real CARLA files in ../shared/data/carla (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED

CARLA = SHARED / "data" / "carla"
RECORDINGS = {
    "DistanceBetweenVehicles": {"frames": 847, "duration": 24.7, "hero": 174},
    "DistanceToLaneCenter": {"frames": 432, "duration": 12.5, "hero": 234},
}


def recording(name: str) -> Path:
    path = CARLA / "recordings" / f"{name}.log"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return path


def town(name: str = "Town01") -> Path:
    path = CARLA / "maps" / f"{name}.xodr"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="session")
def town01():
    pytest.importorskip("carla")
    from data.carla.opendrive import MapLayer

    return MapLayer.from_xodr(town("Town01"))
