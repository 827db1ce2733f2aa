"""Packet indexes: built once, kept in a bounded in-process LRU and persisted on disk (one small file
per video, keyed by path, size, mtime, ctime and inode); a changed file is re-indexed, a corrupt or
truncated store file is ignored and rebuilt (never wrong data)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction

import av
import pytest

from prf.decode import _index
from prf.decode import build_index, clean_index_cache, get_index, index_cache_stats
from conftest import REPO, uint8_frames


def _encode(path, n=12, gop=4, seed=0):
    frames = uint8_frames(n, seed=seed)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = {"g": str(gop)}
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = i, Fraction(1, 30)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh on-disk store in tmp_path and a fresh in-memory LRU; counts build_index calls."""
    d = tmp_path / "index"
    monkeypatch.setattr(_index, "_DIR", d)
    monkeypatch.setattr(_index, "_MEMORY", _index._IndexLRU(100, 2**30))
    calls = []
    real = _index.build_index

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(_index, "build_index", counting)
    return d, calls


def test_index_is_stored_and_read_back_instead_of_demuxing(tmp_path, store):
    d, calls = store
    v = _encode(tmp_path / "a.mp4")
    first = get_index(v)
    assert calls == [str(v)] and len(list(d.glob("*.idx"))) == 1
    assert get_index(v) is first and len(calls) == 1  # in-memory hit
    _index.clear_index_cache()
    again = get_index(v)
    assert len(calls) == 1  # read from the store, not demuxed
    assert again is not first and again.same_as(first) and again.same_as(build_index(v))
    assert again.frame_of(int(first.pts[5])) == 5 and again.num_keyframes == first.num_keyframes


def test_a_second_process_does_not_demux(tmp_path, store):
    d, _ = store
    v = _encode(tmp_path / "a.mp4")
    ref = get_index(v)
    code = ("import json, sys; from prf.decode import get_index, index_cache_stats; i = get_index(sys.argv[1]); "
            "s = index_cache_stats(); print(json.dumps([s['builds'], s['disk_hits'], i.pts.tolist(), "
            "i.keyframe.tolist(), i.gop_start.tolist(), str(i.time_base), i.width, i.height, i.codec]))")
    env = {**os.environ, "PRF_INDEX_CACHE": str(d)}
    out = subprocess.run([sys.executable, "-c", code, str(v)], capture_output=True, text=True, env=env, cwd=REPO,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    builds, hits, pts, key, gop, tb, w, h, codec = json.loads(out.stdout)
    assert (builds, hits) == (0, 1)
    assert pts == ref.pts.tolist() and key == ref.keyframe.tolist() and gop == ref.gop_start.tolist()
    assert (tb, w, h, codec) == (str(ref.time_base), ref.width, ref.height, ref.codec)


def test_changed_file_is_reindexed(tmp_path, store):
    d, calls = store
    v = _encode(tmp_path / "a.mp4", n=12)
    assert get_index(v).num_frames == 12
    _encode(v, n=20, seed=1)  # a new size
    assert get_index(v).num_frames == 20 and len(calls) == 2
    st = os.stat(v)
    os.utime(v, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # mtime only
    _index.clear_index_cache()
    assert get_index(v).num_frames == 20 and len(calls) == 3
    assert len(list(d.glob("*.idx"))) == 1  # one store file per video path, replaced


def test_file_rewritten_with_size_and_mtime_restored_is_reindexed(tmp_path, store):
    _, calls = store
    v = _encode(tmp_path / "a.mp4", n=12, gop=4)
    a = get_index(v)
    st = os.stat(v)
    data = v.read_bytes()
    v.write_bytes(data)  # same bytes, same size; mtime restored below: only ctime tells
    os.utime(v, ns=(st.st_atime_ns, st.st_mtime_ns))
    _index.clear_index_cache()
    b = get_index(v)
    assert len(calls) == 2 and b.same_as(a)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "other_key"])
def test_corrupt_store_file_is_ignored_and_rebuilt(tmp_path, store, damage):
    d, calls = store
    v = _encode(tmp_path / "a.mp4")
    ref = get_index(v)
    f = next(d.glob("*.idx"))
    data = bytearray(f.read_bytes())
    if damage == "truncate":
        data = data[: len(data) - 7]
    elif damage == "flip":
        data[len(data) - 20] ^= 0xFF  # inside the keyframe flags / pts
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "empty":
        data = bytearray()
    else:  # a store file of another video copied over this one's name
        w = _encode(tmp_path / "b.mp4", n=30)
        get_index(w)
        data = bytearray(_index._store_file(d, os.path.abspath(w)).read_bytes())
    f.write_bytes(bytes(data))
    _index.clear_index_cache()
    before = index_cache_stats()["disk_rejected"]
    got = get_index(v)
    assert got.same_as(ref) and calls[-1] == str(v)
    assert index_cache_stats()["disk_rejected"] == before + 1
    _index.clear_index_cache()
    n = len(calls)
    assert get_index(v).same_as(ref) and len(calls) == n  # the rebuilt file is good again


def test_store_can_be_disabled(tmp_path, monkeypatch):
    monkeypatch.setattr(_index, "_DIR", _index._UNSET)
    monkeypatch.setattr(_index, "_MEMORY", _index._IndexLRU(100, 2**30))
    monkeypatch.setenv("PRF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PRF_INDEX_CACHE", "0")
    v = _encode(tmp_path / "a.mp4")
    get_index(v)
    assert not (tmp_path / "cache").exists()
    monkeypatch.delenv("PRF_INDEX_CACHE")
    get_index(v, persist=False)  # in memory already; and no store written either way
    assert not (tmp_path / "cache").exists()
    _index.clear_index_cache()
    get_index(v)  # the default: $PRF_CACHE/index
    assert len(list((tmp_path / "cache" / "index").glob("*.idx"))) == 1


def test_memory_cache_is_bounded_in_count_and_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(_index, "_DIR", None)
    lru = _index._IndexLRU(3, 2**30)
    monkeypatch.setattr(_index, "_MEMORY", lru)
    videos = [_encode(tmp_path / f"{i}.mp4", n=10 + i) for i in range(5)]
    idx = [get_index(v) for v in videos]
    assert len(lru) == 3 and lru.bytes == sum(i.nbytes for i in idx[2:])
    assert get_index(videos[4]) is idx[4] and get_index(videos[0]) is not idx[0]  # LRU: 0 was evicted
    _index.configure_index_cache(max_bytes=idx[4].nbytes + idx[0].nbytes)
    assert len(lru) == 2 and lru.bytes <= idx[4].nbytes + idx[0].nbytes
    assert idx[4].nbytes == 25 * idx[4].num_frames + 1024  # pts, times (float64), keyframe, gop_start


def test_clean_removes_stale_store_files(tmp_path, store):
    d, _ = store
    a, b = _encode(tmp_path / "a.mp4"), _encode(tmp_path / "b.mp4")
    get_index(a), get_index(b)
    (d / ".x.idx.tmp-999999999-1").write_bytes(b"partial")  # left by a killed writer
    b.unlink()
    removed = clean_index_cache(d)
    assert sorted(p.name for p in removed) == sorted([".x.idx.tmp-999999999-1",
                                                      _index._store_file(d, os.path.abspath(b)).name])
    assert [p.name for p in d.iterdir()] == [_index._store_file(d, os.path.abspath(a)).name]
