"""Parity with LeRobot: prf's samples at the oracle's indices, with the oracle's delta_timestamps,
equal LeRobot's own ``__getitem__`` output stored in ../shared/data/lerobot/*/oracle.npz.

Non-image arrays and ``*_is_pad`` must be bit-equal; frames within the tolerance of
../shared/data/README.md (mean |diff| <= 0.5 and max |diff| <= 8 per frame, on 0-255), and the largest
difference seen is reported.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import prf
from conftest import ORACLE_DATASETS, dataset_path

SKIP_KEYS = {"indices", "dataset_position"}


def _load(name):
    root = dataset_path(name)
    oj = json.loads((root / "oracle.json").read_text())
    o = np.load(root / "oracle.npz")
    ds = prf.open_dataset(root, delta_timestamps=oj["delta_timestamps"], episodes=oj.get("episodes_filter"))
    return ds, o


@pytest.mark.parametrize("name", ORACLE_DATASETS)
def test_batch_equals_lerobot(name, record_property):
    ds, o = _load(name)
    batch = ds.get_batch(o["indices"])
    checked = 0
    for key in o.files:
        if key in SKIP_KEYS or "@" in key or key.startswith("lerobot0"):
            continue
        ref = o[key]
        if key == "task":
            assert list(batch["task"]) == ref.tolist()
        elif key in ds.cameras:
            got = batch[key].transpose(0, 1, 4, 2, 3)  # prf [B,T,H,W,C] -> oracle [B,T,C,H,W]
            assert got.shape == ref.shape and got.dtype == np.uint8
            diff = np.abs(got.astype(np.int16) - ref.astype(np.int16))
            per_frame_mean = diff.reshape(diff.shape[0] * diff.shape[1], -1).mean(axis=1)
            print(f"{name} {key}: max |diff| {diff.max()}, worst frame mean |diff| {per_frame_mean.max():.4f}")
            record_property(f"{key}_max_abs_diff", int(diff.max()))
            assert diff.max() <= 8 and per_frame_mean.max() <= 0.5
        else:
            got = batch[key]
            assert got.dtype == ref.dtype, (key, got.dtype, ref.dtype)
            assert got.shape == ref.shape, (key, got.shape, ref.shape)
            assert np.array_equal(got, ref), key  # bit-equal (float32 included)
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("name", ["pusht_sim_v30", "g1_cam_high_v21_subset"])
def test_getitem_equals_batch_row(name):
    """ds[i] is the same sample as row i of a batch (single-item and batched paths agree)."""
    ds, o = _load(name)
    idx = o["indices"][:6]
    batch = ds.get_batch(idx)
    for j, i in enumerate(idx):
        item = ds[int(i)]
        assert set(item) == set(batch)
        for k, v in item.items():
            if k == "task":
                assert v == batch["task"][j]
            else:
                assert np.array_equal(v, batch[k][j]), k


def test_query_timestamps_match_lerobot():
    """The in-episode timestamps prf decodes at are LeRobot's (``<cam>@query_ts``)."""
    ds, o = _load("aloha_multicam_v30")
    pos = o["indices"]
    ep = ds.row_episode[pos]
    start, length = ds.episode_starts[ep], ds.episode_lengths[ep]
    from prf.windows import window_rows

    for cam in ds.cameras:
        rows, _ = window_rows(pos - start, start, length, ds.delta_indices[cam])
        got = ds.column("timestamp")[rows].astype(np.float64)
        assert np.array_equal(got, o[cam + "@query_ts"])


@pytest.mark.parametrize("name", ["pusht_sim_v30", "aloha_multicam_v30", "g1_cam_high_v21_subset"])
def test_torchcodec_backend_equals_lerobot(name):
    """The optional torchcodec backend gives the same bit-exact frames (skips where it is not installed)."""
    from prf.decode import torchcodec_available

    if not torchcodec_available():
        pytest.skip("torchcodec (and the system FFmpeg libraries) not installed")
    root = dataset_path(name)
    oj = json.loads((root / "oracle.json").read_text())
    o = np.load(root / "oracle.npz")
    ds = prf.open_dataset(root, delta_timestamps=oj["delta_timestamps"], episodes=oj.get("episodes_filter"),
                          backend="torchcodec")
    assert ds.backend.name == "torchcodec"
    batch = ds.get_batch(o["indices"])
    for cam in ds.cameras:
        assert np.array_equal(batch[cam].transpose(0, 1, 4, 2, 3), o[cam]), cam
