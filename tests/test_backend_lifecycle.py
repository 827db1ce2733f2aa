"""Decode backends: one abstract base with declared capabilities, one resolver, and an explicit
lifecycle: decoders per thread, bounded (count and bytes, LRU), closed by close() in every thread,
by close_thread(), or when their thread has exited; never the parent's after a fork."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import prf
from prf.decode import (ArrayFrames, BackendCapabilities, CachedBackend, DecodeBackend, FrameCache, FrameSource,
                        PyAVBackend, TorchCodecBackend, VideoIndex, get_index, resolve_backend,
                        torchcodec_available)
from prf.decode._per_thread import decoder_bytes
from conftest import dataset_path

PUSHT = dataset_path("pusht_sim_v30") / "videos" / "observation.image" / "chunk-000" / "file-000.mp4"
ALOHA = sorted((dataset_path("aloha_multicam_v30") / "videos" / "observation.images.top" / "chunk-000").glob("*.mp4"))

BACKENDS = ["pyav"] + (["torchcodec"] if torchcodec_available() else [])


def _fds_on(path) -> int:
    """Open file descriptors of this process on ``path``."""
    target = os.path.realpath(path)
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.path.realpath(os.readlink(f"/proc/self/fd/{fd}")) == target
        except OSError:
            pass
    return n


def test_base_is_abstract_and_builds_decode_on_two_methods():
    with pytest.raises(TypeError):
        DecodeBackend()  # type: ignore[abstract]

    class Gray(DecodeBackend):
        """A toy backend: frame i is filled with the value i."""
        name = "gray"

        def index(self, path):
            return get_index(path)

        def decode_frames_list(self, path, frames):
            idx = self.index(path)
            return [np.full((idx.height, idx.width, 3), f % 256, np.uint8) for f in frames]

    be = Gray()
    assert be.capabilities == BackendCapabilities(copy_only=False, direct_copy=False, device="cpu")
    out = be.decode_frames(PUSHT, np.array([7, 3, 7]))
    assert out.shape == (3, 96, 96, 3) and out[:, 0, 0, 0].tolist() == [7, 3, 7]
    frames, pts = be.decode(PUSHT, np.array([0.1]), tolerance_s=1e-3)
    assert frames[0, 0, 0, 0] == 1 and pts[0] == pytest.approx(0.1)
    assert be.stats()["decoder_opens"] == 0 and be.close() is None
    assert resolve_backend(be) is be
    with pytest.raises(TypeError, match="DecodeBackend"):
        resolve_backend(object())  # type: ignore[arg-type]


def test_capabilities_are_declared(tmp_path):
    assert PyAVBackend().capabilities == BackendCapabilities(False, False, "cpu")
    assert TorchCodecBackend(device="cuda:1").capabilities.device == "cuda:1"
    cached = CachedBackend(PyAVBackend(), FrameCache(tmp_path / "c"))
    assert cached.capabilities.copy_only and cached.capabilities.direct_copy
    # direct_copy: a FrameSource always, also for a video the cache does not hold (decoded by the inner one)
    src = cached.decode_frames_list(PUSHT, np.array([1, 2]))
    assert isinstance(src, FrameSource) and isinstance(src, ArrayFrames) and len(src) == 2
    dest = np.empty((96, 96, 3), np.uint8)
    src.copy_into(1, dest)
    assert np.array_equal(dest, PyAVBackend().decode_frames(PUSHT, [2])[0])
    with pytest.raises(AttributeError):
        cached.capabilities.copy_only = False  # frozen
    assert not hasattr(cached.capabilities, "__dict__")  # slotted


def test_resolver():
    assert resolve_backend("pyav").name == "pyav"
    assert resolve_backend("auto", frame_pixels=640 * 360).name == "pyav"
    assert resolve_backend("auto", frame_pixels=96 * 96).name == ("torchcodec" if torchcodec_available() else "pyav")
    assert resolve_backend("auto").name == ("torchcodec" if torchcodec_available() else "pyav")
    with pytest.raises(ValueError, match="unknown decode backend"):
        resolve_backend("ffmpeg-cli")
    if torchcodec_available():
        assert resolve_backend("auto", device="cuda", frame_pixels=10**7).capabilities.device == "cuda"


@pytest.mark.parametrize("name", BACKENDS)
def test_close_closes_decoders_of_every_thread(name):
    be = resolve_backend(name)
    barrier = threading.Barrier(3)
    base = _fds_on(PUSHT)

    def work(i):
        be.decode_frames(PUSHT, [i, i + 50])
        barrier.wait(timeout=60)  # all three threads alive, each with its own decoder
        return threading.get_ident()

    with ThreadPoolExecutor(3) as pool:
        idents = list(pool.map(work, range(3)))
        assert len(set(idents)) == 3
        s = be.stats()
        assert s["decoder_opens"] == 3 and s["decoders_open"] == 3 and s["threads"] == 3
        assert s["opens_per_path"] == {str(PUSHT): 3}
        assert s["decoder_bytes"] == 3 * decoder_bytes(96, 96)
        if name == "pyav":
            assert _fds_on(PUSHT) == base + 3
        be.close()  # from another thread than the ones that opened them
        assert be.stats()["decoders_open"] == 0
        if name == "pyav":
            assert _fds_on(PUSHT) == base
        # still usable: the workers open new decoders on demand
        ref = PyAVBackend().decode_frames(PUSHT, [5])
        assert all(np.array_equal(r, ref) for r in pool.map(lambda _: be.decode_frames(PUSHT, [5]), range(3)))
    assert be.stats()["decoder_opens"] >= 4
    be.close()


def test_close_thread_and_exited_threads():
    be = PyAVBackend()
    assert _fds_on(PUSHT) == 0 and _fds_on(ALOHA[0]) == 0

    def work_then_close():
        be.decode_frames(PUSHT, [1])
        assert be.stats()["decoders_open"] == 1
        be.close_thread()

    t = threading.Thread(target=work_then_close)
    t.start(), t.join()
    assert be.stats()["decoders_open"] == 0 and _fds_on(PUSHT) == 0
    # a thread that exits without close_thread(): its decoder is closed when the next thread registers
    t = threading.Thread(target=lambda: be.decode_frames(PUSHT, [2]))
    t.start(), t.join()
    assert be.stats()["decoders_open"] == 1 and _fds_on(PUSHT) == 1
    be.decode_frames(ALOHA[0], [0])  # this (main) thread's first use
    s = be.stats()
    assert s["decoders_open"] == 1 and s["opens_per_path"] == {str(PUSHT): 2, str(ALOHA[0]): 1}
    assert _fds_on(PUSHT) == 0
    be.close()
    assert _fds_on(ALOHA[0]) == 0


def test_decoders_per_thread_are_bounded_in_count_and_bytes():
    be = PyAVBackend(max_open=2)
    for p in ALOHA:  # 3 files
        be.decode_frames(p, [0])
    s = be.stats()
    assert s["decoder_opens"] == 3 and s["decoders_open"] == 2
    assert _fds_on(ALOHA[0]) == 0 and _fds_on(ALOHA[2]) == 1  # least recently used closed
    be.decode_frames(ALOHA[2], [1])  # a hit: no new open
    assert be.stats()["decoder_opens"] == 3
    h, w = get_index(ALOHA[0]).height, get_index(ALOHA[0]).width
    small = PyAVBackend(max_open=16, max_open_bytes=decoder_bytes(w, h) + 1)
    for p in ALOHA:
        small.decode_frames(p, [0])
    assert small.stats()["decoders_open"] == 1 and small.stats()["decoder_bytes"] == decoder_bytes(w, h)
    be.close(), small.close()


def test_pickled_backend_has_no_decoders_and_works():
    be = PyAVBackend(thread_count=1, max_open=3)
    ref = be.decode_frames(PUSHT, [4])
    copy = pickle.loads(pickle.dumps(be))
    assert copy.stats()["decoders_open"] == 0 and copy.max_open == 3
    assert np.array_equal(copy.decode_frames(PUSHT, [4]), ref)
    be.close(), copy.close()


def _child_closes(be, q):
    be.close()  # must not touch the parent's decoder (its FFmpeg state belongs to the parent)
    q.put(be.stats()["decoders_open"])


def test_forked_child_never_closes_the_parents_decoders():
    be = PyAVBackend()
    ref = be.decode_frames(PUSHT, [10, 400])
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    child = ctx.Process(target=_child_closes, args=(be, q))
    child.start()
    assert q.get(timeout=60) == 0
    child.join(timeout=60)
    assert child.exitcode == 0
    s = be.stats()
    assert s["decoders_open"] == 1 and s["decoder_opens"] == 1
    assert np.array_equal(be.decode_frames(PUSHT, [10, 400]), ref) and be.stats()["decoder_opens"] == 1
    be.close()


def test_dataset_loader_opens_each_file_once_per_worker_thread():
    ds = prf.open_dataset(dataset_path("aloha_multicam_v30"), cameras=["observation.images.top"])
    loader = ds.loader(64, shuffle=True, seed=0, num_workers=0)
    for _ in range(2):
        for _ in loader:
            pass
    s = ds.backend.stats()
    assert s["decoder_opens"] == len(ALOHA) == s["decoders_open"]  # one thread, 2 epochs: one open per file
    del loader  # an unreferenced loader releases the decoders it used (issue #18)
    assert ds.backend.stats()["decoders_open"] == 0 and all(_fds_on(p) == 0 for p in ALOHA)


def test_video_index_type():
    idx = get_index(PUSHT)
    assert isinstance(idx, VideoIndex) and idx.frame_of(int(idx.pts[3])) == 3 and idx.frame_of(-12345) is None


def test_close_while_threads_decode_is_safe():
    """close() waits for a decode in flight and never leaves a decoder outside the registry."""
    be = PyAVBackend()
    ref = PyAVBackend().decode_frames(PUSHT, np.arange(0, 3000, 97))
    stop = threading.Event()
    errors = []

    def work():
        rng = np.random.default_rng(threading.get_ident() % 2**32)
        while not stop.is_set():
            k = rng.integers(0, ref.shape[0], 3)
            got = be.decode_frames(PUSHT, np.arange(0, 3000, 97)[k])
            if not np.array_equal(got, ref[k]):
                errors.append(k)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(20):
        be.close()
        threading.Event().wait(0.01)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    be.close()
    assert be.stats()["decoders_open"] == 0 and _fds_on(PUSHT) == 0
