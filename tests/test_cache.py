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


# ---- verifiable entries: completed-entry manifests and content fingerprints (issue 11, item 4) -------
def _batch_equal(a, b):
    return all(np.array_equal(a[k], b[k]) for k in a if k != "task")


def test_entry_without_manifest_is_never_read(tmp_path):
    """An entry whose build did not complete (the .npy there, its manifest not) is treated as missing:
    frames come from the video, never from the entry."""
    ds = prf.open_dataset(dataset_path("pusht_sim_v21"), episodes=[0])
    cache = FrameCache(tmp_path / "c")
    (entry,) = cache.build(dataset_videos(ds), progress=False)
    video = dataset_videos(ds)[0]
    assert cache.has(video) and cache.manifest_path(video).is_file()
    with open(entry, "r+b") as f:  # the frames never written: zeros after the header
        f.seek(128)
        f.write(b"\0" * (entry.stat().st_size - 128))
    cache.manifest_path(video).unlink()
    fresh = FrameCache(tmp_path / "c")
    assert not fresh.has(video) and fresh.read(video, np.array([0])) is None
    idx = np.arange(0, len(ds), 7)
    cached = ds.with_frame_cache(tmp_path / "c", build=False)
    assert _batch_equal(cached.get_batch(idx), ds.get_batch(idx))
    assert cached.get_batch(idx)["observation.image"].any()
    # rebuilt on the next build
    assert [p.name for p in fresh.build(dataset_videos(ds), progress=False)] == [entry.name]
    assert fresh.has(video) and _batch_equal(ds.with_frame_cache(tmp_path / "c", build=False).get_batch(idx),
                                             ds.get_batch(idx))


def test_truncated_entry_is_treated_as_missing(tmp_path):
    ds = prf.open_dataset(dataset_path("pusht_sim_v21"), episodes=[1])
    cache = FrameCache(tmp_path / "c")
    (entry,) = cache.build(dataset_videos(ds), progress=False)
    with open(entry, "r+b") as f:
        f.truncate(entry.stat().st_size // 2)
    fresh = FrameCache(tmp_path / "c")
    assert not fresh.has(dataset_videos(ds)[0])
    idx = np.arange(len(ds))
    assert _batch_equal(ds.with_frame_cache(tmp_path / "c", build=False).get_batch(idx), ds.get_batch(idx))


def test_killed_build_leaves_no_readable_entry(tmp_path):
    """`prf cache build` killed after writing an entry's frames, before its manifest (SIGKILL-like exit)."""
    root = dataset_path("pusht_sim_v21")
    code = ("import os, sys, prf.decode.cache as c; c._write_manifest = lambda *a: os._exit(9); "
            "from prf.cli import main; sys.exit(main(['cache', 'build', sys.argv[1], '--cache-dir', sys.argv[2], "
            "'--json']))")
    # one episode only, through the Python API in the child (the CLI caches the whole dataset)
    code = ("import os, sys, prf, prf.decode.cache as c; c._write_manifest = lambda *a: os._exit(9); "
            "ds = prf.open_dataset(sys.argv[1], episodes=[2]); "
            "c.FrameCache(sys.argv[2]).build(c.dataset_videos(ds), progress=False)")
    r = subprocess.run([sys.executable, "-c", code, str(root), str(tmp_path / "c")], capture_output=True, text=True,
                       cwd=REPO, timeout=300)
    assert r.returncode == 9, r.stderr
    ds = prf.open_dataset(root, episodes=[2])
    video = dataset_videos(ds)[0]
    cache = FrameCache(tmp_path / "c")
    assert cache.entry(video).is_file() and not cache.has(video)
    idx = np.arange(0, len(ds), 3)
    assert _batch_equal(ds.with_frame_cache(tmp_path / "c", build=False).get_batch(idx), ds.get_batch(idx))
    assert cache.clean() == [cache.entry(video)] and not cache.entry(video).exists()


def _raw_video(path, value, n=6):
    """An uncompressed video (its size depends only on frame count and shape): frame i is value + i."""
    import av
    from fractions import Fraction

    with av.open(str(path), "w", format="nut") as c:
        s = c.add_stream("rawvideo", rate=30)
        s.width, s.height, s.pix_fmt = 32, 24, "rgb24"
        for i in range(n):
            vf = av.VideoFrame.from_ndarray(np.full((24, 32, 3), value + i, np.uint8), format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 30)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_video_changed_in_place_with_size_and_mtime_restored_is_recached(tmp_path):
    video = tmp_path / "cam.nut"
    _raw_video(video, 10)
    st = os.stat(video)
    cache = FrameCache(tmp_path / "c")
    backend = CachedBackend(prf.PyAVBackend(), cache)
    assert len(cache.build([video], progress=False)) == 1
    assert backend.decode_frames(video, [0, 5])[:, 0, 0, 0].tolist() == [10, 15]
    old_entry = cache.entry(video)
    _raw_video(video, 100)  # new content, same size ...
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the old mtime
    assert os.stat(video).st_size == st.st_size and cache.entry(video) == old_entry  # the entry's key matches
    assert not cache.has(video)  # the fingerprint does not
    assert backend.decode_frames(video, [0, 5])[:, 0, 0, 0].tolist() == [100, 105]  # not served stale
    assert [p.name for p in cache.build([video], progress=False)] == [old_entry.name]  # re-cached
    assert cache.has(video) and isinstance(backend.decode_frames_list(video, np.array([1])), prf.decode.cache.CachedFrames)
    assert backend.decode_frames(video, [0, 5])[:, 0, 0, 0].tolist() == [100, 105]


# ---- bounded memory: entries in RAM (LRU by bytes), open entry files (LRU by count) --------------------
def test_entries_in_ram_are_an_lru_by_bytes(tmp_path):
    a, b = tmp_path / "a.nut", tmp_path / "b.nut"
    _raw_video(a, 10)
    _raw_video(b, 50)
    FrameCache(tmp_path / "c").build([a, b], progress=False)
    one = 6 * 24 * 32 * 3
    cache = FrameCache(tmp_path / "c", in_memory_bytes=one)
    backend = CachedBackend(prf.PyAVBackend(), cache)
    assert backend.decode_frames(a, [1])[0, 0, 0, 0] == 11
    assert cache.stats() == {"cache_ram_entries": 1, "cache_ram_bytes": one, "cache_open_files": 0}
    assert backend.decode_frames(b, [2])[0, 0, 0, 0] == 52  # b in RAM, a evicted
    assert cache.stats() == {"cache_ram_entries": 1, "cache_ram_bytes": one, "cache_open_files": 0}
    src = cache.read(a, np.array([3]))
    assert src.loaded is None and src[0][0, 0, 0] == 13  # a evicted once: read from its file, not reloaded
    assert cache.stats() == {"cache_ram_entries": 1, "cache_ram_bytes": one, "cache_open_files": 1}
    assert cache.read(b, np.array([0])).loaded is not None
    backend.close()
    assert cache.stats() == {"cache_ram_entries": 0, "cache_ram_bytes": 0, "cache_open_files": 0}
    assert src[0][0, 0, 0] == 13  # a batch in flight keeps reading after close()


def test_open_entry_files_are_bounded(tmp_path):
    videos = [tmp_path / f"{i}.nut" for i in range(4)]
    for i, v in enumerate(videos):
        _raw_video(v, 10 * i)
    FrameCache(tmp_path / "c").build(videos, progress=False)
    cache = FrameCache(tmp_path / "c", in_memory_bytes=0, max_open_files=2)
    first = cache.read(videos[0], np.array([1]))
    for v in videos[1:]:
        cache.read(v, np.array([0]))
    assert cache.stats()["cache_open_files"] == 2
    assert first[0][0, 0, 0] == 1  # its file was evicted from the LRU but stays open while it is read
    fd = first._file.fd
    del first
    with pytest.raises(OSError):
        os.fstat(fd)  # closed once nothing reads from it


def test_cli_cache_clean_also_cleans_stored_indexes(tmp_path):
    video = tmp_path / "v.nut"
    _raw_video(video, 0)
    env = {**os.environ, "PRF_INDEX_CACHE": str(tmp_path / "idx")}
    code = "import sys, prf.decode as d; d.get_index(sys.argv[1])"
    assert subprocess.run([sys.executable, "-c", code, str(video)], env=env, cwd=REPO, timeout=120).returncode == 0
    assert len(list((tmp_path / "idx").glob("*.idx"))) == 1
    video.unlink()
    r = subprocess.run([sys.executable, "-m", "prf.cli", "cache", "clean", "--cache-dir", str(tmp_path / "c"), "--json"],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["removed_indexes"]) == 1 and not list((tmp_path / "idx").glob("*.idx"))
