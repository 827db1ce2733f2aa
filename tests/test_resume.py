"""Exact resume: a run interrupted at any batch (workers and prefetch running) and resumed from
``state_dict()`` delivers the same batches as an uninterrupted run, for every sampler; the same holds
for torchdata's StatefulDataLoader over prf.torch's TorchSampler and BatchIterableDataset."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prf
from prf import transforms as T

from _fake import FakeDataset
from conftest import dataset_path
from test_sampler import KINDS, make_sampler


def take(loader, n: int) -> list[dict]:
    """The next ``n`` batches, running on into the next epochs as a training loop does."""
    out: list[dict] = []
    while len(out) < n:
        before = len(out)
        for batch in loader:
            out.append(batch)
            if len(out) == n:
                break
        if len(out) == before and len(loader) == 0:
            raise AssertionError("empty loader")
    return out


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.keys() == y.keys()
        for k in x:
            if isinstance(x[k], list):
                assert x[k] == y[k], (i, k)
            else:
                np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]), err_msg=f"batch {i}, key {k}")


AUG = T.Compose([T.RandomCrop(6, padding=1), T.RandomHorizontalFlip(), T.ColorJitter(0.3, 0.3, 0.3, 0.05)])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=st.lists(st.integers(1, 25), min_size=1, max_size=8), kind=st.sampled_from(KINDS),
       world_size=st.integers(1, 4), data=st.data(), batch_size=st.integers(1, 7), workers=st.integers(0, 3),
       prefetch=st.integers(1, 3), seed=st.integers(0, 1000), drop_last=st.booleans(), epochs=st.integers(1, 3))
def test_resume_at_any_batch_equals_uninterrupted(lengths, kind, world_size, data, batch_size, workers, prefetch,
                                                  seed, drop_last, epochs):
    ds = FakeDataset(lengths, camera=True)
    rank = data.draw(st.integers(0, world_size - 1), label="rank")

    def new_loader(w):
        s = make_sampler(kind, ds, seed=seed, rank=rank, world_size=world_size, chunk_size=3)
        return prf.Loader(ds, batch_size, sampler=s, num_workers=w, prefetch=prefetch, drop_last=drop_last,
                          seed=seed, transform=AUG)

    ref = new_loader(0)
    if len(ref) == 0:
        return
    total = epochs * len(ref)
    full = take(ref, total)
    k = data.draw(st.integers(0, total), label="checkpoint after batch")
    a = new_loader(workers)
    first = take(a, k) if k else []
    state = json.loads(json.dumps(a.state_dict()))  # a checkpoint is plain JSON
    b = new_loader(workers)
    b.load_state_dict(state)
    rest = take(b, total - k) if total - k else []
    assert_same_batches(first + rest, full)


def test_resume_on_real_video_with_transforms_and_normalization():
    """pusht_sim_v30 with windows, a shuffle, 2 workers, random crops/flips/jitter and normalization:
    interrupted after 3 batches of epoch 1, the resumed run equals the uninterrupted one bit for bit."""
    ds = prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[0, 1, 2],
                          delta_timestamps={"observation.image": [-0.1, 0.0], "action": [0.0, 0.1, 0.2]})
    aug = T.Compose([T.RandomCrop(84, padding=4), T.RandomRotation(5), T.ColorJitter(0.2, 0.2, 0.2, 0.02)])

    def new_loader():
        return ds.loader(16, shuffle=True, seed=7, num_workers=2, prefetch=2, transform=aug,
                         normalize={"observation.state": "mean_std", "action": "min_max"})

    ref = new_loader()
    n = len(ref)
    full = take(ref, n + 5)
    a = new_loader()
    first = take(a, n + 3)
    b = new_loader()
    b.load_state_dict(a.state_dict())
    assert_same_batches(first + take(b, 2), full)
    assert full[0]["observation.image"].shape == (16, 2, 84, 84, 3)
    assert full[0]["observation.image"].dtype == np.uint8
    assert full[0]["action"].dtype == np.float32


def test_transforms_do_not_depend_on_workers_and_differ_per_epoch():
    ds = FakeDataset([20, 30], camera=True)
    runs = [take(prf.Loader(ds, 8, shuffle=True, seed=3, num_workers=w, transform=AUG), 2 * 7) for w in (0, 2, 3)]
    assert_same_batches(runs[0], runs[1])
    assert_same_batches(runs[0], runs[2])
    # epoch 1 sees other augmentations of the same frames
    ep0 = {int(i): img for b in runs[0][:7] for i, img in zip(b["index"], b["cam"])}
    ep1 = {int(i): img for b in runs[0][7:] for i, img in zip(b["index"], b["cam"])}
    assert sum(not np.array_equal(ep0[i], ep1[i]) for i in ep0) > len(ep0) // 2


def test_load_state_dict_refuses_another_batch_size():
    ds = FakeDataset([10, 10])
    a = prf.Loader(ds, 4, shuffle=True)
    with pytest.raises(ValueError, match="batch_size"):
        prf.Loader(ds, 5, shuffle=True).load_state_dict(a.state_dict())


# ---- torch: StatefulDataLoader -------------------------------------------------------------------------
torch = pytest.importorskip("torch")
stateful = pytest.importorskip("torchdata.stateful_dataloader")
import prf.torch  # noqa: E402


def _indices(batches) -> list[int]:
    return [int(i) for b in batches for i in b["index"].reshape(-1).tolist()]


@pytest.fixture(scope="module")
def pusht():
    return prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[0, 1, 2, 3], cameras=[])


@pytest.mark.parametrize("workers", [0, 2])
def test_stateful_dataloader_resumes_batch_iterable_dataset(pusht, workers):
    def make():
        it = prf.torch.BatchIterableDataset(pusht, 16, sampler=prf.EpisodeChunkSampler(pusht, 8, seed=5),
                                            normalize={"observation.state": "mean_std"})
        it.set_epoch(1)
        return it, stateful.StatefulDataLoader(it, batch_size=None, num_workers=workers)

    it, dl = make()
    full = list(dl)
    # same batches, in the same order, as prf's own loader (the workers split by batch number)
    ref = prf.Loader(pusht, 16, sampler=prf.EpisodeChunkSampler(pusht, 8, seed=5),
                     normalize={"observation.state": "mean_std"})
    ref.set_epoch(1)
    ref_batches = list(ref)
    assert _indices(full) == _indices(ref_batches)
    np.testing.assert_array_equal(full[3]["observation.state"].numpy(), ref_batches[3]["observation.state"])
    for k in (1, 5, len(full) - 1):
        it, dl = make()
        first = list(itertools.islice(dl, k))
        state = dl.state_dict()
        it2, dl2 = make()
        dl2.load_state_dict(state)
        rest = list(dl2)
        assert _indices(first) + _indices(rest) == _indices(full), k


@pytest.mark.parametrize("workers", [0, 2])
def test_stateful_dataloader_resumes_torch_sampler(pusht, workers):
    tds = prf.torch.Dataset(pusht)

    def make():
        ts = prf.torch.TorchSampler(prf.WeightedSampler(pusht, [1, 2, 3, 4], num_samples=150, seed=2))
        ts.set_epoch(3)
        return ts, stateful.StatefulDataLoader(tds, batch_size=10, sampler=ts, num_workers=workers)

    ts, dl = make()
    full = _indices(list(dl))
    assert full == ts.sampler.indices(3).tolist()
    for k in (1, 7, 14):
        ts, dl = make()
        first = list(itertools.islice(dl, k))
        state = dl.state_dict()
        ts2, dl2 = make()
        ts2.set_epoch(0)  # the state carries the epoch: the checkpoint wins
        dl2.load_state_dict(state)
        rest = _indices(list(dl2))
        assert _indices(first) + rest == full, k
