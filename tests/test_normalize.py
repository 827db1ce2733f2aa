"""Normalization with the dataset's stats: over an epoch, normalized batches have the expected
mean/std (mean_std) and range (min_max, quantiles); LeRobot's formulas; clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import prf
from prf.errors import StatsError

from conftest import dataset_path


def _epoch(batches, key):
    return np.concatenate([b[key] for b in batches])


@pytest.fixture(scope="module")
def pusht():
    return prf.open_dataset(dataset_path("pusht_sim_v30"), cameras=[])


def test_normalized_epoch_has_the_expected_moments(pusht):
    loader = pusht.loader(64, shuffle=True, seed=0, num_workers=2, normalize={
        "observation.state": "mean_std", "action": "min_max", "next.reward": "quantiles",
        "timestamp": "quantile10"})
    batches = list(loader)  # one epoch
    state, action = _epoch(batches, "observation.state"), _epoch(batches, "action")
    assert state.dtype == action.dtype == np.float32 and state.shape == (len(pusht), 2)
    # the stats are the dataset's own: one epoch is exactly standardised / mapped onto [-1, 1]
    np.testing.assert_allclose(state.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(state.std(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(action.min(0), -1.0, atol=1e-6)
    np.testing.assert_allclose(action.max(0), 1.0, atol=1e-6)
    # quantile modes map q10 -> -1, q90 -> +1 (LeRobot's stored quantiles are count-weighted means of
    # per-episode quantiles, so the share of frames beyond them is only roughly 10%)
    ts = _epoch(batches, "timestamp")
    raw_b = list(pusht.loader(64, shuffle=True, seed=0))
    raw_ts = np.concatenate([b["timestamp"] for b in raw_b])
    q = pusht.stats()["timestamp"]
    np.testing.assert_allclose(ts, 2 * (raw_ts - q["q10"]) / (q["q90"] - q["q10"]) - 1, rtol=1e-5, atol=1e-5)
    assert 0.05 < (ts < -1).mean() < 0.15 and 0.05 < (ts > 1).mean() < 0.15
    raw = np.concatenate([b["observation.state"] for b in raw_b])
    st = pusht.stats()["observation.state"]
    np.testing.assert_allclose(state, (raw - st["mean"]) / (st["std"] + 1e-8), rtol=1e-5, atol=1e-5)


def test_normalize_with_windows_and_given_stats(pusht):
    ds = prf.open_dataset(dataset_path("pusht_sim_v30"), cameras=[],
                          delta_timestamps={"action": [0.0, 0.1, 0.2]})
    stats = {"action": {"mean": [100.0, 200.0], "std": [10.0, 20.0]}}
    b = next(iter(ds.loader(8, normalize={"action": "MEAN_STD"}, stats=stats)))
    raw = ds.get_batch(np.arange(8))["action"]
    assert b["action"].shape == (8, 3, 2)
    np.testing.assert_allclose(b["action"], (raw - [100.0, 200.0]) / (np.array([10.0, 20.0]) + 1e-8), rtol=1e-6)
    np.testing.assert_array_equal(b["action_is_pad"], ds.get_batch(np.arange(8))["action_is_pad"])


def test_camera_normalization_uses_channel_stats_on_0_1_scale():
    ds = prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[0])
    mean, std = np.array([0.5, 0.4, 0.3]), np.array([0.2, 0.25, 0.1])
    stats = {"observation.image": {"mean": mean.reshape(3, 1, 1).tolist(), "std": std.reshape(3, 1, 1).tolist()}}
    b = next(iter(ds.loader(4, normalize={"observation.image": "mean_std"}, stats=stats)))
    raw = ds.get_batch(np.arange(4))["observation.image"]
    assert b["observation.image"].dtype == np.float32 and b["observation.image"].shape == raw.shape
    np.testing.assert_allclose(b["observation.image"], (raw / 255.0 - mean) / (std + 1e-8), rtol=1e-5, atol=1e-5)


def test_formulas_and_inverse():
    stats = {"a": {"min": [0.0, 5.0], "max": [10.0, 5.0], "mean": [1.0, 2.0], "std": [2.0, 0.0],
                   "q01": [1.0, 1.0], "q99": [3.0, 1.0]}}
    x = np.array([[0.0, 5.0], [10.0, 6.0], [5.0, 5.0]], dtype=np.float32)
    mm = prf.Normalizer({"a": "min_max"}, stats)
    y = mm.normalize("a", x)
    np.testing.assert_allclose(y[:, 0], [-1.0, 1.0, 0.0])
    np.testing.assert_allclose(y[[0, 2], 1], [-1.0, -1.0])  # max == min: LeRobot divides by eps, min -> -1
    np.testing.assert_allclose(mm.unnormalize("a", y)[:, 0], x[:, 0], atol=1e-5)
    ms = prf.Normalizer({"a": "mean_std"}, stats)
    np.testing.assert_allclose(ms.unnormalize("a", ms.normalize("a", x))[:, 0], x[:, 0], rtol=1e-6)
    q = prf.Normalizer({"a": "quantiles"}, stats).normalize("a", x)
    np.testing.assert_allclose(q[:, 0], 2 * (x[:, 0] - 1.0) / 2.0 - 1.0)
    ident = prf.Normalizer({"a": "identity"}, {}).normalize("a", x)
    np.testing.assert_array_equal(ident, x)


def test_errors(pusht):
    with pytest.raises(StatsError, match="unknown mode"):
        pusht.loader(4, normalize={"action": "zscore"})
    with pytest.raises(StatsError, match="no statistics for 'nope'"):
        prf.Normalizer({"nope": "mean_std"}, pusht.stats())
    v21 = prf.open_dataset(dataset_path("pusht_sim_v21"), cameras=[])  # LeRobot 0.3.3 stored no quantiles
    with pytest.raises(StatsError, match=r"\['q01', 'q99'\] are missing"):
        v21.loader(4, normalize={"action": "quantiles"})
    n = prf.Normalizer({"action": "mean_std"}, {"action": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}})
    with pytest.raises(StatsError, match="do not broadcast"):
        n({"action": np.zeros((4, 2), np.float32)})
    with pytest.raises(StatsError, match="does not have"):
        n({"state": np.zeros((4, 3))})
