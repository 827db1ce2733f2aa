"""Adapters as plugins: the entry-point groups ``prf.adapters`` / ``prf.commands``, ``ds.loader(output=)``,
the missing-plugin errors, the packaging of the bundled ``prf`` and of the standalone adapter
distributions (``adapters/<fw>/pyproject.toml``), and, in a fresh virtualenv, a core-only ``prf`` plus
``pip install ./adapters/mlx`` giving ``prf.mlx`` and ``ds.loader(output="mlx")``."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
import zipfile
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pytest

import prf
from prf import _plugins
from prf.errors import PluginError, PrfError

from conftest import REPO, dataset_path

ADAPTERS = ["torch", "mlx", "jax", "keras"]
ARRAY_TYPE = {"torch": "Tensor", "mlx": "array", "jax": "ArrayImpl", "keras": "EagerTensor"}


def _need(module: str) -> None:
    """Skip without ``module``, but fail under CI (CI installs every framework: a skip would hide a gap)."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not importable under CI: {e}")
        pytest.skip(f"{module} not installed")


@pytest.fixture(scope="module")
def pusht():
    return prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[0, 3], cameras=[],
                            delta_timestamps={"action": [0.0, 0.1]})


# ---- lookup and ds.loader(output=) -------------------------------------------------------------------
def test_installed_adapters_are_registered():
    assert set(ADAPTERS) <= set(_plugins.adapter_names())


@pytest.mark.parametrize("output", ADAPTERS)
def test_loader_output_gives_framework_batches_equal_to_numpy(pusht, output):
    _need({"torch": "torch", "mlx": "mlx.core", "jax": "jax", "keras": "keras"}[output])
    ref = pusht.loader(8, shuffle=True, seed=3)
    got = pusht.loader(8, shuffle=True, seed=3, output=output)
    assert len(got) == len(ref)
    ref_batches, got_batches = list(ref), list(got)
    assert len(got_batches) == len(ref_batches) == len(ref)
    for a, b in zip(ref_batches, got_batches):
        assert type(b["action"]).__name__ == ARRAY_TYPE[output]
        assert b["task"] == a["task"]
        for k in ("action", "action_is_pad", "observation.state", "index"):
            v = np.asarray(b[k])
            assert v.shape == a[k].shape
            assert np.array_equal(v, a[k]), k
    assert got.epoch == ref.epoch == 1 and got.state_dict() == ref.state_dict()


def test_numpy_output_is_the_loader_itself(pusht):
    assert type(pusht.loader(4, output="numpy")) is prf.Loader
    assert type(pusht.loader(4, output=None)) is prf.Loader
    with pytest.raises(TypeError, match="output must be a str"):
        pusht.loader(4, output=3)


def _fake_entry_points(monkeypatch, *eps: EntryPoint) -> None:
    monkeypatch.setattr(_plugins, "entry_points", lambda group: [e for e in eps if e.group == group])


def test_missing_adapter_names_the_package_to_install(pusht, monkeypatch):
    _fake_entry_points(monkeypatch)
    with pytest.raises(PluginError) as e:
        pusht.loader(4, output="mlx")
    msg = str(e.value)
    assert "'mlx' is not installed" in msg and "prf[mlx]" in msg and "prf-mlx" in msg and "installed: none" in msg
    assert isinstance(e.value, PrfError) and isinstance(e.value, ImportError)


def test_adapter_whose_framework_is_missing_names_the_package(pusht, monkeypatch):
    # an entry point whose module cannot be imported: a stale registration, or the framework missing
    _fake_entry_points(monkeypatch, EntryPoint("jax", "prf_no_such_module_xyz", _plugins.ADAPTERS))
    with pytest.raises(PluginError, match=r"adapter 'jax' \(prf_no_such_module_xyz\) cannot be imported.*prf\[jax\]"):
        pusht.loader(4, output="jax")


def test_adapter_without_the_protocol_is_an_error(pusht, monkeypatch):
    _fake_entry_points(monkeypatch, EntryPoint("odd", "json", _plugins.ADAPTERS))
    with pytest.raises(PluginError, match=r"does not provide \['convert_batch', 'wrap_loader'\]"):
        pusht.loader(4, output="odd")


def test_duplicate_registrations_use_the_first(monkeypatch):
    _fake_entry_points(monkeypatch, EntryPoint("torch", "prf.torch", _plugins.ADAPTERS),
                       EntryPoint("torch", "prf_other", _plugins.ADAPTERS))
    assert _plugins.adapter_names() == ["torch"]
    assert _plugins._entry_points(_plugins.ADAPTERS)["torch"].value == "prf.torch"


def test_demo_command_is_a_plugin(monkeypatch):
    _need("torch")
    from prf.torch.demo import run_demo

    assert _plugins.load_command("demo") is run_demo
    _fake_entry_points(monkeypatch)
    with pytest.raises(PluginError, match=r"command 'demo' is not installed.*prf\[torch\]"):
        _plugins.load_command("demo")


def test_as_dataset_is_the_one_rule_for_sources(pusht):
    assert prf.as_dataset(pusht) is pusht
    with pytest.raises(TypeError, match="only accepted with a path"):
        prf.as_dataset(pusht, episodes=[0])
    opened = prf.as_dataset(dataset_path("pusht_sim_v30"), episodes=[1], cameras=[])
    assert opened.episodes == [1]


# ---- packaging metadata --------------------------------------------------------------------------------
def _setup_entry_points() -> dict[str, dict[str, str]]:
    ns: dict = {}
    src = (REPO / "setup.py").read_text()
    exec(compile(src.replace("setup(", "_unused_setup = dict(", 1), "setup.py", "exec"), ns)  # no build
    return {g: dict(line.replace(" ", "").split("=", 1) for line in lines) for g, lines in ns["ENTRY_POINTS"].items()}


@pytest.mark.parametrize("fw", ADAPTERS)
def test_standalone_distribution_metadata_matches_the_bundled_one(fw):
    meta = tomllib.loads((REPO / "adapters" / fw / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == f"prf-{fw}"
    assert project["version"] == prf.__version__
    assert any(d.startswith("prf>=") for d in project["dependencies"])
    assert meta["tool"]["setuptools"] == {"package-dir": {f"prf.{fw}": "."}, "packages": [f"prf.{fw}"]}
    bundled = _setup_entry_points()
    assert project["entry-points"]["prf.adapters"] == {fw: bundled["prf.adapters"][fw]}
    for name, value in project["entry-points"].get("prf.commands", {}).items():
        assert bundled["prf.commands"][name] == value
    # the framework requirements are the monorepo extra's
    root = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert sorted(d for d in project["dependencies"] if not d.startswith("prf")) == sorted(root[fw])


# ---- fresh virtualenv --------------------------------------------------------------------------------
def _source_copy(tmp: Path) -> Path:
    """The files a build reads, copied (an in-tree build writes build/ and *.egg-info)."""
    dst = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    for name in ("core", "adapters"):
        shutil.copytree(REPO / name, dst / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, dst / name)
    return dst


def _fresh_venv(tmp: Path) -> Path:
    """A virtualenv with no prf: plain ``venv`` (no system site packages, no pip), which sees this
    interpreter's site directories through a ``.pth`` for the dependencies (numpy, pyarrow, av, mlx,
    setuptools). Directories named in a ``.pth`` are not site directories, so the ``.pth`` files in
    them (the editable installs of prf) are not run there: ``import prf`` finds only what is
    installed into the venv."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    dirs = [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages")) and Path(p).is_dir()]
    (Path(purelib) / "_outer_site.pth").write_text("\n".join(dirs) + "\n")
    return py


def _pip_install(py: Path, target: Path, **env: str) -> None:
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                        "--no-build-isolation", "--ignore-installed", str(target)],
                       capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert r.returncode == 0, r.stdout + r.stderr


def _run(py: Path, code: str, cwd: Path) -> str:
    r = subprocess.run([str(py), "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


@pytest.mark.slow
def test_fresh_venv_core_only_prf_then_pip_install_adapters_mlx(tmp_path):
    """The issue's check: in a fresh virtualenv with prf installed, ``pip install ./adapters/mlx``
    gives ``prf.mlx`` and ``ds.loader(output="mlx")`` works on pusht_sim_v30. The prf installed first
    is the core-only build, so prf.mlx can only come from the prf-mlx distribution."""
    _need("mlx.core")
    t0 = time.perf_counter()
    src = _source_copy(tmp_path)
    py = _fresh_venv(tmp_path)
    _pip_install(py, src, PRF_CORE_ONLY="1")
    t_core = time.perf_counter() - t0
    venv = str(tmp_path / "venv")
    root = dataset_path("pusht_sim_v30")
    out = _run(py, f"""
        import importlib.metadata as md, prf
        assert prf.__file__.startswith({venv!r}), prf.__file__
        assert not list(md.entry_points(group="prf.adapters"))
        try:
            import prf.mlx
        except ModuleNotFoundError as e:
            print("no prf.mlx:", e.name)
        ds = prf.open_dataset({str(root)!r}, episodes=[0])
        try:
            ds.loader(4, output="mlx")
        except prf.errors.PluginError as e:
            print("PluginError:", e)
    """, cwd=tmp_path)
    assert "no prf.mlx: prf.mlx" in out
    assert "PluginError: adapter 'mlx' is not installed" in out and "prf-mlx" in out

    t1 = time.perf_counter()
    _pip_install(py, src / "adapters" / "mlx")
    t_mlx = time.perf_counter() - t1
    out = _run(py, f"""
        import importlib.metadata as md, numpy as np, prf, prf.mlx
        import mlx.core as mx
        assert prf.__file__.startswith({venv!r}) and prf.mlx.__file__.startswith({venv!r}), prf.mlx.__file__
        owner = [str(f) for f in md.distribution("prf-mlx").files if str(f).startswith("prf/") and str(f).endswith(".py")]
        assert owner == ["prf/mlx/__init__.py"], owner          # prf-mlx ships prf/mlx/ only
        assert "prf/__init__.py" in [str(f) for f in md.distribution("prf").files]
        assert [e.name for e in md.entry_points(group="prf.adapters")] == ["mlx"]
        ds = prf.open_dataset({str(root)!r}, episodes=[0, 1], delta_timestamps={{"action": [0.0, 0.1]}})
        ref = list(ds.loader(16, shuffle=True, seed=2))
        got = list(ds.loader(16, shuffle=True, seed=2, output="mlx"))
        assert len(got) == len(ref) > 1
        for a, b in zip(ref, got):
            assert isinstance(b["observation.image"], mx.array) and b["observation.image"].dtype == mx.uint8
            for k in ("observation.image", "action", "action_is_pad", "index"):
                assert np.array_equal(np.array(b[k]), a[k]), k
        try:
            import prf.torch
        except ModuleNotFoundError:
            print("only mlx")
        print("ok", len(got), tuple(got[0]["observation.image"].shape))
    """, cwd=tmp_path)
    assert "only mlx" in out and "ok" in out and "(16, 96, 96, 3)" in out
    print(f"fresh venv: core-only prf installed in {t_core:.1f} s, prf-mlx in {t_mlx:.1f} s")


def _wheel(src: Path, out: Path, **env: str) -> zipfile.ZipFile:
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(out), str(src)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, **env})
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob("prf-*.whl")
    return zipfile.ZipFile(whl)


def _entry_points_txt(whl: zipfile.ZipFile) -> str:
    (name,) = [n for n in whl.namelist() if n.endswith(".dist-info/entry_points.txt")]
    return whl.read(name).decode()


@pytest.mark.slow
def test_bundled_and_core_only_wheels(tmp_path):
    """``pip install "prf[mlx]"`` installs the bundled wheel (all four adapters, registered); the
    ``PRF_CORE_ONLY=1`` wheel has no adapter module and registers none, even after a bundled build in
    the same tree."""
    src = _source_copy(tmp_path)
    bundled = _wheel(src, tmp_path / "bundled")
    names = set(bundled.namelist())
    for fw in ADAPTERS:
        assert f"prf/{fw}/__init__.py" in names
    assert {"prf/jax/_order.py", "prf/torch/demo.py", "prf/_plugins.py", "prf/_version.py"} <= names
    eps = _entry_points_txt(bundled)
    assert "[prf.adapters]" in eps and "mlx = prf.mlx" in eps and "demo = prf.torch.demo:run_demo" in eps
    assert "prf = prf.cli:main" in eps
    core = _wheel(src, tmp_path / "core", PRF_CORE_ONLY="1")
    names = set(core.namelist())
    assert not [n for n in names if n.split("/")[:2] in [["prf", fw] for fw in ADAPTERS]]
    assert "prf/__init__.py" in names and "prf/loading/loader.py" in names
    eps = _entry_points_txt(core)
    assert "prf.adapters" not in eps and "prf.commands" not in eps and "prf = prf.cli:main" in eps
