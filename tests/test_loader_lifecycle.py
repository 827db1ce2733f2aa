"""Issue #18: a Loader's worker threads and their open decoders live across epochs (each file opened
once per worker thread, not once per epoch), and ``close()``, a ``with`` block and garbage collection
release them (no prf thread alive, no video file open). Issue #10 item 5: iteration state lives in the
iterator (two live iterators, ``break``, ``get_state`` / ``reset``)."""

from __future__ import annotations

import gc
import itertools
import os
import threading
import weakref
from collections import Counter

import numpy as np
import pytest

import prf
from prf.decode import pyav as pyav_module

from _fake import FakeDataset
from conftest import dataset_path

EPISODES = list(range(10))  # 10 video files (< the backend's LRU bound of 16 per thread)


@pytest.fixture
def opens(monkeypatch):
    """Counts decoder opens and closes by (thread, file) (wraps PyAV's open-container class)."""
    opened: Counter = Counter()
    closed: Counter = Counter()
    base = pyav_module._OpenVideo

    class Counting(base):
        def __init__(self, path, thread_count):
            super().__init__(path, thread_count)
            self._key = (threading.current_thread().name, os.path.basename(path))
            opened[self._key] += 1

        def close(self):
            closed[self._key] += 1
            super().close()

    monkeypatch.setattr(pyav_module, "_OpenVideo", Counting)
    return opened, closed


def _video_fds(root) -> list[str]:
    """Open file descriptors of this process on the dataset's video files."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith(".mp4") and str(root) in target:
            out.append(target)
    return out


def _prf_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("prf-")]


@pytest.fixture(scope="module")
def pusht21():
    # a shared dataset: one open_dataset, several loaders
    return prf.open_dataset(dataset_path("pusht_sim_v21"), episodes=EPISODES)


def test_decoders_opened_once_per_worker_thread_over_three_epochs(pusht21, opens):
    opened, closed = opens
    loader = pusht21.loader(32, shuffle=True, seed=0, num_workers=2)
    per_epoch = []
    for _ in range(3):
        n = sum(1 for _ in loader)
        assert n == len(loader)
        per_epoch.append(sum(opened.values()))
    threads = {t for t, _ in opened}
    assert len(threads) == 2 and all(t.startswith("prf-decode-") for t in threads)
    # every file opened at most once per worker thread (a pool per epoch opened each up to 3 times)
    assert max(opened.values()) == 1, opened
    files = {f for _, f in opened}
    assert len(files) == len(EPISODES)
    assert per_epoch[0] == per_epoch[2] <= 2 * len(EPISODES)  # epochs 2 and 3 open nothing new
    assert not closed  # still open for the next epoch
    loader.close()
    assert closed == opened  # every decoder closed explicitly by close()
    assert _prf_threads() == []
    assert _video_fds(dataset_path("pusht_sim_v21")) == []


@pytest.mark.parametrize("workers", [0, 2])
def test_close_leaves_no_thread_and_no_file_open(workers):
    ds = prf.open_dataset(dataset_path("pusht_sim_v21"), episodes=[0, 1, 2, 3])
    root = dataset_path("pusht_sim_v21")
    loader = ds.loader(16, shuffle=True, num_workers=workers)
    for _ in itertools.islice(loader, 5):
        pass
    assert _video_fds(root), "the decoders are open between batches (the test could not fail otherwise)"
    if workers:
        assert len(_prf_threads()) == workers
    loader.close()
    assert _prf_threads() == []
    assert _video_fds(root) == []
    assert loader.closed
    with pytest.raises(RuntimeError, match="closed"):
        next(iter(loader))
    loader.close()  # idempotent


def test_context_manager_closes(pusht21):
    root = dataset_path("pusht_sim_v21")
    with pusht21.loader(16, num_workers=2) as loader:
        first = next(iter(loader))
        assert first["observation.image"].shape == (16, 96, 96, 3)
        assert len(_prf_threads()) == 2
    assert _prf_threads() == [] and _video_fds(root) == []


def test_garbage_collection_of_an_unreferenced_loader_closes_it(pusht21):
    root = dataset_path("pusht_sim_v21")

    def run() -> weakref.ref:
        loader = pusht21.loader(16, shuffle=True, num_workers=2)
        for _ in itertools.islice(loader, 3):  # a break: batches were in flight
            pass
        assert len(_prf_threads()) == 2
        return weakref.ref(loader)

    gc.disable()  # the loader must go by reference counting alone: no cycle keeps it (or its threads)
    try:
        ref = run()
        assert ref() is None
    finally:
        gc.enable()
    assert _prf_threads() == []
    assert _video_fds(root) == []


def test_worker_threads_persist_across_epochs_and_iterators():
    ds = FakeDataset([20, 30], camera=True)
    loader = prf.Loader(ds, 4, shuffle=True, num_workers=2)
    list(loader)
    names = {t.name for t in loader.worker_threads}
    list(loader)
    for _ in itertools.islice(loader, 2):
        pass
    assert {t.name for t in loader.worker_threads} == names and len(names) == 2
    loader.close()
    assert loader.worker_threads == []


# ---- iteration state in the iterator (issue #10 item 5) --------------------------------------------------
def _ids(batches) -> list[list[int]]:
    return [b["index"].tolist() for b in batches]


@pytest.mark.parametrize("workers", [0, 2])
def test_two_live_iterators_each_deliver_their_sequence(workers):
    ds = FakeDataset([13, 7, 22], camera=True)
    loader = prf.Loader(ds, 5, shuffle=True, seed=4, num_workers=workers, transform=prf.transforms.RandomHorizontalFlip())
    ref = prf.Loader(ds, 5, shuffle=True, seed=4, transform=prf.transforms.RandomHorizontalFlip())
    epoch0 = list(ref)
    a, b = iter(loader), iter(loader)
    got_a, got_b = [], []
    for k in itertools.count():  # interleaved: b takes two batches for each of a's
        x = next(a, None)
        if x is not None:
            got_a.append(x)
        for _ in range(2):
            y = next(b, None)
            if y is not None:
                got_b.append(y)
        if x is None and y is None:
            break
    assert _ids(got_a) == _ids(got_b) == _ids(epoch0)
    for x, y, r in zip(got_a, got_b, epoch0):
        np.testing.assert_array_equal(x["cam"], r["cam"])
        np.testing.assert_array_equal(y["cam"], r["cam"])
    assert loader.epoch == 1  # the epoch advanced once, not twice
    loader.close()


def test_break_restarts_the_epoch_and_state_names_the_break_point():
    ds = FakeDataset([30, 20])
    loader = prf.Loader(ds, 4, shuffle=True, seed=1)
    full = _ids(prf.Loader(ds, 4, shuffle=True, seed=1))
    first = []
    for batch in loader:
        first.append(batch)
        if len(first) == 3:
            break
    assert loader.epoch == 0
    state = loader.state_dict()
    assert state["epoch"] == 0 and state["batches_delivered"] == 3
    # the next for-loop starts the unfinished epoch again from its first batch (as torch's DataLoader)
    assert _ids(loader) == full
    assert loader.epoch == 1
    # resuming from the state taken at the break continues with batch 3
    other = prf.Loader(ds, 4, shuffle=True, seed=1)
    other.load_state_dict(state)
    assert _ids(first) + _ids(other) == full


def test_iterator_get_state_and_reset():
    ds = FakeDataset([30, 20])
    loader = prf.Loader(ds, 4, shuffle=True, seed=2)
    full = _ids(prf.Loader(ds, 4, shuffle=True, seed=2))
    it = iter(loader)
    assert isinstance(it, prf.LoaderIterator) and len(it) == len(full)
    head = _ids(itertools.islice(it, 5))
    state = it.get_state()
    assert state == loader.state_dict() and state["batches_delivered"] == 5
    it2 = iter(loader)
    it2.reset(state)  # affects it2 only
    assert head + _ids(it2) == full
    assert it2.get_state()["epoch"] == 1 and it2.get_state()["batches_delivered"] == 0
    assert _ids(it) == full[5:]  # the first iterator went on unaffected
    it.reset()  # back to the loader's start point: now epoch 1
    assert it.epoch == 1
    assert _ids(it) == [b.tolist() for b in prf.Loader(ds, 4, shuffle=True, seed=2).batch_indices(1)]


def test_loader_batch_equals_the_iterators_batch():
    ds = FakeDataset([11, 17], camera=True)
    aug = prf.transforms.Compose([prf.transforms.RandomCrop(6, padding=1), prf.transforms.RandomHorizontalFlip()])
    loader = prf.Loader(ds, 4, shuffle=True, seed=9, transform=aug)
    loader.set_epoch(2)
    batches = list(loader)
    for k in (0, 3, len(batches) - 1):
        got = loader.batch(2, k)
        np.testing.assert_array_equal(got["index"], batches[k]["index"])
        np.testing.assert_array_equal(got["cam"], batches[k]["cam"])
    with pytest.raises(IndexError, match="out of range"):
        loader.batch(2, len(batches))


def test_a_pickled_loader_is_its_configuration_without_threads():
    import pickle

    ds = FakeDataset([9, 14], camera=True)
    loader = prf.Loader(ds, 4, shuffle=True, seed=3, num_workers=2, transform=prf.transforms.RandomHorizontalFlip())
    loader.set_epoch(2)
    first = next(iter(loader))
    copy = pickle.loads(pickle.dumps(loader))
    assert copy.worker_threads == [] and copy.epoch == 2 and copy.decode == loader.decode
    np.testing.assert_array_equal(next(iter(copy))["cam"], first["cam"])
    copy.close()
    assert len(loader.worker_threads) == 2  # the original keeps its own
    loader.close()


def test_closing_a_loader_under_a_running_iterator_is_a_clear_error():
    ds = FakeDataset([40, 40], camera=True)
    loader = prf.Loader(ds, 2, num_workers=2, prefetch=1)
    it = iter(loader)
    next(it)
    loader.close()
    assert _prf_threads() == []
    with pytest.raises(RuntimeError, match="closed"):
        for _ in it:  # batches already decoded may still arrive; then the error
            pass
