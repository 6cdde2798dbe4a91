"""Recording-to-log import, the CARLA commands, and live/replay feature identity."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from typer.testing import CliRunner

carla = pytest.importorskip("carla")

from roadworthy.cli import app  # noqa: E402
from roadworthy.data.carla import format as fmt  # noqa: E402
from roadworthy.data.carla.features import IDX, OBS_NAMES, compute_features  # noqa: E402
from roadworthy.data.carla.importer import find_hero, frame_batch, import_recording  # noqa: E402
from roadworthy.data.carla.info import summarize_recording  # noqa: E402
from roadworthy.data.carla.live import ServerError, batch_from_ticks, check_server, tick_values  # noqa: E402
from roadworthy.data.carla.recorder import read_recording  # noqa: E402
from roadworthy.data.carla.recorder_writer import write_synthetic  # noqa: E402
from roadworthy.data.dataset import scan_logs  # noqa: E402
from roadworthy.data.errors import UsageError  # noqa: E402
from roadworthy.data.validate import validate_logs  # noqa: E402
from tests.data.carla.conftest import RECORDINGS, recording, town  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = {}
    for name in RECORDINGS:
        folder = tmp_path_factory.mktemp("imp") / name
        import_recording(recording(name), map_path=town("Town01"), out=folder)
        out[name] = folder
    return out


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_imported_logs_validate_and_stay_on_driving_lanes(imported, name):
    summary = validate_logs(imported[name])
    assert summary.episodes == 1
    assert summary.rows == RECORDINGS[name]["frames"] - 1  # the hero's first frame has no position yet
    assert summary.metadata.obs_names == OBS_NAMES
    assert summary.maps == {"Town01": summary.rows}
    t = scan_logs(imported[name]).read()
    obs = t.column("obs").combine_chunks().flatten().to_numpy().reshape(t.num_rows, -1)
    assert (obs[:, IDX["lane_driving"]] == 1).all()
    assert not t.column("off_road").to_numpy().any()
    offset = np.abs(obs[:, IDX["lane_offset_m"]])
    assert np.median(offset) < 1.0
    if name == "DistanceBetweenVehicles":
        assert offset.max() < 1.0
    act = t.column("action").combine_chunks().flatten().to_numpy().reshape(t.num_rows, 3)
    assert ((act >= [-1, 0, 0]) & (act <= [1, 1, 1])).all()
    assert (imported[name] / "_maps" / "Town01.parquet").is_file()


def test_other_vehicle_and_traffic_lights_appear(imported):
    t = scan_logs(imported["DistanceBetweenVehicles"]).read()
    obs = t.column("obs").combine_chunks().flatten().to_numpy().reshape(t.num_rows, -1)
    assert (obs[:, IDX["actor0_dx_m"]] < 50).mean() > 0.9  # the scenario's second vehicle
    assert (obs[:, IDX["tl_distance_m"]] < 40).any()


def test_hero_selection():
    rec = read_recording(recording("DistanceBetweenVehicles"))
    assert find_hero(rec, None) == 174
    assert find_hero(rec, "scenario") == 175
    assert find_hero(rec, "175") == 175
    with pytest.raises(UsageError, match=r"174 \(vehicle.lincoln.mkz_2017, role 'hero'\)"):
        find_hero(rec, "nobody")


def test_live_ticks_give_the_same_rows_as_the_replay(town01):
    """Rebuild each frame with real carla types, as the live collector reads them,
    and check the features equal the replay import's."""
    rec = read_recording(recording("DistanceBetweenVehicles"))
    batch, _ = frame_batch(rec, 174)
    ticks = []
    states = [carla.TrafficLightState.Red, carla.TrafficLightState.Yellow, carla.TrafficLightState.Green]
    for i in range(len(batch)):
        tr = carla.Transform(
            carla.Location(x=float(batch.x[i]), y=float(batch.y[i]), z=0.5),
            carla.Rotation(yaw=float(np.degrees(batch.yaw[i]))),
        )
        sel = batch.others["frame"] == i
        others = [
            (carla.Location(x=float(x), y=float(y)), carla.Vector3D(float(vx), float(vy), 0.0))
            for x, y, vx, vy in zip(
                batch.others["x"][sel],
                batch.others["y"][sel],
                batch.others["vx"][sel],
                batch.others["vy"][sel],
                strict=True,
            )
        ]
        lsel = batch.lights["frame"] == i
        lights = [
            (carla.Location(x=float(x), y=float(y)), states[int(s)])
            for x, y, s in zip(
                batch.lights["x"][lsel], batch.lights["y"][lsel], batch.lights["state"][lsel], strict=True
            )
        ]
        c = batch.control[i]
        control = carla.VehicleControl(steer=float(c[0]), throttle=float(c[1]), brake=float(c[2]))
        vel = carla.Vector3D(float(batch.vx[i]), float(batch.vy[i]), 0.0)
        ticks.append(tick_values(batch.t[i], tr, vel, control, bool(batch.collision[i]), others, lights))
    live = batch_from_ticks(ticks)
    replay_obs, _ = compute_features(batch, town01)
    live_obs, _ = compute_features(live, town01)
    np.testing.assert_allclose(live_obs, replay_obs, atol=2e-3)
    np.testing.assert_allclose(live.control, batch.control, atol=1e-6)


def test_no_server_fails_fast():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(ServerError, match=rf"127.0.0.1:{port}"):
        check_server("127.0.0.1", port, 3.0)
    res = runner.invoke(
        app, ["collect", "carla", "--out", "/tmp/never", "--host", "127.0.0.1", "--port", str(port), "--timeout", "2"]
    )
    assert res.exit_code == 2 and "Traceback" not in res.output and f"127.0.0.1:{port}" in res.stderr


def test_info_summary_and_carla_text():
    s = summarize_recording(recording("DistanceToLaneCenter"), events=True)
    assert s["map"] == "Town01" and s["frames"] == 432 and s["profile"] == "0.9.13"
    assert s["heroes"][0]["blueprint"] == "vehicle.lincoln.mkz_2017"
    assert s["packets"]["Position"] == 432
    text = s["text"]
    assert text.startswith("Version: 1\nMap: Town01\nDate: ")
    assert " Create 234: vehicle.lincoln.mkz_2017 (1) at (" in text
    assert text.rstrip().endswith("Frames: 432\nDuration: 12.5282 seconds")


def test_cli_info_import_and_errors(tmp_path):
    res = runner.invoke(app, ["carla", "info", str(recording("DistanceToLaneCenter")), "--json", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["frames"] == 432
    res = runner.invoke(
        app,
        [
            "import",
            "carla",
            str(recording("DistanceToLaneCenter")),
            "--map",
            str(town("Town01")),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "import",
            "carla",
            str(recording("DistanceToLaneCenter")),
            "--map",
            str(town("Town02")),
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert res.exit_code == 2 and "Town02" in res.stderr


def test_cli_errors_need_no_shared_files(tmp_path):
    # Error paths run on files the test writes itself, so they run wherever the tests do.
    good = write_synthetic(tmp_path / "synthetic.log", frames=40)
    bad = tmp_path / "bad.log"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    res = runner.invoke(app, ["carla", "info", str(bad)])
    assert res.exit_code == 2 and "last complete frame" in res.stderr and "Traceback" not in res.output
    out = str(tmp_path / "o")
    res = runner.invoke(app, ["import", "carla", str(good), "--map", str(tmp_path / "nope.xodr"), "-o", out])
    assert res.exit_code == 2 and "nope.xodr" in res.stderr and not (tmp_path / "o").exists()
    res = runner.invoke(app, ["import", "carla", str(good), "--map", str(good), "-o", out, "--source", "x"])
    assert res.exit_code == 2 and "--source" in res.stderr


def test_kinds_known_to_the_info_text_match_the_format():
    assert fmt.ACTOR_TYPES[1] == "vehicle"
