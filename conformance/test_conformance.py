"""One suite, every adapter: the same dataset and (seed, epoch, rank, world_size) must give the same
samples, in the same order, with the documented shapes and dtypes, windows and pads, disjoint and
covering rank shards, and an exact resume mid-epoch (see _harness.py for how each adapter is driven)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from _harness import DATASETS, HARNESSES, Cfg, Harness, _jax_int64, open_conf, reference, reference_indices


@pytest.fixture(params=HARNESSES, ids=lambda h: h.name)
def harness(request) -> Harness:
    h: Harness = request.param
    h.require()
    if h.int64_as == "jax":
        h.int64_as = _jax_int64()
    return h


@pytest.fixture(params=DATASETS)
def dataset_name(request) -> str:
    return request.param


def documented_shape(ds, key: str, batch: int) -> tuple[int, ...]:
    """The shape prf documents for a batch key: ``[B, (T,) *feature shape]``; cameras ``[B, (T,) H, W, 3]``;
    ``{key}_is_pad`` ``[B, T]``; ``task`` ``[B]``."""
    if key.endswith("_is_pad"):
        return (batch, len(ds.delta_timestamps[key[: -len("_is_pad")]]))
    feat = ds.meta.features.get(key)
    window = (len(ds.delta_timestamps[key]),) if key in ds.delta_timestamps else ()
    if key in ds.meta.camera_keys:
        h, w = feat.shape[:2] if feat.shape[-1] == 3 else feat.shape[1:]
        return (batch, *window, h, w, 3)
    shape = tuple(feat.shape) if feat is not None else ()
    return (batch, *window, *(() if shape == (1,) else shape))


def assert_same(h: Harness, ds, got: list[dict[str, Any]], ref: list[dict[str, Any]]) -> None:
    assert len(got) == len(ref), f"{h.name}: {len(got)} batches, expected {len(ref)}"
    for k, (g, r) in enumerate(zip(got, ref)):
        assert set(g) == set(r), f"{h.name} batch {k}: keys differ: {set(g) ^ set(r)}"
        for key, rv in r.items():
            gv = g[key]
            if key == "task":
                assert h.task_list(gv) == rv, f"{h.name} batch {k}: task differs"
                continue
            assert h.is_native(gv), f"{h.name} batch {k} {key!r}: {type(gv)} is not the framework's array"
            want_dtype = h.int64_as if rv.dtype == np.int64 else str(rv.dtype)
            assert h.dtype_name(gv) == want_dtype, f"{h.name} {key!r}: dtype {h.dtype_name(gv)}, expected {want_dtype}"
            arr = h.to_numpy(gv)
            assert arr.shape == rv.shape == documented_shape(ds, key, rv.shape[0]), (
                f"{h.name} {key!r}: shape {arr.shape}, reference {rv.shape}")
            if rv.dtype == np.uint8:  # frames: byte-equal
                assert arr.tobytes() == rv.tobytes(), f"{h.name} batch {k} {key!r}: frames differ"
            else:
                assert np.array_equal(arr, rv), f"{h.name} batch {k} {key!r}: values differ"


def test_order_values_shapes_dtypes(harness, dataset_name):
    """Shuffled, epoch 1, rank 1 of 2: identical samples in identical order, native arrays, dtypes/shapes."""
    ds = open_conf(dataset_name)
    cfg = Cfg(batch_size=3, shuffle=True, seed=7, epoch=1, rank=1, world_size=2)
    assert_same(harness, ds, harness.run(ds, cfg, count=2), reference(ds, cfg, count=2))


def test_windows_and_pads(harness, dataset_name):
    """A batch across episode boundaries: windows clamp to the sample's episode and ``*_is_pad`` marks
    the clamped steps (LeRobot's semantics), checked from the raw columns, not only against the reference."""
    ds = open_conf(dataset_name)
    s1, s2 = (int(x) for x in ds.episode_starts[1:3])
    n = len(ds)
    order = np.array([s1 - 3, s1 - 2, s1 - 1, s1, s1 + 1, n - 1, 0, s2], dtype=np.int64)
    cfg = Cfg(batch_size=4, order=order)
    got = harness.run(ds, cfg)
    assert_same(harness, ds, got, reference(ds, cfg))
    fps = ds.meta.fps
    lengths = dict(zip(ds.episodes, ds.episode_lengths.tolist()))
    saw_past = saw_future = False
    for b in got:
        frame = harness.to_numpy(b["frame_index"]).astype(np.int64)
        length = np.array([lengths[int(e)] for e in harness.to_numpy(b["episode_index"])])
        index = harness.to_numpy(b["index"]).astype(np.int64)
        pos = np.searchsorted(ds.column("index"), index)
        for key, deltas in ds.delta_timestamps.items():
            off = np.round(np.asarray(deltas) * fps).astype(np.int64)
            target = frame[:, None] + off[None, :]
            want_pad = (target < 0) | (target >= length[:, None])
            pad = harness.to_numpy(b[f"{key}_is_pad"])
            assert np.array_equal(pad, want_pad), f"{harness.name}: {key}_is_pad wrong"
            saw_past |= bool((want_pad & (off < 0)).any())
            saw_future |= bool((want_pad & (off > 0)).any())
            rows = pos[:, None] - frame[:, None] + np.clip(target, 0, length[:, None] - 1)
            val = harness.to_numpy(b[key])
            if key in ds.cameras:  # a clamped step repeats the frame it is clamped to
                zero = int(np.flatnonzero(off == 0)[0])
                for i, t in zip(*np.nonzero(want_pad)):
                    assert val[i, t].tobytes() == val[i, zero].tobytes()
            else:
                assert np.array_equal(val, ds.column(key)[rows]), f"{harness.name}: {key} window values wrong"
    assert saw_past and saw_future


def test_sharding_disjoint_and_covering(harness, dataset_name):
    """4 ranks over a whole epoch: each rank gets exactly its shard in prf's order; shards are equal in
    length, cover every sample, and overlap only by the DistributedSampler-style padding."""
    ds = open_conf(dataset_name, cameras=False)
    ws, n = 4, len(ds)
    index_col = ds.column("index")
    seen: list[np.ndarray] = []
    for rank in range(ws):
        cfg = Cfg(batch_size=64, shuffle=True, seed=1, epoch=2, rank=rank, world_size=ws)
        got = harness.run(ds, cfg)
        idx = np.concatenate([harness.to_numpy(b["index"]).astype(np.int64) for b in got])
        assert np.array_equal(idx, index_col[reference_indices(ds, cfg)]), f"{harness.name}: rank {rank} order"
        seen.append(idx)
    assert len({s.size for s in seen}) == 1
    allseen = np.concatenate(seen)
    assert set(allseen.tolist()) == set(index_col.tolist())
    pad = -(-n // ws) * ws - n
    assert allseen.size == n + pad
    assert sum(c - 1 for c in Counter(allseen.tolist()).values()) == pad


def test_resume_mid_epoch(harness, dataset_name, tmp_path):
    """Deliver 2 batches, save the framework's state, restore into fresh objects: the next batches are
    exactly batches 2 and 3 of the epoch (nothing repeated or skipped)."""
    ds = open_conf(dataset_name)
    cfg = Cfg(batch_size=2, shuffle=True, seed=5, epoch=3)
    got = harness.run(ds, cfg, count=2, resume_after=2, tmp_path=tmp_path)
    assert_same(harness, ds, got, reference(ds, cfg, start=2, count=2))
