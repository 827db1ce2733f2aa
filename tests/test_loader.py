"""The NumPy batch loader: order a function of (seed, epoch) only, workers change nothing, resume."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import prf
from prf.sampling import SequentialSampler, ShuffleSampler
from conftest import dataset_path


@pytest.fixture(scope="module")
def pusht():
    # no camera: these tests are about order; decoding is covered by the tests with cameras below
    return prf.open_dataset(dataset_path("pusht_sim_v30"), delta_timestamps={"action": [0.0, 0.1]}, cameras=[])


def _indices(loader):
    return [b["index"].copy() for b in loader]


def test_sequential_covers_everything_in_order(pusht):
    batches = _indices(pusht.loader(batch_size=100))
    assert len(batches) == 39
    assert np.array_equal(np.concatenate(batches), np.arange(3850))


def test_drop_last(pusht):
    batches = _indices(pusht.loader(batch_size=100, drop_last=True))
    assert len(batches) == 38 and all(len(b) == 100 for b in batches)


def test_shuffle_depends_only_on_seed_and_epoch(pusht):
    kw = dict(batch_size=256, shuffle=True, seed=7)
    a = pusht.loader(**kw)
    e0, e1 = np.concatenate(_indices(a)), np.concatenate(_indices(a))  # epoch advances after a full pass
    assert a.epoch == 2
    b = pusht.loader(**kw)
    b.set_epoch(1)
    assert np.array_equal(np.concatenate(_indices(b)), e1)
    assert not np.array_equal(e0, e1)
    assert np.array_equal(np.sort(e0), np.arange(3850))  # a permutation
    c = pusht.loader(batch_size=256, shuffle=True, seed=8)
    assert not np.array_equal(np.concatenate(_indices(c)), e0)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_deliver_the_same_batches(workers):
    ds = prf.open_dataset(dataset_path("aloha_multicam_v30"), delta_timestamps={"observation.images.top": [-0.1, 0.0]})
    ref = list(itertools.islice(ds.loader(batch_size=16, shuffle=True, seed=3, num_workers=0), 6))
    got = []
    for b in ds.loader(batch_size=16, shuffle=True, seed=3, num_workers=workers, prefetch=2):
        got.append(b)
        if len(got) == 6:
            break
    for r, g in zip(ref, got):
        assert set(r) == set(g)
        for k in r:
            if k == "task":
                assert r[k] == g[k]
            else:
                assert np.array_equal(r[k], g[k]), k


def test_batch_shapes(pusht):
    ds = prf.open_dataset(dataset_path("pusht_sim_v30"),
                          delta_timestamps={"observation.image": [-0.1, 0.0], "action": [0.0, 0.1, 0.2]})
    b = next(iter(ds.loader(batch_size=4)))
    assert b["observation.image"].shape == (4, 2, 96, 96, 3) and b["observation.image"].dtype == np.uint8
    assert b["observation.image_is_pad"].shape == (4, 2)
    assert b["action"].shape == (4, 3, 2) and b["action"].dtype == np.float32
    assert b["observation.state"].shape == (4, 2)
    assert b["timestamp"].shape == (4,) and b["timestamp"].dtype == np.float32
    assert isinstance(b["task"], list) and len(b["task"]) == 4


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("stop", [1, 5, 17])
def test_resume_continues_with_next_batch(pusht, workers, stop):
    full = _indices(pusht.loader(batch_size=100, shuffle=True, seed=1, num_workers=workers))
    a = pusht.loader(batch_size=100, shuffle=True, seed=1, num_workers=workers)
    before = []
    for b in a:
        before.append(b["index"].copy())
        if len(before) == stop:
            state = a.state_dict()
            break
    b = pusht.loader(batch_size=100, shuffle=True, seed=1, num_workers=workers)
    b.load_state_dict(state)
    after = _indices(b)
    assert len(before) + len(after) == len(full)
    for x, y in zip(before + after, full):
        assert np.array_equal(x, y)


def test_resume_with_cameras_and_workers():
    ds = prf.open_dataset(dataset_path("so101_wrist_v30"), delta_timestamps={"observation.images.wrist": [-1 / 30, 0.0]},
                          episodes=[4])
    kw = dict(batch_size=16, shuffle=True, seed=2, num_workers=2, prefetch=3)
    full = list(itertools.islice(ds.loader(**kw), 6))
    a = ds.loader(**kw)
    it = iter(a)
    first = [next(it), next(it)]
    state = a.state_dict()
    b = ds.loader(**kw)
    b.load_state_dict(state)
    rest = list(itertools.islice(b, 4))
    for x, y in zip(first + rest, full):
        assert np.array_equal(x["index"], y["index"])
        assert np.array_equal(x["observation.images.wrist"], y["observation.images.wrist"])


def test_sharding_is_disjoint_and_covers(pusht):
    seen = []
    for rank in range(3):
        loader = pusht.loader(batch_size=64, shuffle=True, seed=5, rank=rank, world_size=3)
        idx = np.concatenate(_indices(loader))
        assert len(idx) == -(-3850 // 3)
        seen.append(idx)
    allidx = np.concatenate(seen)
    assert set(allidx.tolist()) == set(range(3850))
    assert len(allidx) - len(set(allidx.tolist())) == 3 * (-(-3850 // 3)) - 3850  # only the padding repeats


def test_samplers_pure_functions():
    a, b = ShuffleSampler(100, seed=1, rank=0, world_size=1), ShuffleSampler(100, seed=1, rank=0, world_size=1)
    b.set_epoch(3)
    b.set_epoch(0)
    assert np.array_equal(a.indices(), b.indices())
    assert np.array_equal(SequentialSampler(10, rank=1, world_size=2).indices(), [1, 3, 5, 7, 9])


def test_worker_error_surfaces_in_caller(copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    p = root / "videos" / "chunk-000" / "observation.image" / "episode_000003.mp4"
    p.write_bytes(b"\x00" * 100)
    ds = prf.open_dataset(root)
    with pytest.raises(prf.errors.VideoError, match="episode_000003.mp4"):
        for _ in ds.loader(batch_size=64, num_workers=2):
            pass
