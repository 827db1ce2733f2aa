"""Elastic resume: a checkpoint taken with one world size resumes with another
(``Loader.load_state_dict(state, elastic=True)``): every sample of the epoch is delivered once in
all (up to the pad/drop policy), none twice, and the epochs after it are the new world size's own.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prf
from prf.errors import SamplerError
from prf.sampling import undelivered

from _fake import FakeDataset
from test_resume import take
from test_sampler import make_sampler

# samplers whose epoch order is a permutation of the selection (no sample twice by design)
PERMUTING = ["sequential", "shuffle", "filtered_shuffle", "predicate", "chunk"]


def _loader(ds, kind, rank, world_size, batch_size, *, seed=5, drop_last=False, workers=0):
    s = make_sampler(kind, ds, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last, chunk_size=3)
    return prf.Loader(ds, batch_size, sampler=s, num_workers=workers)


def _positions(batches) -> list[int]:
    return [int(i) for b in batches for i in b["index"]]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=st.lists(st.integers(1, 20), min_size=1, max_size=7), kind=st.sampled_from(PERMUTING),
       old_ws=st.integers(1, 4), new_ws=st.integers(1, 4), batch_size=st.integers(1, 6), data=st.data(),
       workers=st.integers(0, 2))
def test_elastic_resume_delivers_the_rest_of_the_epoch_once(lengths, kind, old_ws, new_ws, batch_size, data,
                                                            workers):
    ds = FakeDataset(lengths)
    old = [_loader(ds, kind, r, old_ws, batch_size) for r in range(old_ws)]
    per_rank = len(old[0])
    if per_rank == 0:
        return
    k = data.draw(st.integers(0, per_rank), label="batches delivered per rank before the checkpoint")
    before = [p for lo in old for p in _positions(take(lo, k) if k else [])]
    state = json.loads(json.dumps(old[0].state_dict()))

    new = [_loader(ds, kind, r, new_ws, batch_size, workers=workers) for r in range(new_ws)]
    after = []
    for lo in new:
        lo.load_state_dict(state, elastic=True)
        n = len(lo)
        rest = list(lo)  # one pass: the rest of the epoch
        after += _positions(rest)
        assert lo.epoch == 1
        assert len(rest) == (n - k if new_ws == old_ws else n)  # len() counts the re-sharded epoch

    selection = set(make_sampler(kind, ds, chunk_size=3).indices(0).tolist())
    # together: the whole selection, and nothing outside it
    assert set(before) | set(after) == selection
    # nothing delivered twice but padding: at most world_size - 1 per sharding
    if new_ws != old_ws:
        assert not (set(after) & set(before))  # re-sharded: only what no rank had delivered
    extra = sum(c - 1 for c in Counter(before + after).values())
    assert extra <= (old_ws - 1) + (new_ws - 1)

    # the next epoch is the new world size's ordinary epoch 1
    for r, lo in enumerate(new):
        fresh = _loader(ds, kind, r, new_ws, batch_size)
        fresh.set_epoch(1)
        assert [b.tolist() for b in lo.batch_indices()] == [b.tolist() for b in fresh.batch_indices()]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=st.lists(st.integers(1, 20), min_size=1, max_size=6), kind=st.sampled_from(PERMUTING),
       ws1=st.integers(1, 4), ws2=st.integers(1, 4), batch_size=st.integers(1, 5), data=st.data())
def test_checkpoint_during_an_elastic_epoch_resumes_exactly(lengths, kind, ws1, ws2, batch_size, data):
    """A second checkpoint, inside the re-sharded epoch, resumes it batch for batch (same world size)."""
    ds = FakeDataset(lengths)
    first = _loader(ds, kind, 0, ws1, batch_size)
    if len(first) == 0:
        return
    k1 = data.draw(st.integers(0, len(first)), label="k1")
    take(first, k1) if k1 else None
    state1 = first.state_dict()
    rank = data.draw(st.integers(0, ws2 - 1), label="rank")
    ref = _loader(ds, kind, rank, ws2, batch_size)
    ref.load_state_dict(state1, elastic=True)
    full = list(ref)
    n = len(full)
    k2 = data.draw(st.integers(0, n), label="k2")
    a = _loader(ds, kind, rank, ws2, batch_size)
    a.load_state_dict(state1, elastic=True)
    part = take(a, k2) if k2 else []
    state2 = json.loads(json.dumps(a.state_dict()))
    b = _loader(ds, kind, rank, ws2, batch_size, workers=2)
    b.load_state_dict(state2)  # same world size: an ordinary resume, carrying the elastic history
    rest = list(b)
    assert _positions(part + rest) == _positions(full)


def test_another_world_size_without_elastic_is_refused():
    ds = FakeDataset([10, 12, 7])
    a = _loader(ds, "shuffle", 0, 2, 4)
    take(a, 2)
    b = _loader(ds, "shuffle", 0, 3, 4)
    with pytest.raises(SamplerError, match="elastic=True"):
        b.load_state_dict(a.state_dict())


def test_undelivered_by_hand():
    order = np.array([10, 11, 12, 13, 14, 15, 16])
    # 2 ranks, strided, padded to 8: rank 0 -> 10 12 14 16, rank 1 -> 11 13 15 10(pad); 2 taken each
    np.testing.assert_array_equal(undelivered(order, [(2, 2)], "strided", False), [14, 15, 16])
    # 3 taken each: rank 1's third is 15, rank 0's third is 14
    np.testing.assert_array_equal(undelivered(order, [(2, 3)], "strided", False), [16])
    # blocked: rank 0 -> 10 11 12 13, rank 1 -> 14 15 16 10(pad)
    np.testing.assert_array_equal(undelivered(order, [(2, 1)], "blocked", False), [11, 12, 13, 15, 16])
    # two segments: then 3 ranks over [14, 15, 16], one each -> nothing left
    np.testing.assert_array_equal(undelivered(order, [(2, 2), (3, 1)], "strided", False), [])
