"""The recorder reader on the real CARLA files, synthetic files of every profile, and bad input."""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roadworthy.data.carla import format as fmt
from roadworthy.data.carla.recorder import RecorderError, RecorderReader, read_recording
from roadworthy.data.carla.recorder_writer import RecorderWriter, write_synthetic
from tests.data.carla.conftest import RECORDINGS, recording


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_real_recordings(name):
    expect = RECORDINGS[name]
    rec = read_recording(recording(name))
    assert rec.header.version == 1 and rec.header.magic == "CARLA_RECORDER"
    assert rec.header.map_name == "Town01"
    assert rec.profile.name == "0.9.13"
    assert rec.frames.num_rows == expect["frames"]
    assert rec.duration == pytest.approx(expect["duration"], abs=0.05)
    adds = rec.table(fmt.EVENT_ADD).to_pylist()
    heroes = [a for a in adds if a["role_name"] == "hero"]
    assert [(h["id"], h["blueprint"]) for h in heroes] == [(expect["hero"], "vehicle.lincoln.mkz_2017")]
    # Frame times: consecutive, elapsed grows by the frame's duration; CARLA writes -1 for the last.
    el = rec.frames.column("elapsed").to_numpy()
    dur = rec.frames.column("duration").to_numpy()
    ids = rec.frames.column("frame_id").to_numpy()
    assert (np.diff(ids) == 1).all() and el[0] == 0.0
    np.testing.assert_allclose(np.diff(el), dur[:-1], rtol=1e-9, atol=1e-9)
    assert dur[-1] == -1.0
    # Controls in range.
    av = rec.table(fmt.ANIM_VEHICLE)
    steer, thr, brk = (av.column(c).to_numpy() for c in ("steer", "throttle", "brake"))
    assert (np.abs(steer) <= 1).all() and ((thr >= 0) & (thr <= 1)).all() and ((brk >= 0) & (brk <= 1)).all()
    assert (av.column("gear").to_numpy() >= 0).all()
    # Velocities are m/s and agree with the positions (one frame of lag at most).
    kin = rec.table(fmt.KINEMATICS).to_pandas()
    speed = np.hypot(kin.vx, kin.vy)
    assert speed.max() < 30


def _reference_records(path, packet_id: int, fmt_: str) -> list[tuple]:
    """A slow, obviously correct decoder: walk every packet with struct."""
    blob = path.read_bytes()
    pos = 2
    (n,) = struct.unpack_from("<H", blob, pos)
    pos += 2 + n + 8
    (n,) = struct.unpack_from("<H", blob, pos)
    pos += 2 + n
    out, frame = [], -1
    size_rec = struct.calcsize(fmt_)
    while pos < len(blob):
        pid, size = struct.unpack_from("<BI", blob, pos)
        if pid == 0:
            frame += 1
        if pid == packet_id:
            (count,) = struct.unpack_from("<H", blob, pos + 5)
            for k in range(count):
                out.append((frame, *struct.unpack_from(fmt_, blob, pos + 7 + k * size_rec)))
        pos += 5 + size
    return out


@pytest.mark.parametrize(
    ("kind", "code", "cols"),
    [
        (fmt.POSITION, "<I6f", ("id", "x", "y", "z", "roll", "pitch", "yaw")),
        (fmt.ANIM_VEHICLE, "<I3fBi", ("id", "steer", "throttle", "brake", "handbrake", "gear")),
        (fmt.STATE, "<IBfB", ("id", "frozen", "elapsed", "state")),
        (fmt.KINEMATICS, "<I6f", ("id", "vx", "vy", "vz", "wx", "wy", "wz")),
    ],
)
def test_vectorized_decoding_equals_a_slow_reference(kind, code, cols):
    path = recording("DistanceBetweenVehicles")
    ref = _reference_records(path, fmt.PROFILES_BY_NAME["0.9.13"].packet_id(kind), code)
    got = read_recording(path, block_bytes=1 << 16).table(kind)
    assert got.num_rows == len(ref)
    scale = {"x": 100, "y": 100, "z": 100, "roll": 180 / np.pi, "pitch": 180 / np.pi, "yaw": 180 / np.pi}
    if kind == fmt.KINEMATICS:
        scale = {"wx": 180 / np.pi, "wy": 180 / np.pi, "wz": 180 / np.pi}
    frames = got.column("frame").to_numpy()
    assert frames.tolist() == [r[0] for r in ref]
    for j, c in enumerate(cols, start=1):
        mine = got.column(c).to_numpy().astype(np.float64) * scale.get(c, 1)
        theirs = np.array([r[j] for r in ref], dtype=np.float64)
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-4)


def test_block_size_does_not_change_the_result():
    path = recording("DistanceToLaneCenter")
    a = read_recording(path)
    b = read_recording(path, block_bytes=1 << 16)
    assert a.frames.equals(b.frames)
    assert set(a.tables) == set(b.tables)
    for kind, t in a.tables.items():
        other = b.tables[kind]
        assert t.schema.equals(other.schema) and t.num_rows == other.num_rows, kind
        for name in t.column_names:
            x, y = t.column(name), other.column(name)
            if pa.types.is_map(x.type) or pa.types.is_list(x.type):
                assert x.to_pylist() == y.to_pylist(), (kind, name)
            else:  # NaN equals NaN here (bounding boxes of some props are NaN)
                np.testing.assert_array_equal(x.to_numpy(), y.to_numpy(), err_msg=f"{kind}.{name}")


@pytest.mark.parametrize("profile", [p.name for p in fmt.PROFILES])
def test_synthetic_files_of_every_profile(tmp_path, profile):
    path = write_synthetic(tmp_path / "s.log", frames=20, profile=profile)
    rec = read_recording(path)
    assert rec.profile.name == profile
    assert rec.frames.num_rows == 20
    kinds = set(fmt.PROFILES_BY_NAME[profile].kinds) - {fmt.FRAME_START, fmt.FRAME_END}
    assert kinds <= set(rec.tables), kinds - set(rec.tables)
    assert not rec.stats.unknown
    if fmt.VEHICLE_DOOR in kinds:
        assert rec.table(fmt.VEHICLE_DOOR).to_pylist()[0]["open"] is True
    if fmt.ANIM_VEHICLE_WHEELS in kinds:
        assert rec.table(fmt.ANIM_VEHICLE_WHEELS).num_rows == 20 * 5 * 4
        assert set(rec.table(fmt.ANIM_VEHICLE_WHEELS).column("wheel").to_pylist()) == {0, 1, 2, 3}
    if fmt.WALKER_BONES in kinds:
        bones = rec.table(fmt.WALKER_BONES)
        assert bones.num_rows == 40 and bones.column("bone")[0].as_py() == "crl_root"
    pc = rec.table(fmt.PHYSICS_CONTROL).to_pylist()[0]
    assert pc["mass"] == 1500.0 and len(pc["wheels"]) == 4


@pytest.mark.parametrize(("wheel_floats", "release"), [(9, "0.9.10"), (12, "0.9.13")])
def test_physics_control_wheels_of_every_release(tmp_path, wheel_floats, release):
    # CARLA 0.9.10 and 0.9.11 wrote 36-byte wheels (no stiffness fields), later releases 48.
    path = tmp_path / f"{release}.log"
    with RecorderWriter(path, profile="0.9.13") as w:
        for k in range(3):
            w.begin_frame(k + 1, 0.05, 0.05 * k)
            w.records(fmt.POSITION, np.zeros(2, fmt.RECORD_DTYPES[fmt.POSITION]))
            if k == 1:
                w.physics_control(7, mass=1234.0, wheels=4, wheel_floats=wheel_floats)
            w.end_frame()
    rec = read_recording(path)
    pc = rec.table(fmt.PHYSICS_CONTROL).to_pylist()
    assert len(pc) == 1 and pc[0]["id"] == 7 and pc[0]["mass"] == 1234.0
    assert pc[0]["wheel_bytes"] == 4 * wheel_floats
    assert [len(wh) for wh in pc[0]["wheels"]] == [wheel_floats] * 4
    assert pc[0]["wheels"][0] == [float(i) for i in range(wheel_floats)]
    assert rec.table(fmt.POSITION).num_rows == 6


def test_unknown_packet_ids_are_skipped_by_size(tmp_path):
    with RecorderWriter(tmp_path / "u.log", profile="0.9.13") as w:
        for k in range(3):
            w.begin_frame(k + 1, 0.05, 0.05 * k)
            w.raw_packet(200, b"\x01\x02\x03\x04\x05")
            w.records(fmt.POSITION, np.zeros(2, fmt.RECORD_DTYPES[fmt.POSITION]))
            w.end_frame()
    rec = read_recording(tmp_path / "u.log")
    assert rec.stats.unknown == {200: 3}
    assert rec.table(fmt.POSITION).num_rows == 6


# -- bad input -------------------------------------------------------------------------


def _expect_error(path, *words):
    with pytest.raises(RecorderError) as info:
        read_recording(path)
    text = str(info.value)
    assert str(path) in text and "byte" in text and "last complete frame" in text and "Hint:" in text
    for w in words:
        assert w in text, text
    return info.value


def test_empty_file(tmp_path):
    (tmp_path / "e.log").write_bytes(b"")
    _expect_error(tmp_path / "e.log", "empty")


def test_wrong_magic(tmp_path):
    blob = bytearray(recording("DistanceToLaneCenter").read_bytes()[:4096])
    blob[4:8] = b"XXXX"
    (tmp_path / "m.log").write_bytes(bytes(blob))
    _expect_error(tmp_path / "m.log", "magic")


def test_absurd_packet_size(tmp_path):
    blob = bytearray(recording("DistanceToLaneCenter").read_bytes())
    blob[34 + 1 : 34 + 5] = struct.pack("<I", 0xFFFFFF00)
    (tmp_path / "a.log").write_bytes(bytes(blob))
    err = _expect_error(tmp_path / "a.log", "declares")
    assert err.offset == 34 and err.last_frame is None


def test_truncated_mid_file_names_the_last_good_frame(tmp_path):
    blob = recording("DistanceBetweenVehicles").read_bytes()
    (tmp_path / "t.log").write_bytes(blob[: len(blob) // 2])
    err = _expect_error(tmp_path / "t.log")
    assert 400 < err.last_frame < 430
    assert err.offset <= len(blob) // 2


def test_record_count_that_does_not_fill_the_packet(tmp_path):
    with RecorderWriter(tmp_path / "c.log", profile="0.9.13") as w:
        w.begin_frame(1, 0.05, 0.0)
        w.packet(fmt.POSITION, struct.pack("<H", 3) + b"\x00" * 28)
        w.end_frame()
    _expect_error(tmp_path / "c.log", "Position", "3 records")


def test_packet_outside_a_frame(tmp_path):
    with RecorderWriter(tmp_path / "o.log", profile="0.9.13") as w:
        w.records(fmt.POSITION, np.zeros(1, fmt.RECORD_DTYPES[fmt.POSITION]))
    _expect_error(tmp_path / "o.log", "outside a frame")


def test_every_truncation_of_a_small_file_is_clean(tmp_path):
    blob = write_synthetic(tmp_path / "s.log", frames=3, vehicles=1, walkers=1, profile="0.9.16").read_bytes()
    frame_ok = 0
    for cut in range(len(blob)):
        p = tmp_path / "cut.log"
        p.write_bytes(blob[:cut])
        try:
            rec = read_recording(p)
        except RecorderError:
            continue
        frame_ok += 1
        assert rec.frames.num_rows < 3  # only cuts exactly after a FrameEnd parse
    assert frame_ok == 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_flipped_bytes_never_crash_or_hang(tmp_path, data):
    """Fixed budget fuzzing: any mutation reads or fails with RecorderError."""
    base = _fuzz_seed(tmp_path)
    blob = bytearray(base)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    p = tmp_path / "fuzz.log"
    p.write_bytes(bytes(blob))
    try:
        rec = read_recording(p, block_bytes=1 << 16)
    except RecorderError as exc:
        assert exc.offset >= 0
    else:
        assert rec.frames.num_rows <= 4


_SEED: dict = {}


def _fuzz_seed(tmp_path) -> bytes:
    if "blob" not in _SEED:
        _SEED["blob"] = write_synthetic(
            tmp_path / "seed.log", frames=4, vehicles=2, walkers=1, profile="0.9.16"
        ).read_bytes()
    return _SEED["blob"]


def test_reader_streams_in_bounded_blocks(tmp_path):
    path = write_synthetic(tmp_path / "big.log", frames=600, vehicles=30, walkers=10, profile="0.9.15")
    reader = RecorderReader(path, block_bytes=1 << 16)
    sizes = [sum(t.nbytes for t in c.tables.values()) for c in reader.chunks()]
    assert len(sizes) > 10
    assert max(sizes) < 20 * (1 << 16)


def test_mixed_skeletons_and_wheel_counts_take_the_slow_path(tmp_path):
    """Walkers with different bones and vehicles with different wheel counts in one
    packet are decoded record by record, with the same results."""
    with RecorderWriter(tmp_path / "mix.log", profile="0.9.15") as w:
        w.begin_frame(1, 0.05, 0.0)
        w.walker_bones(
            {7: [("a", (1, 2, 3), (0, 0, 0))], 8: [("bb", (4, 5, 6), (0, 0, 90)), ("c", (0, 0, 0), (0, 0, 0))]}
        )
        w.anim_wheels({1: [(0, 1.0, 2.0), (1, 3.0, 4.0)], 2: [(0, 5.0, 6.0), (1, 0, 0), (2, 0, 0), (3, 0, 0)]})
        w.end_frame()
        w.begin_frame(2, -1.0, 0.05)
        w.walker_bones({7: [("a", (1, 2, 3), (0, 0, 0))], 9: [("a", (7, 8, 9), (0, 0, 0))]})
        w.anim_wheels({1: [(0, 1.0, 2.0), (1, 3.0, 4.0)], 3: [(0, 9.0, 9.0), (1, 9.0, 9.0)]})
        w.end_frame()
    rec = read_recording(tmp_path / "mix.log")
    bones = rec.table(fmt.WALKER_BONES).to_pylist()
    assert [(b["frame"], b["id"], b["bone"]) for b in bones] == [
        (0, 7, "a"),
        (0, 8, "bb"),
        (0, 8, "c"),
        (1, 7, "a"),
        (1, 9, "a"),
    ]
    assert bones[1]["x"] == pytest.approx(0.04) and bones[1]["yaw"] == pytest.approx(np.pi / 2)
    wheels = rec.table(fmt.ANIM_VEHICLE_WHEELS).to_pylist()
    assert [(r["frame"], r["id"], r["wheel"]) for r in wheels][:6] == [
        (0, 1, 0),
        (0, 1, 1),
        (0, 2, 0),
        (0, 2, 1),
        (0, 2, 2),
        (0, 2, 3),
    ]
    assert len(wheels) == 10 and wheels[-1]["steer_angle"] == 9.0
