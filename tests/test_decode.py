"""The PyAV backend: packet index from demuxing, exact frames for AV1, H.264, HEVC and MPEG-4,
random access equal to a sequential decode, per-thread and per-process decoder state."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import av
import numpy as np
import pytest

from prf.decode import PyAVBackend, build_index, get_index
from prf.errors import TimestampError, VideoError
from conftest import dataset_path, uint8_frames

CODECS = {"av1": "libsvtav1", "h264": "libx264", "hevc": "libx265", "mpeg4": "mpeg4"}


def _encode(path, codec, frames, fps=30, gop=5, bframes=False):
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        opts = {"g": str(gop)}
        if codec == "libx265":
            opts["x265-params"] = "log-level=error"
        if bframes and codec == "libx264":
            opts["bf"] = "2"
        s.options = opts
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _sequential(path):
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.mark.parametrize("family", sorted(CODECS))
def test_codecs_decode_exactly(tmp_path, family):
    # at least 64x64: libx265 corrupts the heap on frames smaller than its 64-pixel CTU (glibc abort)
    frames = uint8_frames(40, h=64, w=96)
    path = tmp_path / f"v_{family}.mp4"
    _encode(path, CODECS[family], frames, bframes=family == "h264")
    idx = build_index(path)
    assert idx.num_frames == 40
    assert idx.keyframe[0] and idx.num_keyframes >= 40 // 5
    assert (idx.width, idx.height) == (96, 64)
    seq = _sequential(path)
    # lossy, but close to the source
    assert np.abs(seq.astype(int) - frames.astype(int)).mean() < 25
    be = PyAVBackend()
    rng = np.random.default_rng(0)
    want = rng.integers(0, 40, 25)
    got = be.decode_frames(path, want)
    assert np.array_equal(got, seq[want])  # random access == sequential decode, bit-exact
    # by timestamp: the nearest frame, within tolerance
    times = idx.times[want] + 0.002
    frames_t, pts = be.decode(path, times, tolerance_s=0.004)
    assert np.array_equal(frames_t, seq[want])
    assert np.allclose(pts, idx.times[want])


def test_index_of_real_lerobot_video():
    p = dataset_path("so101_wrist_v30") / "videos" / "observation.images.wrist" / "chunk-000" / "file-000.mp4"
    idx = get_index(p)
    assert idx.num_frames == 1782 and idx.codec in ("libdav1d", "av1")
    keys = np.flatnonzero(idx.keyframe)
    assert np.diff(keys).max() == 2  # LeRobot's GOP of 2 (restarting at each episode's first frame)
    assert 383 in keys  # episode 1 starts at frame 383 of the shard
    assert np.array_equal(idx.gop_start, keys[np.searchsorted(keys, np.arange(1782), side="right") - 1])
    assert np.allclose(np.diff(idx.times), 1 / 30)
    assert get_index(p) is idx  # cached


def test_random_access_equals_sequential_on_real_video():
    p = dataset_path("aloha_multicam_v30") / "videos" / "observation.images.top" / "chunk-000" / "file-001.mp4"
    seq = _sequential(p)
    be = PyAVBackend()
    rng = np.random.default_rng(1)
    for _ in range(3):
        want = rng.integers(0, len(seq), 12)
        assert np.array_equal(be.decode_frames(p, want), seq[want])
    # backwards and repeated requests
    want = np.array([500, 3, 3, 499, 0, 920])
    assert np.array_equal(be.decode_frames(p, want), seq[want])


def test_tolerance_is_checked_against_real_pts(tmp_path):
    path = tmp_path / "v.mp4"
    _encode(path, "libx264", uint8_frames(10))
    be = PyAVBackend()
    with pytest.raises(TimestampError, match="tolerance_s"):
        be.decode(path, np.array([0.5 / 30]), tolerance_s=1e-4)
    with pytest.raises(TimestampError):
        be.decode(path, np.array([5.0]), tolerance_s=1e-4)  # past the end
    frames, pts = be.decode(path, np.array([3 / 30 + 5e-5]), tolerance_s=1e-4)
    assert frames.shape == (1, 32, 48, 3) and pts[0] == pytest.approx(0.1)


def test_threads_decode_independently():
    p = dataset_path("pusht_sim_v30") / "videos" / "observation.image" / "chunk-000" / "file-000.mp4"
    seq = _sequential(p)
    be = PyAVBackend()
    rng = np.random.default_rng(2)
    requests = [rng.integers(0, len(seq), 16) for _ in range(24)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda w: be.decode_frames(p, w), requests))
    for w, r in zip(requests, results):
        assert np.array_equal(r, seq[w])


def _child_decode(args):
    be, path, want = args
    return be.decode_frames(path, want)


def test_decoder_state_is_not_inherited_across_fork():
    p = dataset_path("pusht_sim_v30") / "videos" / "observation.image" / "chunk-000" / "file-000.mp4"
    be = PyAVBackend()
    want = np.array([10, 11, 400, 3000])
    parent = be.decode_frames(p, want)  # the parent now holds an open container (with decoder threads)
    ctx = mp.get_context("fork")
    # pickled into pool workers
    with ctx.Pool(2) as pool:
        children = pool.map(_child_decode, [(be, str(p), want)] * 2)
    for c in children:
        assert np.array_equal(c, parent)
    # inherited as is by a forked child (as DataLoader workers inherit the dataset): must not hang
    q = ctx.Queue()
    child = ctx.Process(target=lambda: q.put(be.decode_frames(p, want)))
    child.start()
    got = q.get(timeout=60)
    child.join(timeout=60)
    assert child.exitcode == 0 and np.array_equal(got, parent)


def test_not_a_video(tmp_path):
    p = tmp_path / "x.mp4"
    p.write_text("hello")
    with pytest.raises(VideoError, match="x.mp4"):
        build_index(p)
    with pytest.raises(VideoError, match="missing"):
        get_index(tmp_path / "absent.mp4")
