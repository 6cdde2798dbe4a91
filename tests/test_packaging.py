"""One import name, imports that flow one way, and a wheel that holds only ``roadworthy``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import roadworthy

ROOT = Path(__file__).resolve().parents[1]
#: Folder of each installed package root, in the order data flows.
LAYERS = {"data": "data", "density": "density", "evaluator": "evaluator", "dashboards": "dashboards"}
ORDER = ["data", "density", "evaluator", "dashboards", "api"]  # api: roadworthy.api, .results, .cli


def _layer_of_module(name: str) -> str | None:
    parts = name.split(".")
    if parts[0] != "roadworthy" or len(parts) == 1:
        return None
    if parts[1] in LAYERS:
        return parts[1]
    if parts[1] in ("api", "results", "cli"):
        return "api"
    return None  # roadworthy._version: usable by every layer


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module imported anywhere in a file (functions included), absolute names."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "roadworthy"]
    return out


def _sources(folder: str):
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("layer", list(LAYERS))
def test_imports_flow_one_way(layer):
    allowed = set(ORDER[: ORDER.index(layer) + 1])
    bad = []
    for path in _sources(LAYERS[layer]):
        for line, mod in _imports(path):
            target = _layer_of_module(mod)
            if mod == "roadworthy" or (target is not None and target not in allowed):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "imports against the flow data -> density -> evaluator -> dashboards -> api:\n" + "\n".join(bad)


def test_no_bare_layer_imports_anywhere():
    # Inside the checkout `import data` would work (the folder is on sys.path) and then
    # fail for every user of the wheel: only `roadworthy.<layer>` is installed.
    folders = [*LAYERS.values(), "roadworthy", "tests", "benchmarks"]
    bad = []
    for folder in folders:
        for path in _sources(folder):
            if ".work" in path.parts or ".peer-venv" in path.parts:
                continue
            for line, mod in _imports(path):
                if mod.split(".")[0] in LAYERS:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_every_package_folder_is_installed_under_roadworthy():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = cfg["package-dir"]
    found = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    assert found == set(cfg["packages"]), "list every package folder in pyproject.toml [tool.setuptools].packages"
    assert all(p == "roadworthy" or p.startswith("roadworthy.") for p in cfg["packages"])


def test_version_is_defined_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "roadworthy._version.__version__"}
    out = subprocess.run(
        [sys.executable, "-m", "roadworthy.cli", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.stdout.strip() == f"roadworthy {roadworthy.__version__}"


def test_public_api_is_lazy_and_complete():
    code = (
        "import sys, roadworthy\n"
        "assert 'roadworthy.api' not in sys.modules and 'torch' not in sys.modules\n"
        "names = [n for n in roadworthy.API if callable(getattr(roadworthy, n))]\n"
        "print(','.join(names))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().split(",") == list(roadworthy.API)
    with pytest.raises(AttributeError):
        _ = roadworthy.not_an_api_function


#: Modules that do numpy work only: importing them must not load torch (issue 21).
TORCH_FREE = (
    "roadworthy.evaluator.policy_view",
    "roadworthy.evaluator.bootstrap",
    "roadworthy.evaluator.settings",
    "roadworthy.evaluator.coverage",
    "roadworthy.evaluator.importance",
    "roadworthy.evaluator.policy_entry",
    "roadworthy.evaluator.logdata",
    "roadworthy.evaluator.world",
    "roadworthy.evaluator.model_rollout",
    "roadworthy.evaluator.evaluate_config",
    "roadworthy.evaluator.gate_config",
    "roadworthy.evaluator.gate",
    "roadworthy.evaluator.report",
    "roadworthy.results",
)


@pytest.mark.parametrize("module", TORCH_FREE)
def test_numpy_only_modules_do_not_import_torch(module):
    code = f"import sys, {module}\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", f"importing {module} loads torch"


@pytest.mark.slow
def test_wheel_holds_one_package_and_installs_alone(tmp_path):
    """`python -m build` on a clean copy of the checkout; the wheel in a fresh venv."""
    src = tmp_path / "src"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], capture_output=True, text=True, cwd=ROOT)
    if files.returncode != 0:
        pytest.skip("not a git checkout")
    for rel in files.stdout.split():
        if (ROOT / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((ROOT / rel).read_bytes())
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--sdist", "--outdir", str(dist), str(src)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if ".dist-info" not in n.split("/")[0]}
    assert tops == {"roadworthy"}
    assert not [n for n in names if "/tests/" in n or "benchmarks" in n]
    assert "roadworthy/data/sim/example_policies/autopilot-clone.onnx" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # Dependencies from this environment (a .pth adds its site-packages), roadworthy from the wheel.
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    # Every import folder of this interpreter but the checkout itself (where `data` would be found).
    deps = [q for q in sys.path if q and Path(q).is_dir() and Path(q).resolve() != ROOT]
    Path(site, "deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    code = (
        "import importlib.util, roadworthy\n"
        f"assert roadworthy.__file__.startswith({site!r}), roadworthy.__file__\n"
        "assert all(callable(getattr(roadworthy, n)) for n in roadworthy.API)\n"
        "print([importlib.util.find_spec(n) for n in ('data', 'density', 'evaluator', 'dashboards')])\n"
    )
    out = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=tmp_path, env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[None, None, None, None]"
    cli = subprocess.run([venv / "bin" / "roadworthy", "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert cli.stdout.strip() == f"roadworthy {roadworthy.__version__}"
