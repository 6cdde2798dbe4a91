"""Policy files: ONNX only, metadata checked, nothing executed or read from outside."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from roadworthy.data.errors import PolicyError
from roadworthy.data.policy import OnnxPolicy

OBS = ["a", "b", "c"]
ACT = ["u", "v"]


def linear_model(outputs=("action",), meta=True, domain="", obs=OBS, act=ACT) -> onnx.ModelProto:
    """obs [B,3] @ W [3,2] -> action (and a constant log_std when Gaussian)."""
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(3, 2) / 10, "W")
    nodes = [helper.make_node("MatMul", ["obs", "W"], [outputs[0]], domain=domain)]
    inits = [w]
    outs = [helper.make_tensor_value_info(outputs[0], TensorProto.FLOAT, ["B", 2])]
    if len(outputs) == 2:
        inits.append(numpy_helper.from_array(np.full((1, 2), -1.0, np.float32), "LS"))
        nodes.append(helper.make_node("Mul", [outputs[0], "Z"], ["zero"]))
        inits.append(numpy_helper.from_array(np.zeros((1, 2), np.float32), "Z"))
        nodes.append(helper.make_node("Add", ["zero", "LS"], [outputs[1]]))
        outs.append(helper.make_tensor_value_info(outputs[1], TensorProto.FLOAT, ["B", 2]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["B", 3])], outs, initializer=inits
    )
    opsets = [helper.make_opsetid("", 17)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    if meta:
        helper.set_model_props(
            model, {"roadworthy": json.dumps({"name": "lin", "obs_names": obs, "action_names": act})}
        )
    return model


def save(model, path):
    onnx.save_model(model, str(path))
    return path


def test_deterministic_policy_runs(tmp_path):
    p = OnnxPolicy.load(save(linear_model(), tmp_path / "p.onnx"), obs_names=OBS, action_names=ACT)
    obs = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(p.act(obs), obs @ (np.arange(6).reshape(3, 2) / 10), rtol=1e-6)
    assert not p.stochastic and p.name == "lin"


def test_gaussian_policy_samples_and_scores(tmp_path):
    p = OnnxPolicy.load(save(linear_model(("mean", "log_std")), tmp_path / "g.onnx"))
    obs = np.zeros((20000, 3), np.float32)
    draws = p.act(obs, rng=np.random.default_rng(0))
    assert draws.std(axis=0) == pytest.approx(np.exp(-1.0), rel=0.03)
    lp = p.log_prob(obs[:1], np.zeros((1, 2)))
    assert lp[0] == pytest.approx(2 * (1.0 - 0.5 * np.log(2 * np.pi)))


def test_names_must_match_the_log(tmp_path):
    path = save(linear_model(obs=["a", "b", "x"]), tmp_path / "p.onnx")
    with pytest.raises(PolicyError, match="entry 2 is 'x' in the policy but 'c' in the log"):
        OnnxPolicy.load(path, obs_names=OBS, action_names=ACT)
    with pytest.raises(PolicyError, match="different actions"):
        OnnxPolicy.load(save(linear_model(), tmp_path / "q.onnx"), action_names=["steer", "accel"])


def test_missing_metadata(tmp_path):
    with pytest.raises(PolicyError, match="no 'roadworthy' metadata"):
        OnnxPolicy.load(save(linear_model(meta=False), tmp_path / "p.onnx"))


def test_wrong_outputs(tmp_path):
    with pytest.raises(PolicyError, match="outputs are"):
        OnnxPolicy.load(save(linear_model(("steering",)), tmp_path / "p.onnx"))


class Boom:
    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("suffix", [".onnx", ".pt2", ".pt"])
def test_pickle_is_never_unpickled(tmp_path, suffix):
    marker = tmp_path / "pwned"
    bomb = Boom()
    bomb.marker = marker
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(pickle.dumps(bomb, protocol=4))
    with pytest.raises(PolicyError, match="pickle"):
        OnnxPolicy.load(path)
    assert not marker.exists()


def test_zip_checkpoint_is_refused_with_export_hint(tmp_path):
    path = tmp_path / "model.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x04K\x01.")
    with pytest.raises(PolicyError, match=r"torch\.onnx\.export"):
        OnnxPolicy.load(path)


def external_data_policy(folder, location: str = "../outside/secret.bin"):
    """A policy file in ``folder/pol/`` whose weights point at ``location`` (external data)."""
    model = linear_model()
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in {"location": location, "offset": "0", "length": "24"}.items():
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    (folder / "pol").mkdir()
    path = folder / "pol" / "p.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_is_refused_and_not_read(tmp_path):
    secret = tmp_path / "outside" / "secret.bin"
    secret.parent.mkdir()
    secret.write_bytes(np.ones(6, np.float32).tobytes())
    path = external_data_policy(tmp_path)
    with pytest.raises(PolicyError, match="external data"):
        OnnxPolicy.load(path)


def test_custom_op_domain_is_refused(tmp_path):
    path = save(linear_model(domain="com.evil.ops"), tmp_path / "p.onnx")
    with pytest.raises(PolicyError, match=r"com\.evil\.ops"):
        OnnxPolicy.load(path)


def test_garbage_and_missing_files(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"\x00\xff" * 100)
    with pytest.raises(PolicyError, match="ONNX"):
        OnnxPolicy.load(bad)
    with pytest.raises(PolicyError, match="no such policy file"):
        OnnxPolicy.load(tmp_path / "missing.onnx")
