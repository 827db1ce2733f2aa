"""The decoded-frame cache: bit-equal frames, same batches, invalidation, atomic builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import prf
from prf.decode.cache import CachedBackend, FrameCache, dataset_videos
from prf.errors import VideoError
from conftest import REPO, dataset_path

DT = {"observation.images.top": [-0.1, 0.0], "observation.images.left_wrist": [0.0], "action": [0.0, 1 / 30]}


@pytest.fixture(scope="module")
def aloha():
    return prf.open_dataset(dataset_path("aloha_multicam_v30"), delta_timestamps=DT,
                            cameras=["observation.images.top", "observation.images.left_wrist"])


def test_cached_batches_equal_decoded(aloha, tmp_path):
    cached = aloha.with_frame_cache(tmp_path / "c", progress=False)
    assert isinstance(cached.backend, CachedBackend)
    files = list((tmp_path / "c").glob("*.npy"))
    assert len(files) == len(dataset_videos(aloha)) == 4  # 3 files of top + 1 of left_wrist
    idx = np.random.default_rng(0).integers(0, len(aloha), 40)
    a, b = aloha.get_batch(idx), cached.get_batch(idx)
    for k in a:
        if k != "task":
            assert np.array_equal(a[k], b[k]), k
    # through the loader, with workers
    got = list(aloha.loader(16, shuffle=True, seed=1, num_workers=2, cache_dir=tmp_path / "c"))
    ref = list(aloha.loader(16, shuffle=True, seed=1, num_workers=0))
    assert len(got) == len(ref)
    for x, y in zip(got[:10], ref[:10]):
        assert np.array_equal(x["observation.images.top"], y["observation.images.top"])
        assert np.array_equal(x["index"], y["index"])


def test_changed_video_is_recached(tmp_path, copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    ds = prf.open_dataset(root, episodes=[0, 1])
    cache = FrameCache(tmp_path / "c")
    assert len(cache.build(dataset_videos(ds), progress=False)) == 2
    assert cache.build(dataset_videos(ds), progress=False) == []  # warm: nothing to do
    video = dataset_videos(ds)[0]
    old_entry = cache.entry(video)
    st = os.stat(video)
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the source changed
    assert not cache.has(video) and cache.entry(video) != old_entry
    assert [p.name for p in cache.build(dataset_videos(ds), progress=False)] == [cache.entry(video).name]
    removed = cache.clean()
    assert [p.name for p in removed] == [old_entry.name] and not old_entry.exists()


def test_interrupted_build_leaves_no_entry(tmp_path, monkeypatch):
    import av.video.reformatter as rf

    ds = prf.open_dataset(dataset_path("pusht_sim_v30"))
    calls = {"n": 0}
    real = rf.VideoReformatter.reformat

    def boom(self, frame, *a, **k):
        calls["n"] += 1
        if calls["n"] == 500:
            raise KeyboardInterrupt
        return real(self, frame, *a, **k)

    monkeypatch.setattr(rf.VideoReformatter, "reformat", boom)
    cache = FrameCache(tmp_path / "c")
    with pytest.raises(KeyboardInterrupt):
        cache.build(dataset_videos(ds), progress=False)
    assert list((tmp_path / "c").iterdir()) == []


def test_resized_cache(tmp_path):
    ds = prf.open_dataset(dataset_path("so101_wrist_v30"), episodes=[0])
    small = ds.with_frame_cache(tmp_path / "c", size=(90, 160), progress=False)
    b = small.get_batch([0, 5])
    assert b["observation.images.wrist"].shape == (2, 90, 160, 3)
    full = ds.get_batch([0, 5])["observation.images.wrist"].reshape(2, 90, 4, 160, 4, 3).mean(axis=(2, 4))
    assert np.abs(full - b["observation.images.wrist"]).mean() < 2.0  # an area downscale of the same frames


def test_cache_of_a_broken_video_fails_cleanly(tmp_path, copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    ds = prf.open_dataset(root, episodes=[3])
    (root / "videos" / "chunk-000" / "observation.image" / "episode_000003.mp4").write_bytes(b"\0" * 64)
    with pytest.raises(VideoError, match="episode_000003.mp4"):
        FrameCache(tmp_path / "c").build(dataset_videos(ds), progress=False)
    assert not list((tmp_path / "c").glob("*.npy"))


def test_cli_cache_build(tmp_path):
    r = subprocess.run([sys.executable, "-m", "prf.cli", "cache", "build", str(dataset_path("pusht_sim_v30")),
                        "--cache-dir", str(tmp_path / "c"), "--json"], capture_output=True, text=True, cwd=REPO,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["videos"] == 1 and len(d["built"]) == 1 and os.path.isfile(d["entries"][0])
    assert np.load(d["entries"][0], mmap_mode="r").shape == (3850, 96, 96, 3)


def test_cached_dataset_in_torch_dataloader_workers(tmp_path):
    """A cached dataset pickles into process workers (forkserver here) and serves the same frames."""
    torch = pytest.importorskip("torch")
    import prf.torch as pt

    ds = prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[2]).with_frame_cache(tmp_path / "c", progress=False)
    dl = torch.utils.data.DataLoader(pt.Dataset(ds), batch_size=50, num_workers=2)
    got = torch.cat([b["observation.image"] for b in dl]).numpy()
    assert np.array_equal(got, ds.get_batch(np.arange(len(ds)))["observation.image"])
