"""Hub repo ids: ``prf.open_dataset("owner/name")`` downloads ``meta/`` first, then only the files of
the selected episodes and cameras, from the commit the first step resolved.

No network here: ``huggingface_hub.snapshot_download`` is replaced by a fake Hub that serves a local
dataset from ../shared/data and filters files with huggingface_hub's own pattern matcher
(``filter_repo_objects``, what ``snapshot_download`` uses for ``allow_patterns``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import prf

hub = pytest.importorskip("huggingface_hub")
from huggingface_hub.utils import filter_repo_objects  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lerobot"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """``snapshot_download`` over local folders: ``repos[repo_id]`` is served at commit ``COMMIT``."""

    def __init__(self, cache: Path, repos: dict[str, Path]):
        self.cache, self.repos, self.calls = cache, repos, []

    def __call__(self, repo_id, *, repo_type=None, revision=None, allow_patterns=None, **kwargs):
        self.calls.append({"repo_id": repo_id, "repo_type": repo_type, "revision": revision,
                           "allow_patterns": list(allow_patterns or [])})
        assert repo_type == "dataset"
        assert revision in (None, "main", COMMIT)
        src = self.repos[repo_id]
        snap = self.cache / repo_id.replace("/", "--") / "snapshots" / COMMIT
        names = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
        for name in filter_repo_objects(names, allow_patterns=allow_patterns):
            (snap / name).parent.mkdir(parents=True, exist_ok=True)
            if not (snap / name).exists():
                shutil.copyfile(src / name, snap / name)
        snap.mkdir(parents=True, exist_ok=True)
        return str(snap)

    def downloaded(self, repo_id: str) -> set[str]:
        snap = self.cache / repo_id.replace("/", "--") / "snapshots" / COMMIT
        return {p.relative_to(snap).as_posix() for p in snap.rglob("*") if p.is_file()}


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    fake = FakeHub(tmp_path / "hub", {
        "lerobot/so101": DATA / "so101_wrist_v30",
        "lerobot/aloha": DATA / "aloha_multicam_v30",
        "lerobot/pusht_v21": DATA / "pusht_sim_v21",
    })
    monkeypatch.setattr(hub, "snapshot_download", fake)
    return fake


def _assert_same_sample(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert a[k] == b[k], k


def test_repo_id_downloads_meta_then_only_the_selected_episode_files(fake_hub):
    local = prf.open_dataset(DATA / "pusht_sim_v21", episodes=[3, 7])
    ds = prf.open_dataset("lerobot/pusht_v21", episodes=[3, 7])
    assert len(fake_hub.calls) == 2
    assert fake_hub.calls[0]["allow_patterns"] == ["meta/**"] and fake_hub.calls[0]["revision"] is None
    assert fake_hub.calls[1]["revision"] == COMMIT  # the commit the meta step resolved
    got = fake_hub.downloaded("lerobot/pusht_v21")
    data_and_video = {n for n in got if not n.startswith("meta/")}
    expected = {p.relative_to(local.meta.root).as_posix() for e in (3, 7) for p in local.meta.episode_files(e)}
    assert data_and_video == expected and len(expected) == 4  # 2 parquet + 2 mp4, nothing else
    assert len(ds) == len(local)
    for i in (0, len(ds) // 2, len(ds) - 1):
        _assert_same_sample(ds[i], local[i])


def test_repo_id_cameras_limit_the_video_download(fake_hub):
    ds = prf.open_dataset("lerobot/aloha", episodes=[0], cameras=["observation.images.top"])
    videos = {n for n in fake_hub.downloaded("lerobot/aloha") if n.startswith("videos/")}
    assert videos and all("observation.images.top/" in n for n in videos)
    assert ds[0]["observation.images.top"].dtype == np.uint8
    assert "observation.images.angle" not in ds[0]


def test_repo_id_all_episodes_by_default_and_equal_to_local(fake_hub):
    local = prf.open_dataset(DATA / "so101_wrist_v30")
    ds = prf.open_dataset("lerobot/so101")
    source = {p.relative_to(local.meta.root).as_posix() for p in local.meta.root.rglob("*")
              if p.is_file() and p.relative_to(local.meta.root).parts[0] in ("meta", "data", "videos")}
    assert fake_hub.downloaded("lerobot/so101") == source
    _assert_same_sample(ds[len(ds) - 1], local[len(local) - 1])


def test_repo_id_without_huggingface_hub_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ImportError, match=r"prf\[hub\]"):
        prf.open_dataset("lerobot/not_here")


def test_not_a_folder_nor_a_repo_id_is_a_clear_error(tmp_path):
    with pytest.raises(prf.errors.MetadataError, match="no such dataset folder"):
        prf.open_dataset(tmp_path / "nope" / "deeper")
