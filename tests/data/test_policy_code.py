"""Formats that can run code: refused unless --allow-code; crafted files prove nothing runs or is read."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from roadworthy.data.errors import PolicyError
from roadworthy.data.policy_code import load_policy
from tests.data.test_policy import ACT, OBS, Boom, external_data_policy, linear_model

ROOT = Path(__file__).resolve().parents[2]


def bomb(path: Path, marker: Path) -> Path:
    b = Boom()
    b.marker = marker
    path.write_bytes(pickle.dumps(b, protocol=4))
    return path


@pytest.mark.parametrize("suffix", [".onnx", ".pt2", ".pt", ".pth"])
@pytest.mark.parametrize("allow_code", [False, True])
def test_a_pickle_never_runs(tmp_path, suffix, allow_code):
    marker = tmp_path / "pwned"
    path = bomb(tmp_path / f"evil{suffix}", marker)
    with pytest.raises(PolicyError) as e:
        load_policy(path, allow_code=allow_code)
    assert not marker.exists()
    msg = str(e.value)
    assert str(path) in msg
    if suffix in (".pt", ".pth"):
        assert "never loaded, not even with `allow_code`" in msg and "torch.onnx.export" in msg
    elif suffix == ".pt2" and not allow_code:
        assert "refused by default" in msg and "`allow_code`" in msg


def test_external_data_outside_the_folder_is_never_opened(tmp_path):
    """The weights point at a FIFO outside the policy's folder: opening it would block."""
    outside = tmp_path / "outside"
    outside.mkdir()
    os.mkfifo(outside / "secret.bin")
    path = external_data_policy(tmp_path)
    script = textwrap.dedent(
        f"""
        import json, sys
        opened = []
        def hook(ev, args):
            if ev == "open" and "secret" in str(args[0]):
                opened.append(str(args[0]))
        sys.addaudithook(hook)
        from roadworthy.data.policy_code import load_policy
        from roadworthy.data.errors import PolicyError
        try:
            load_policy({str(path)!r}, allow_code=True)
            print(json.dumps({{"error": None, "opened": opened}}))
        except PolicyError as e:
            print(json.dumps({{"error": str(e), "opened": opened}}))
        """
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["error"] and "external data" in out["error"]
    assert out["opened"] == []


def test_torch_export_package_needs_allow_code(tmp_path):
    torch = pytest.importorskip("torch")

    class Lin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.arange(6, dtype=torch.float32).reshape(3, 2) / 10)

        def forward(self, obs):
            return obs @ self.w

    ep = torch.export.export(Lin(), (torch.ones(2, 3),), dynamic_shapes={"obs": {0: torch.export.Dim("batch")}})
    path = tmp_path / "lin.pt2"
    meta = {"name": "lin-pt2", "obs_names": OBS, "action_names": ACT}
    torch.export.save(ep, str(path), extra_files={"roadworthy": json.dumps(meta)})
    with pytest.raises(PolicyError, match="refused by default"):
        load_policy(path, obs_names=OBS, action_names=ACT)
    pol = load_policy(path, obs_names=OBS, action_names=ACT, allow_code=True)
    obs = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(pol.act(obs), obs @ (np.arange(6).reshape(3, 2) / 10), rtol=1e-6)
    assert pol.name == "lin-pt2" and not pol.stochastic
    with pytest.raises(PolicyError, match="entry 0 is 'a' in the policy but 'x' in the log"):
        load_policy(path, obs_names=["x", "b", "c"], allow_code=True)


def test_module_callable_is_not_imported_without_allow_code(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "rw_test_policy_mod.py").write_text(
        textwrap.dedent(
            f"""
            import pathlib
            import numpy as np
            pathlib.Path({str(marker)!r}).touch()

            class Pol:
                name = "py-policy"
                obs_names = {OBS!r}
                action_names = {ACT!r}

                def distribution(self, obs):
                    return np.zeros((len(obs), 2), np.float32), np.full((len(obs), 2), -1.0, np.float32)

            def make():
                return Pol()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PolicyError, match="module:callable policy runs code"):
        load_policy("rw_test_policy_mod:make", obs_names=OBS, action_names=ACT)
    assert not marker.exists() and "rw_test_policy_mod" not in sys.modules
    pol = load_policy("rw_test_policy_mod:make", obs_names=OBS, action_names=ACT, allow_code=True)
    assert marker.exists() and pol.stochastic and pol.name == "py-policy"
    assert pol.act(np.zeros((3, 3), np.float32)).shape == (3, 2)


def test_onnx_still_loads_through_the_same_entry_point(tmp_path):
    import onnx

    path = tmp_path / "p.onnx"
    onnx.save_model(linear_model(), str(path))
    assert load_policy(path, obs_names=OBS, action_names=ACT).name == "lin"
