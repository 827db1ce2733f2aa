"""Samplers: sharding (disjoint, covering, equal length), episode chunks, determinism, selection,
weights. Property tests run on an in-memory dataset (tests/_fake.py) of random episode lengths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prf
from prf.errors import SamplerError
from prf.sampling import default_rank_world_size

from _fake import FakeDataset

KINDS = ["sequential", "shuffle", "filtered", "filtered_shuffle", "predicate", "chunk", "weighted_episode",
         "weighted_task", "weighted_frame_noreplace"]
WEIGHTED = {"weighted_episode", "weighted_task", "weighted_frame_noreplace"}


def make_sampler(kind: str, ds: FakeDataset, *, seed=0, rank=0, world_size=1, drop_last=False, chunk_size=3,
                 subset=None):
    kw = dict(seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)
    if kind == "sequential":
        return prf.SequentialSampler(len(ds), **kw)
    if kind == "shuffle":
        return prf.ShuffleSampler(len(ds), **kw)
    if kind == "filtered":
        return prf.FilteredSampler(ds, episodes=subset, **kw)
    if kind == "filtered_shuffle":
        return prf.FilteredSampler(ds, episodes=subset, shuffle=True, **kw)
    if kind == "predicate":
        return prf.FilteredSampler(ds, predicate=lambda ep: ep.episode_index % 2 == 0, shuffle=True, **kw)
    if kind == "chunk":
        return prf.EpisodeChunkSampler(ds, chunk_size, episodes=subset, **kw)
    if kind == "weighted_episode":
        return prf.WeightedSampler(ds, {e: 1.0 + e % 3 for e in ds.episodes}, by="episode", **kw)
    if kind == "weighted_task":
        return prf.WeightedSampler(ds, [1.0, 3.0], by="task", num_samples=len(ds) + 5, **kw)
    if kind == "weighted_frame_noreplace":
        return prf.WeightedSampler(ds, np.linspace(1, 2, len(ds)), by="frame", replacement=False, **kw)
    raise AssertionError(kind)


def selection(kind: str, ds: FakeDataset, subset) -> np.ndarray:
    if kind in ("filtered", "filtered_shuffle", "chunk") and subset is not None:
        eps = subset
    elif kind == "predicate":
        eps = [e for e in ds.episodes if e % 2 == 0]
    else:
        eps = ds.episodes
    o = [ds.episodes.index(e) for e in sorted(set(eps))]
    return np.concatenate([np.arange(ds.episode_starts[i], ds.episode_starts[i] + ds.episode_lengths[i]) for i in o])


@st.composite
def layouts(draw):
    lengths = draw(st.lists(st.integers(1, 30), min_size=1, max_size=10))
    ds = FakeDataset(lengths)
    kind = draw(st.sampled_from(KINDS))
    subset = None
    if kind in ("filtered", "filtered_shuffle", "chunk") and draw(st.booleans()):
        subset = draw(st.lists(st.sampled_from(ds.episodes), min_size=1, unique=True))
    return ds, kind, subset


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=layouts(), world_size=st.integers(1, 4), drop_last=st.booleans(), seed=st.integers(0, 2**31),
       epoch=st.integers(0, 3), chunk_size=st.integers(1, 7))
def test_shards_are_disjoint_equal_and_cover(layout, world_size, drop_last, seed, epoch, chunk_size):
    ds, kind, subset = layout
    samplers = [make_sampler(kind, ds, seed=seed, rank=r, world_size=world_size, drop_last=drop_last,
                             chunk_size=chunk_size, subset=subset) for r in range(world_size)]
    shards = [s.indices(epoch) for s in samplers]
    n_rank = len(samplers[0])
    assert all(len(sh) == n_rank for sh in shards), "every rank has the same number of samples"
    order = samplers[0].global_order(epoch)
    n = order.size
    total = (n // world_size) * world_size if drop_last else -(-n // world_size) * world_size
    assert n_rank * world_size == total
    padded = np.concatenate([order, np.resize(order, max(total - n, 0))])[:total]
    if samplers[0].shard_mode == "blocked":
        np.testing.assert_array_equal(np.concatenate(shards), padded)
    else:
        interleaved = np.stack(shards, axis=1).reshape(-1) if n_rank else np.zeros(0, np.int64)
        np.testing.assert_array_equal(interleaved, padded)
    sel = selection(kind, ds, subset)
    if kind in WEIGHTED:
        assert np.isin(order, sel).all()
        if kind == "weighted_frame_noreplace":
            assert np.unique(order).size == order.size
    else:
        # one epoch visits each selected frame exactly once; shards add only the documented padding
        np.testing.assert_array_equal(np.sort(order), sel)
        flat = np.concatenate(shards)
        extra = total - n
        if drop_last:
            assert np.unique(flat).size == flat.size  # disjoint, nothing repeated
        else:
            assert set(flat.tolist()) == set(sel.tolist())  # covers the selection
            assert flat.size - np.unique(flat).size <= max(extra, 0)


@settings(max_examples=100, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=12), chunk_size=st.integers(1, 9),
       seed=st.integers(0, 2**31), world_size=st.integers(1, 4), epoch=st.integers(0, 5))
def test_chunks_never_cross_episodes(lengths, chunk_size, seed, world_size, epoch):
    ds = FakeDataset(lengths)
    s = prf.EpisodeChunkSampler(ds, chunk_size, seed=seed, rank=0, world_size=1)
    ep_of = ds.row_episode
    # the chunks tile every episode, each within it and at most chunk_size long
    starts, lens = s.chunk_starts, s.chunk_lengths
    assert (lens >= 1).all() and (lens <= chunk_size).all()
    assert (ep_of[starts] == ep_of[starts + lens - 1]).all()
    np.testing.assert_array_equal(np.sort(np.concatenate([np.arange(a, a + b) for a, b in zip(starts, lens)])),
                                  np.arange(len(ds)))
    # the epoch's order is the chunks, whole and in frame order, one after another
    order = s.global_order(epoch)
    by_start = dict(zip(starts.tolist(), lens.tolist()))
    i = 0
    while i < order.size:
        a = int(order[i])
        assert a in by_start, f"position {i} of the order ({a}) does not start a chunk"
        np.testing.assert_array_equal(order[i : i + by_start[a]], np.arange(a, a + by_start[a]))
        i += by_start[a]
    # on every rank, consecutive positions that belong to one chunk are consecutive frames of one episode
    for r in range(world_size):
        shard = prf.EpisodeChunkSampler(ds, chunk_size, seed=seed, rank=r, world_size=world_size).indices(epoch)
        for a, b in zip(shard[:-1].tolist(), shard[1:].tolist()):
            if b not in by_start:  # not a chunk start: b continues a's chunk
                assert b == a + 1 and ep_of[a] == ep_of[b]


@settings(max_examples=60, deadline=None)
@given(layout=layouts(), seed=st.integers(0, 2**30), world_size=st.integers(1, 4), epoch=st.integers(0, 3))
def test_order_is_a_function_of_seed_epoch_rank(layout, seed, world_size, epoch):
    ds, kind, subset = layout
    for r in range(world_size):
        a = make_sampler(kind, ds, seed=seed, rank=r, world_size=world_size, subset=subset)
        b = make_sampler(kind, ds, seed=seed, rank=r, world_size=world_size, subset=subset)
        a.set_epoch(epoch)
        np.testing.assert_array_equal(a.indices(), b.indices(epoch))
        np.testing.assert_array_equal(list(a), b.indices(epoch))


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in ("sequential", "filtered")])
def test_another_seed_or_epoch_gives_another_order(kind):
    ds = FakeDataset([13, 9, 17, 11, 20, 8, 15, 12, 10, 14, 9, 16])  # 40+ chunks of 3: collisions ~ 0
    a = make_sampler(kind, ds, seed=1).indices(0)
    assert not np.array_equal(a, make_sampler(kind, ds, seed=2).indices(0))
    assert not np.array_equal(a, make_sampler(kind, ds, seed=1).indices(1))


@settings(max_examples=60, deadline=None)
@given(layout=layouts(), world_size=st.integers(1, 4), batch_size=st.integers(1, 9), workers=st.integers(0, 3),
       prefetch=st.integers(1, 3), seed=st.integers(0, 100))
def test_loader_workers_deliver_each_rank_shard_exactly(layout, world_size, batch_size, workers, prefetch, seed):
    """prf's workers are threads fed by the rank's order: every (rank, worker) pair delivers distinct
    batches and together they deliver exactly the rank's shard, in order."""
    ds, kind, subset = layout
    seen = []
    for r in range(world_size):
        s = make_sampler(kind, ds, seed=seed, rank=r, world_size=world_size, subset=subset)
        loader = prf.Loader(ds, batch_size, sampler=s, num_workers=workers, prefetch=prefetch)
        got = [b["index"] for b in loader]
        assert len(got) == len(loader)
        flat = np.concatenate(got) if got else np.zeros(0, np.int64)
        np.testing.assert_array_equal(flat, s.indices(0))
        seen.append(flat)
    if kind not in WEIGHTED:
        flat = np.concatenate(seen)
        assert set(flat.tolist()) == set(selection(kind, ds, subset).tolist())


# ---- selection, split, weights ---------------------------------------------------------------------
def test_select_episodes_and_errors():
    ds = FakeDataset([5, 6, 7, 8], ids=[3, 5, 8, 9])
    assert prf.select_episodes(ds) == [3, 5, 8, 9]
    assert prf.select_episodes(ds, episodes=[9, 3]) == [3, 9]
    assert prf.select_episodes(ds, predicate=lambda e: e.length >= 7) == [8, 9]
    assert prf.select_episodes(ds, episodes=[3, 8, 9], predicate=lambda e: e.length < 8) == [3, 8]
    with pytest.raises(SamplerError, match=r"\[4\] are not in the dataset"):
        prf.select_episodes(ds, episodes=[3, 4])
    with pytest.raises(SamplerError, match="selects no episode"):
        prf.select_episodes(ds, predicate=lambda e: False)
    s = prf.FilteredSampler(ds, episodes=[5, 9])
    np.testing.assert_array_equal(s.indices(), np.r_[5:11, 18:26])
    with pytest.raises(SamplerError, match="chunk_size"):
        prf.EpisodeChunkSampler(ds, 0)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 60), frac=st.floats(0, 1), seed=st.integers(0, 1000))
def test_train_val_split_by_episode(n, frac, seed):
    ids = list(range(100, 100 + n))
    train, val = prf.train_val_split(ids, frac, seed=seed)
    assert sorted(train + val) == ids and not set(train) & set(val)
    if 0 < frac < 1 and n >= 2:
        assert train and val
    assert abs(len(val) - frac * n) <= max(1, 0.5 + 1e-9) or frac in (0, 1)
    assert prf.train_val_split(ids, frac, seed=seed) == (train, val)


def test_train_val_split_is_seeded_and_frames_stay_in_their_episodes():
    ds = FakeDataset([10] * 20)
    tr, va = prf.train_val_split(ds, 0.25, seed=0)
    assert len(va) == 5 and prf.train_val_split(ds, 0.25, seed=1) != (tr, va)
    s_tr = prf.FilteredSampler(ds, episodes=tr, shuffle=True)
    s_va = prf.FilteredSampler(ds, episodes=va)
    assert set(ds.row_episode[s_tr.indices()]) == set(tr)
    assert set(ds.row_episode[s_va.indices()]) == set(va)
    with pytest.raises(SamplerError):
        prf.train_val_split(ds, 1.5)


def test_weighted_by_task_balances_tasks():
    # task 0: 4 episodes x 100 frames, task 1: 1 episode x 20 frames
    ds = FakeDataset([100, 20, 100, 100, 100], ids=[0, 1, 2, 4, 6], n_tasks=2)
    assert (ds.column("task_index")[ds.row_episode == 1] == 1).all()
    s = prf.WeightedSampler(ds, {"task 0": 1.0, "task 1": 1.0}, by="task", num_samples=20000, seed=3)
    draws = s.indices()
    share = (ds.column("task_index")[draws] == 1).mean()
    assert abs(share - 0.5) < 0.02, share  # uniform sampling would give 20/420 = 0.05
    # by episode: equal shares per episode whatever its length
    s = prf.WeightedSampler(ds, [1, 1, 1, 1, 1], by="episode", num_samples=20000, seed=3)
    per_ep = np.bincount(ds.row_episode[s.indices()], minlength=5) / 20000
    np.testing.assert_allclose(per_ep, 0.2, atol=0.02)
    # a zero weight never draws that episode
    s = prf.WeightedSampler(ds, {0: 1.0, 2: 1.0}, by="episode", num_samples=500)
    assert set(ds.row_episode[s.indices()].tolist()) == {0, 2}


def test_weighted_errors():
    ds = FakeDataset([5, 5])
    for weights, by, msg in [({7: 1.0}, "episode", "not selected"), ([1.0], "episode", "2 selected"),
                             ([-1, 1], "episode", ">= 0"), ([0, 0], "episode", "all weights are zero"),
                             ({"nope": 1}, "task", "not a task"), ([1.0], "frame", "10 selected frames"),
                             ([1, 1], "nonsense", "by must be")]:
        with pytest.raises(SamplerError, match=msg):
            prf.WeightedSampler(ds, weights, by=by)
    with pytest.raises(SamplerError, match="without replacement"):
        prf.WeightedSampler(ds, {0: 1.0}, replacement=False, num_samples=6)


def test_state_dict_refuses_another_shard_or_sampler():
    ds = FakeDataset([10, 10])
    a = prf.ShuffleSampler(20, seed=1, rank=0, world_size=2)
    with pytest.raises(SamplerError, match="rank"):
        prf.ShuffleSampler(20, seed=1, rank=1, world_size=2).load_state_dict(a.state_dict())
    with pytest.raises(SamplerError, match="type"):
        prf.EpisodeChunkSampler(ds, 4, rank=0, world_size=2).load_state_dict(a.state_dict())
    with pytest.raises(SamplerError, match="chunk_size"):
        prf.EpisodeChunkSampler(ds, 4, world_size=1, rank=0).load_state_dict(
            prf.EpisodeChunkSampler(ds, 5, world_size=1, rank=0).state_dict())
    b = prf.ShuffleSampler(20, seed=9, rank=0, world_size=2)
    a.set_epoch(4)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.indices(), b.indices())


def test_default_rank_world_size_from_environment(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert default_rank_world_size() == (2, 3)
    s = prf.ShuffleSampler(30)
    assert (s.rank, s.world_size, len(s)) == (2, 3, 10)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert default_rank_world_size() == (0, 1)


def test_real_dataset_task_weights_and_chunks():
    from conftest import dataset_path

    ds = prf.open_dataset(dataset_path("aloha_multicam_v30"), cameras=[])
    tasks = ds.meta.tasks
    assert len(tasks) == 2
    task_of = ds.column("task_index")
    s = prf.WeightedSampler(ds, {tasks[0]: 3.0, tasks[1]: 1.0}, by="task", num_samples=8000, seed=0)
    assert abs((task_of[s.indices()] == 0).mean() - 0.75) < 0.02
    c = prf.EpisodeChunkSampler(ds, 50, seed=0)
    got = np.concatenate([b["index"] for b in ds.loader(50, sampler=c)]) - ds.column("index")[0]
    ep = ds.column("episode_index")
    by_start = dict(zip(c.chunk_starts.tolist(), c.chunk_lengths.tolist()))
    i = 0
    while i < got.size:  # the delivered order is whole chunks, each inside one episode
        n = by_start[int(got[i])]
        np.testing.assert_array_equal(got[i : i + n], np.arange(got[i], got[i] + n))
        assert ep[got[i]] == ep[got[i] + n - 1]
        i += n
    assert sorted(got.tolist()) == list(range(len(ds)))
