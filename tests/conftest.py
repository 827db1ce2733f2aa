"""Shared fixtures: the real datasets in ../shared/data (never copied into the repo) and helpers that
generate odd or broken datasets inside a test's temporary folder."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest

# JAX and TensorFlow (imported at collection by test_jax/test_keras) run threads, and a process forked
# from one that has them can deadlock or crash (JAX warns so): one such worker crash was seen in a full
# run. Process-based workers in these tests (torch DataLoader) start from a fresh forkserver instead;
# prf's own workers are threads and are unaffected. tests/test_decode.py still forks on purpose.
multiprocessing.set_start_method("forkserver", force=True)
multiprocessing.set_forkserver_preload(["torch", "prf", "prf.torch"])

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
LEROBOT = SHARED_DATA / "lerobot"
DATASETS = ["so101_wrist_v30", "g1_cam_high_v21_subset", "rebot_novideo_v30", "pusht_sim_v30", "pusht_sim_v21",
            "aloha_multicam_v30"]
ORACLE_DATASETS = [d for d in DATASETS if d != "rebot_novideo_v30"]
CAMERA_DATASETS = ORACLE_DATASETS


def dataset_path(name: str) -> Path:
    p = LEROBOT / name
    if not (p / "meta" / "info.json").is_file():
        pytest.fail(f"test data {p} is missing: ../shared/data must sit beside the repo")
    return p


def present_episodes(name: str) -> list[int] | None:
    """The episodes to open for a dataset (the v2.1 subset is a partial download)."""
    return [1, 2] if name == "g1_cam_high_v21_subset" else None


@pytest.fixture
def copy_dataset(tmp_path):
    """Copy a shared dataset into tmp_path (to break it); returns the copy's root."""

    def _copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(dataset_path(name), dst)
        for p in dst.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        dst.chmod(0o755)
        return dst

    return _copy


def edit_info(root: Path, **changes) -> None:
    p = root / "meta" / "info.json"
    info = json.loads(p.read_text())
    info.update(changes)
    p.write_text(json.dumps(info))


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory):
    """``module_tmp(name)``: a new folder for a module-scoped fixture, removed when the module's tests end
    (tmp_path_factory's folders would otherwise stay until the session ends: CI's disk is not large)."""
    made: list[Path] = []

    def _mk(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield _mk
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A small synthetic v3.0 dataset written by prf's writer (12 episodes x 50 frames, one camera)."""
    from prf._demo_data import make_demo_dataset

    root = tmp_path_factory.mktemp("demo") / "reacher"
    make_demo_dataset(root, progress=False)
    return root


def uint8_frames(n: int, h: int = 32, w: int = 48, seed: int = 0) -> np.ndarray:
    """Smooth, distinct frames (lossy codecs keep them close)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        base = rng.uniform(0, 1, 3)
        for c in range(3):
            out[i, :, :, c] = (127 + 100 * np.sin(xx / w * 6.28 * (c + 1) * base[c] + i * 0.3) * np.cos(yy / h * 3.14)).astype(np.uint8)
    return out


def _disk_free(path: Path) -> str:
    return f"{shutil.disk_usage(path).free / 2**30:.1f} GiB free"


def pytest_report_header(config):
    tmp = Path(__import__("tempfile").gettempdir())
    return [f"disk: {_disk_free(tmp)} at {tmp}, {_disk_free(Path.home())} at {Path.home()}"]


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"disk at the end: {_disk_free(Path(__import__('tempfile').gettempdir()))}")
