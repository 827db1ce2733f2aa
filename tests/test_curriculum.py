"""CurriculumSampler: the pool follows the documented schedule over constructed scores, ranks cover the
pool without duplicates, the order is a pure function of (seed, epoch, rank, world_size), and a run
resumed from the Loader's state_dict at any batch equals the uninterrupted one."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prf
from prf.errors import SamplerError

from _fake import FakeDataset
from conftest import dataset_path
from test_resume import assert_same_batches, take


def frames_of(ds: FakeDataset, episodes) -> np.ndarray:
    o = [ds.episodes.index(e) for e in episodes]
    if not o:
        return np.zeros(0, np.int64)
    return np.concatenate([np.arange(ds.episode_starts[i], ds.episode_starts[i] + ds.episode_lengths[i]) for i in o])


def expected_pool_size(n_episodes: int, start: float, warmup: int, epoch: int) -> int:
    """The docstring's schedule, written out independently."""
    f = 1.0 if warmup == 0 else min(1.0, start + (1.0 - start) * epoch / warmup)
    return min(n_episodes, max(1, math.ceil(f * n_episodes - 1e-9)))


@st.composite
def setups(draw):
    lengths = draw(st.lists(st.integers(1, 20), min_size=1, max_size=10))
    ds = FakeDataset(lengths)
    scores = draw(st.lists(st.integers(-5, 5), min_size=len(lengths), max_size=len(lengths)))  # ties likely
    start = draw(st.sampled_from([0.1, 0.25, 0.5, 1.0]))
    warmup = draw(st.integers(0, 5))
    easy = draw(st.sampled_from(["low", "high"]))
    return ds, {e: float(s) for e, s in zip(ds.episodes, scores)}, start, warmup, easy


def make(ds, scores, start, warmup, easy, **kw):
    return prf.CurriculumSampler(ds, scores, start=start, warmup_epochs=warmup, easy=easy, **kw)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=setups(), world_size=st.integers(1, 4), drop_last=st.booleans(), seed=st.integers(0, 2**31),
       epoch=st.integers(0, 7))
def test_ranks_cover_the_pool_once_and_pool_follows_the_schedule(setup, world_size, drop_last, seed, epoch):
    ds, scores, start, warmup, easy = setup
    samplers = [make(ds, scores, start, warmup, easy, seed=seed, rank=r, world_size=world_size, drop_last=drop_last)
                for r in range(world_size)]
    s0 = samplers[0]
    k = expected_pool_size(len(ds.episodes), start, warmup, epoch)
    # the pool: the k easiest episodes (ties by episode index), from the constructed scores
    sign = 1.0 if easy == "low" else -1.0
    ranked = sorted(ds.episodes, key=lambda e: (sign * scores[e], e))
    assert s0.pool(epoch) == ranked[:k]
    pool_frames = frames_of(ds, ranked[:k])
    order = s0.global_order(epoch)
    assert sorted(order.tolist()) == sorted(pool_frames.tolist()), "the epoch's order is the pool's frames, once each"
    for s in samplers:
        s.set_epoch(epoch)
    shards = [s.indices(epoch) for s in samplers]
    n = order.size
    per = n // world_size if drop_last else -(-n // world_size)
    assert all(len(s) == per and sh.size == per for s, sh in zip(samplers, shards))
    union = np.concatenate(shards)
    if drop_last:
        assert np.unique(union).size == union.size, "no position on two ranks"
        assert set(union.tolist()) <= set(pool_frames.tolist())
    else:
        assert set(union.tolist()) == set(pool_frames.tolist()), "the ranks together cover the pool"
        assert union.size - np.unique(union).size == per * world_size - n, "duplicates are the padding only"
    # nested pools, all episodes from warmup_epochs on
    assert set(s0.pool(epoch)) <= set(s0.pool(epoch + 1))
    assert s0.pool(warmup) == ranked


@settings(max_examples=80, deadline=None)
@given(setup=setups(), seed=st.integers(0, 2**30), world_size=st.integers(1, 4), epoch=st.integers(0, 6),
       data=st.data())
def test_order_is_a_function_of_seed_epoch_rank_world_size(setup, seed, world_size, epoch, data):
    ds, scores, start, warmup, easy = setup
    rank = data.draw(st.integers(0, world_size - 1))
    a = make(ds, scores, start, warmup, easy, seed=seed, rank=rank, world_size=world_size)
    a.set_epoch(data.draw(st.integers(0, 9)))  # the sampler's own epoch does not change indices(epoch)
    got = a.indices(epoch)
    b = make(ds, dict(reversed(list(scores.items()))), start, warmup, easy, seed=seed, rank=rank,
             world_size=world_size)  # a fresh sampler, the same scores given in another order
    np.testing.assert_array_equal(got, b.indices(epoch))
    np.testing.assert_array_equal(got, a.indices(epoch))


def test_another_seed_or_epoch_reshuffles_within_the_pool():
    ds = FakeDataset([30] * 6)
    s = prf.CurriculumSampler(ds, list(range(6)), start=0.5, warmup_epochs=4)
    a, b = s.global_order(0), prf.CurriculumSampler(ds, list(range(6)), start=0.5, warmup_epochs=4, seed=1).global_order(0)
    assert sorted(a.tolist()) == sorted(b.tolist()) and not np.array_equal(a, b)
    assert s.pool(0) == [0, 1, 2] and s.pool(1) == [0, 1, 2, 3] and s.pool(4) == list(range(6))


def test_unshuffled_order_is_episodes_by_score_easy_first():
    ds = FakeDataset([3, 5, 2, 4, 1])
    scores = {0: 0.7, 1: -2.0, 2: 5.0, 3: 0.1, 4: 0.7}
    s = prf.CurriculumSampler(ds, scores, start=1.0, shuffle=False)
    np.testing.assert_array_equal(s.global_order(0), frames_of(ds, [1, 3, 0, 4, 2]))
    s = prf.CurriculumSampler(ds, scores, easy="high", start=1.0, shuffle=False)
    np.testing.assert_array_equal(s.global_order(0), frames_of(ds, [2, 0, 4, 3, 1]))
    s = prf.CurriculumSampler(ds, "length", start=0.4, warmup_epochs=3, shuffle=False)  # shortest first
    assert s.pool(0) == [4, 2]
    np.testing.assert_array_equal(s.global_order(0), frames_of(ds, [4, 2]))
    assert [s.pool_size(e) for e in range(5)] == [2, 3, 4, 5, 5]


def test_len_and_loader_batches_grow_with_the_epoch():
    ds = FakeDataset([10] * 8)
    s = prf.CurriculumSampler(ds, list(range(8)), start=0.25, warmup_epochs=3, world_size=2, rank=1)
    loader = prf.Loader(ds, 4, sampler=s)
    sizes = []
    for epoch in range(5):
        loader.set_epoch(epoch)
        n_batches = len(loader)
        batches = [b["index"] for b in loader]
        sizes.append(sum(b.size for b in batches))
        assert len(batches) == n_batches
        assert loader.epoch == epoch + 1 and len(loader) == -(-len(s.indices(epoch + 1)) // 4)
        got = np.concatenate(batches)
        np.testing.assert_array_equal(got, s.indices(epoch))
        eps = {int(x) // 10 for x in got}
        assert eps <= set(s.pool(epoch))
    assert sizes == [10, 20, 30, 40, 40]  # pool frames / 2 ranks: 2, 4, 6, 8, 8 episodes of 10


def test_scores_from_tables_and_sql(tmp_path):
    pa = pytest.importorskip("pyarrow")
    ds = FakeDataset([4, 4, 4])
    t = pa.table({"episode_index": [2, 0, 1, 7], "score": [0.0, 2.0, 1.0, -9.0]})  # episode 7: not selected
    assert prf.CurriculumSampler(ds, t, start=1.0).ranking == [2, 1, 0]
    t2 = pa.table({"episode_index": [0, 1, 2], "a": [1, 2, 3], "b": [3, 2, 1]})
    assert prf.CurriculumSampler(ds, t2, column="b", start=1.0).ranking == [2, 1, 0]
    with pytest.raises(SamplerError, match="column="):
        prf.CurriculumSampler(ds, t2)
    with pytest.raises(SamplerError, match="no column 'c'"):
        prf.CurriculumSampler(ds, t2, column="c")
    with pytest.raises(SamplerError, match=r"no score \(\[1\]\)"):
        prf.CurriculumSampler(ds, {0: 1.0, 2: 3.0})
    with pytest.raises(SamplerError, match="NaN"):
        prf.CurriculumSampler(ds, pa.table({"episode_index": [0, 1, 2], "s": [1.0, None, 2.0]}))
    with pytest.raises(SamplerError, match="3 selected episodes"):
        prf.CurriculumSampler(ds, [1.0, 2.0])
    with pytest.raises(SamplerError, match="start"):
        prf.CurriculumSampler(ds, [1, 2, 3], start=0)
    with pytest.raises(SamplerError, match="warmup_epochs"):
        prf.CurriculumSampler(ds, [1, 2, 3], warmup_epochs=-1)
    with pytest.raises(SamplerError, match="easy"):
        prf.CurriculumSampler(ds, [1, 2, 3], easy="hard")
    with pytest.raises(SamplerError, match="episodes-table column"):
        prf.CurriculumSampler(ds, "sharpness")


def test_real_dataset_scores_table_and_sql_result():
    """prf.score_episodes' table and a prf.sql result rank the real episodes as NumPy does."""
    pytest.importorskip("duckdb")
    path = dataset_path("so101_wrist_v30")
    ds = prf.open_dataset(path, cameras=[])
    table = prf.score_episodes(ds, cameras=[])
    col = "action_magnitude"
    s = prf.CurriculumSampler(ds, table, column=col, start=0.5, warmup_epochs=2, shuffle=False)
    vals = dict(zip(table["episode_index"].to_pylist(), table[col].to_pylist()))
    assert s.ranking == sorted(ds.episodes, key=lambda e: (vals[e], e))
    # the same ranking from NumPy over the frames: mean L2 norm of the action per episode
    action = ds.column("action").astype(np.float64)
    ep = ds.row_episode
    mags = {e: float(np.linalg.norm(action[ep == o], axis=1).mean()) for o, e in enumerate(ds.episodes)}
    assert s.ranking == sorted(ds.episodes, key=lambda e: (mags[e], e))
    res = prf.sql(path, "SELECT episode_index, count(*) AS n FROM frames GROUP BY episode_index")
    s2 = prf.CurriculumSampler(ds, res, easy="high", start=1.0)
    lengths = dict(zip(ds.episodes, ds.episode_lengths.tolist()))
    assert s2.ranking == sorted(ds.episodes, key=lambda e: (-lengths[e], e))


def test_state_dict_refuses_other_scores_or_schedule():
    ds = FakeDataset([3, 3, 3])
    a = prf.CurriculumSampler(ds, [1, 2, 3], start=0.5, warmup_epochs=2)
    a.set_epoch(1)
    state = json.loads(json.dumps(a.state_dict()))
    with pytest.raises(SamplerError, match="ranking_sha1"):
        prf.CurriculumSampler(ds, [3, 2, 1], start=0.5, warmup_epochs=2).load_state_dict(state)
    with pytest.raises(SamplerError, match="warmup_epochs"):
        prf.CurriculumSampler(ds, [1, 2, 3], start=0.5, warmup_epochs=3).load_state_dict(state)
    b = prf.CurriculumSampler(ds, {0: 1, 1: 2, 2: 3}, start=0.5, warmup_epochs=2)
    b.load_state_dict(state)
    assert b.epoch == 1 and len(b) == len(a)


@settings(max_examples=60, deadline=None)
@given(setup=setups(), num_samples=st.integers(1, 120), seed=st.integers(0, 1000), epoch=st.integers(0, 6),
       shuffle=st.booleans())
def test_num_samples_fixes_the_epoch_length_with_repeated_pool_orders(setup, num_samples, seed, epoch, shuffle):
    ds, scores, start, warmup, easy = setup
    s = make(ds, scores, start, warmup, easy, seed=seed, num_samples=num_samples, shuffle=shuffle)
    free = make(ds, scores, start, warmup, easy, seed=seed, shuffle=shuffle)
    order = s.global_order(epoch)
    pool = np.sort(frames_of(ds, s.pool(epoch)))
    assert order.size == num_samples and s.epoch_samples(epoch) == num_samples
    s.set_epoch(epoch)
    assert len(s) == num_samples
    p = pool.size
    for i in range(0, num_samples, p):  # each repetition is the pool once (the last one cut)
        part = order[i:i + p]
        assert np.unique(part).size == part.size and np.isin(part, pool).all()
    m = min(p, num_samples)
    np.testing.assert_array_equal(order[:m], free.global_order(epoch)[:m])  # the first repetition is the free order
    if not shuffle and num_samples > p:
        np.testing.assert_array_equal(order[p:2 * p], order[:min(p, num_samples - p)] if num_samples < 2 * p
                                      else order[:p])
    with pytest.raises(SamplerError, match="num_samples"):
        make(ds, scores, start, warmup, easy, num_samples=0)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=setups(), world_size=st.integers(1, 3), data=st.data(), batch_size=st.integers(1, 6),
       workers=st.integers(0, 2), seed=st.integers(0, 1000), drop_last=st.booleans(), epochs=st.integers(1, 4),
       num_samples=st.one_of(st.none(), st.integers(1, 60)))
def test_resume_at_any_batch_equals_uninterrupted(setup, world_size, data, batch_size, workers, seed, drop_last,
                                                  epochs, num_samples):
    ds, scores, start, warmup, easy = setup
    rank = data.draw(st.integers(0, world_size - 1), label="rank")

    def make_s():
        return make(ds, scores, start, warmup, easy, seed=seed, rank=rank, world_size=world_size,
                    num_samples=num_samples)

    def new_loader(w):
        s = make_s()
        return prf.Loader(ds, batch_size, sampler=s, num_workers=w, prefetch=2, drop_last=drop_last, seed=seed)

    ref = new_loader(0)
    lens = []
    for e in range(epochs):
        ref.set_epoch(e)
        lens.append(len(ref))
    if 0 in lens:
        return
    ref.set_epoch(0)
    total = sum(lens)
    full = take(ref, total)
    k = data.draw(st.integers(0, total), label="checkpoint after batch")
    a = new_loader(workers)
    first = take(a, k) if k else []
    state = json.loads(json.dumps(a.state_dict()))  # a checkpoint is plain JSON
    b = new_loader(workers)
    b.load_state_dict(state)
    rest = take(b, total - k) if total - k else []
    assert_same_batches(first + rest, full)
    # and the batches are the curriculum's: epoch e's batches hold the pool's frames of this rank
    at = 0
    for e, n in enumerate(lens):
        got = np.concatenate([bt["index"] for bt in full[at:at + n]])
        want = make_s().indices(e)
        np.testing.assert_array_equal(got, want[: got.size])
        at += n


def test_adapters_that_need_one_epoch_length_refuse_a_growing_curriculum():
    """Grain's index space is ``epoch * len + i``: a growing curriculum would be cut silently, so prf.jax
    refuses it (naming num_samples=), and takes it with a fixed num_samples, in the Loader's order."""
    from prf.sampling import require_fixed_length

    ds = FakeDataset([5] * 6)
    growing = prf.CurriculumSampler(ds, list(range(6)), start=0.5, warmup_epochs=2)
    assert not growing.fixed_length
    assert prf.CurriculumSampler(ds, list(range(6)), start=1.0).fixed_length
    with pytest.raises(SamplerError, match="num_samples=N"):
        require_fixed_length(growing, "x")
    pytest.importorskip("grain")
    import prf.jax as pj

    real = prf.open_dataset(dataset_path("so101_wrist_v30"), cameras=[])
    with pytest.raises(SamplerError, match="prf.jax"):
        pj.map_dataset(real, sampler=prf.CurriculumSampler(real, "length", start=0.5, warmup_epochs=2))
    fixed = prf.CurriculumSampler(real, "length", start=0.5, warmup_epochs=2, num_samples=40, seed=2)
    md = pj.map_dataset(real, sampler=fixed)
    assert len(md) == 40
    got = [int(md[i]["index"]) for i in range(80)]  # epochs 0 and 1 (.repeat() semantics: index e * len + i)
    want = np.concatenate([fixed.indices(0), fixed.indices(1)])
    np.testing.assert_array_equal(got, real.get_batch(want)["index"])


def test_torch_sampler_follows_each_epoch_length():
    pytest.importorskip("torch")
    import prf.torch as pt

    ds = FakeDataset([4] * 8)
    s = prf.CurriculumSampler(ds, list(range(8)), start=0.25, warmup_epochs=3, seed=5, rank=0, world_size=2)
    ts = pt.TorchSampler(s)
    for epoch in range(5):
        ts.set_epoch(epoch)
        got = list(ts)
        assert len(ts) == len(got) == s.pool_frames(epoch) // 2
        assert got == s.indices(epoch).tolist()


def test_elastic_resume_covers_the_rest_of_the_pool():
    """A curriculum epoch checkpointed on 2 ranks and resumed on 3 (elastic): the 3 ranks deliver exactly
    what the 2 had not, within the epoch's pool."""
    ds = FakeDataset([6] * 10)
    scores = list(range(10))
    mk = lambda r, w: prf.CurriculumSampler(ds, scores, start=0.5, warmup_epochs=2, seed=1, rank=r, world_size=w)
    loaders = [prf.Loader(ds, 4, sampler=mk(r, 2)) for r in range(2)]
    delivered = []
    states = []
    for ld in loaders:
        ld.set_epoch(1)
        it = iter(ld)
        delivered += [int(i) for _ in range(2) for i in next(it)["index"]]
        states.append(ld.state_dict())
    rest = []
    for r in range(3):
        ld = prf.Loader(ds, 4, sampler=mk(r, 3))
        ld.load_state_dict(states[0], elastic=True)
        for b in ld:
            rest += [int(i) for i in b["index"]]
        assert ld.epoch == 2
    pool = set(frames_of(ds, mk(0, 1).pool(1)).tolist())
    assert set(delivered) | set(rest) == pool and not set(delivered) & set(rest)


# ---- CurriculumWeightedSampler ---------------------------------------------------------------------
def expected_probabilities(ds, scores, easy, beta0, warmup, epoch):
    """The docstring's schedule, written out independently: p(frame) ∝ exp(-beta(e) u(rank of episode))."""
    sign = 1.0 if easy == "low" else -1.0
    ranked = sorted(ds.episodes, key=lambda e: (sign * scores[e], e))
    E = len(ranked)
    u = {e: r / max(E - 1, 1) for r, e in enumerate(ranked)}
    beta = 0.0 if warmup == 0 else beta0 * max(0.0, 1.0 - epoch / warmup)
    w = np.concatenate([np.full(int(n), np.exp(-beta * u[e])) for e, n in zip(ds.episodes, ds.episode_lengths)])
    return w / w.sum()


@settings(max_examples=100, deadline=None)
@given(setup=setups(), beta0=st.sampled_from([0.0, 1.0, 3.0, 6.5]), epoch=st.integers(0, 7), seed=st.integers(0, 2**30),
       world_size=st.integers(1, 4), drop_last=st.booleans(), num_samples=st.one_of(st.none(), st.integers(1, 90)))
def test_weighted_curriculum_schedule_shards_and_purity(setup, beta0, epoch, seed, world_size, drop_last, num_samples):
    ds, scores, _start, warmup, easy = setup
    mk = lambda r: prf.CurriculumWeightedSampler(ds, scores, easy=easy, beta0=beta0, warmup_epochs=warmup, seed=seed,
                                                rank=r, world_size=world_size, drop_last=drop_last,
                                                num_samples=num_samples)
    s = mk(0)
    np.testing.assert_allclose(s.probabilities(epoch), expected_probabilities(ds, scores, easy, beta0, warmup, epoch),
                               rtol=1e-12)
    if epoch >= warmup:
        np.testing.assert_allclose(s.probabilities(epoch), 1.0 / len(ds))
    order = s.global_order(epoch)
    n = len(ds) if num_samples is None else num_samples
    assert order.size == n and s.fixed_length
    shards = [mk(r).indices(epoch) for r in range(world_size)]
    per = n // world_size if drop_last else -(-n // world_size)
    assert all(sh.size == per == len(mk(r)) for r, sh in enumerate(shards))
    padded = order[np.arange(per * world_size) % n]  # DistributedSampler's padding / drop_last
    for r, sh in enumerate(shards):
        np.testing.assert_array_equal(sh, padded[r::world_size])
    other = mk(0)
    other.set_epoch(epoch + 3)
    np.testing.assert_array_equal(other.indices(epoch), s.indices(epoch))  # a pure function of the four


def test_weighted_curriculum_draws_favour_easy_episodes_then_even_out():
    ds = FakeDataset([50, 50])
    s = prf.CurriculumWeightedSampler(ds, {0: 2.0, 1: 1.0}, beta0=3.0, warmup_epochs=4, num_samples=20000, seed=0)
    share = lambda e: float(np.mean(s.global_order(e) >= 50))  # episode 1 (score 1.0) is the easy one
    assert abs(share(0) - np.exp(3) / (1 + np.exp(3))) < 0.01
    assert abs(share(2) - np.exp(1.5) / (1 + np.exp(1.5))) < 0.01
    assert abs(share(4) - 0.5) < 0.015 and abs(share(9) - 0.5) < 0.015
    with pytest.raises(SamplerError, match="beta0"):
        prf.CurriculumWeightedSampler(ds, [1, 2], beta0=-1)
    with pytest.raises(SamplerError, match="num_samples"):
        prf.CurriculumWeightedSampler(ds, [1, 2], num_samples=0)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=setups(), world_size=st.integers(1, 3), data=st.data(), batch_size=st.integers(1, 6),
       workers=st.integers(0, 2), seed=st.integers(0, 1000), drop_last=st.booleans(), epochs=st.integers(1, 3))
def test_weighted_curriculum_resumes_exactly(setup, world_size, data, batch_size, workers, seed, drop_last, epochs):
    ds, scores, _start, warmup, easy = setup
    rank = data.draw(st.integers(0, world_size - 1), label="rank")

    def new_loader(w):
        s = prf.CurriculumWeightedSampler(ds, scores, easy=easy, warmup_epochs=warmup, seed=seed, rank=rank,
                                          world_size=world_size)
        return prf.Loader(ds, batch_size, sampler=s, num_workers=w, prefetch=2, drop_last=drop_last, seed=seed)

    ref = new_loader(0)
    if len(ref) == 0:
        return
    total = epochs * len(ref)
    full = take(ref, total)
    k = data.draw(st.integers(0, total), label="checkpoint after batch")
    a = new_loader(workers)
    first = take(a, k) if k else []
    state = json.loads(json.dumps(a.state_dict()))
    b = new_loader(workers)
    b.load_state_dict(state)
    rest = take(b, total - k) if total - k else []
    assert_same_batches(first + rest, full)
