"""Issue #11 items 5 and 7: a malformed or foreign resume state is a typed prf error naming what is
wrong (prf.errors.ResumeError, a SamplerError and ValueError), never silently other batches, never a
KeyError / AttributeError. Also the option dataclasses' validation (issue #10 item 5)."""

from __future__ import annotations

import dataclasses
import json

import pytest

import prf
from prf.errors import OptionsError, PrfError, ResumeError, SamplerError
from prf.loading.options import DecodeOptions, ReadOptions, ShardOptions

from _fake import FakeDataset


@pytest.fixture
def ds():
    return FakeDataset([10, 12, 7])


def _state(ds, **changes):
    a = prf.Loader(ds, 4, shuffle=True, seed=3)
    it = iter(a)
    next(it), next(it)
    state = a.state_dict()
    assert state["batches_delivered"] == 2
    state.update(changes)
    return state


def _without(state, key):
    return {k: v for k, v in state.items() if k != key}


CASES = {
    "negative batches_delivered": (lambda s: {**s, "batches_delivered": -1}, r"batches_delivered must be >= 0, got -1"),
    "too large batches_delivered": (lambda s: {**s, "batches_delivered": 8}, r"batches_delivered=8, but epoch 0 has only 8|batches_delivered=9"),
    "empty dict": (lambda s: {}, r"lacks key\(s\) \['epoch', 'batches_delivered', 'batch_size', 'seed', 'sampler'\]"),
    "missing sampler": (lambda s: _without(s, "sampler"), r"lacks key\(s\) \['sampler'\]"),
    "missing epoch": (lambda s: _without(s, "epoch"), r"lacks key\(s\) \['epoch'\]"),
    "json string": (lambda s: json.dumps(s), r"from a str: .*json.loads"),
    "sampler None": (lambda s: {**s, "sampler": None}, r"state\['sampler'\] must be the sampler's state dict, got None"),
    "negative epoch": (lambda s: {**s, "epoch": -2}, r"epoch must be >= 0, got -2"),
    "epoch not an int": (lambda s: {**s, "epoch": "1"}, r"epoch must be an int, got '1'"),
    "different batch size": (lambda s: {**s, "batch_size": 5}, r"batch_size=5, this loader has batch_size=4"),
    "list instead of dict": (lambda s: list(s.items()), r"must be a dict from state_dict\(\), got list"),
    "bad elastic_segments": (lambda s: {**s, "elastic_segments": [[2]]}, r"elastic_segments must be a list of \[world_size, samples\]"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_state_is_a_typed_error(ds, case):
    make, match = CASES[case]
    good = _state(ds)
    if case == "too large batches_delivered":
        n = len(prf.Loader(ds, 4, shuffle=True, seed=3))  # 8 batches of 4 over 29 samples
        bad = {**good, "batches_delivered": n + 1}
        match = rf"batches_delivered={n + 1}, but epoch 0 has only {n} batches"
    else:
        bad = make(good)
    loader = prf.Loader(ds, 4, shuffle=True, seed=3)
    before = loader.state_dict()
    with pytest.raises(ResumeError, match=match) as info:
        loader.load_state_dict(bad)
    assert isinstance(info.value, (SamplerError, ValueError, PrfError))
    assert loader.state_dict() == before  # a refused state changes nothing
    with pytest.raises(ResumeError, match=match):  # the iterator validates the same way
        iter(loader).reset(bad)


def test_batches_delivered_at_the_epoch_end_is_accepted(ds):
    loader = prf.Loader(ds, 4, shuffle=True, seed=3)
    n = len(loader)
    state = {**_state(ds), "batches_delivered": n}
    loader.load_state_dict(state)
    assert list(loader) == [] and loader.epoch == 1


def test_another_sampler_kind_is_a_sampler_error(ds):
    state = _state(ds)
    other = prf.Loader(ds, 4, sampler=prf.SequentialSampler(len(ds), rank=0, world_size=1))
    with pytest.raises(SamplerError, match="ShuffleSampler"):
        other.load_state_dict(state)


# ---- options -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda: ReadOptions(batch_size=0), r"batch_size must be >= 1, got 0"),
    (lambda: ReadOptions(batch_size=2.5), r"batch_size must be an int >= 1, got 2.5"),
    (lambda: ReadOptions(shuffle="yes"), r"shuffle must be True or False, got 'yes'"),
    (lambda: ShardOptions(shard_mode="random"), r"shard_mode must be one of \('strided', 'blocked'\) or None, got 'random'"),
    (lambda: ShardOptions(rank=2, world_size=2), r"rank must be in 0 .. world_size - 1 = 1, got 2"),
    (lambda: DecodeOptions(num_workers=-1), r"num_workers must be >= 0, got -1"),
    (lambda: DecodeOptions(prefetch=0), r"prefetch must be >= 1, got 0"),
    (lambda: DecodeOptions(decode_window=0), r"decode_window must be >= 1 or None, got 0"),
])
def test_options_list_allowed_values(make, match):
    with pytest.raises(OptionsError, match=match):
        make()


def test_options_are_frozen_slotted_and_shared_with_keywords(ds):
    opts = DecodeOptions(num_workers=2, prefetch=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.num_workers = 3
    assert not hasattr(opts, "__dict__")
    a = prf.Loader(ds, read=ReadOptions(batch_size=4, shuffle=True, seed=3), decode=opts)
    b = prf.Loader(ds, 4, shuffle=True, seed=3, num_workers=2, prefetch=1)
    assert (a.read, a.decode, a.shard) == (b.read, b.decode, b.shard)
    assert [x.tolist() for x in a.batch_indices()] == [x.tolist() for x in b.batch_indices()]
    # a keyword may complete an option object, not contradict it
    assert prf.Loader(ds, 4, read=ReadOptions(shuffle=True)).batch_size == 4
    with pytest.raises(OptionsError, match="batch_size given both"):
        prf.Loader(ds, 4, read=ReadOptions(batch_size=8))
    with pytest.raises(OptionsError, match="batch_size must be >= 1"):
        prf.Loader(ds, 0)
    blocked = prf.Loader(ds, 4, shard=ShardOptions(rank=1, world_size=2, shard_mode="blocked"))
    assert blocked.sampler.shard_mode == "blocked" and blocked.sampler.rank == 1
    assert blocked.batch_indices()[0].tolist() == [15, 16, 17, 18]
