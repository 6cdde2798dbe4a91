"""Fixtures over the real CARLA files in ../shared/data/carla (read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SHARED, require_shared

CARLA = SHARED / "data" / "carla"
RECORDINGS = {
    "DistanceBetweenVehicles": {"frames": 847, "duration": 24.7, "hero": 174},
    "DistanceToLaneCenter": {"frames": 432, "duration": 12.5, "hero": 234},
}


def recording(name: str) -> Path:
    return require_shared(CARLA / "recordings" / f"{name}.log")


def town(name: str = "Town01") -> Path:
    return require_shared(CARLA / "maps" / f"{name}.xodr")


@pytest.fixture(scope="session")
def town01():
    pytest.importorskip("carla")
    from roadworthy.data.carla.opendrive import MapLayer

    return MapLayer.from_xodr(town("Town01"))
