"""Statistics: ``ds.stats()`` returns what the datasets store (v3.0 stats.json and per-episode
columns, v2.1 episodes_stats.jsonl), aggregated over a selection as LeRobot does; ``prf.compute_stats``
on copies with every stored stat stripped reproduces them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import prf
from prf.errors import StatsError
from prf.stats import HISTOGRAM_BINS, histogram_quantiles, lerobot_sample_indices

from conftest import DATASETS, dataset_path, present_episodes

EPS32 = float(np.finfo(np.float32).eps)


def _stored_per_episode(name: str) -> dict[int, dict]:
    """Per-episode stats read straight from the files (independently of prf.stats)."""
    root = dataset_path(name)
    out: dict[int, dict] = {}
    jsonl = root / "meta" / "episodes_stats.jsonl"
    if jsonl.is_file():
        for line in jsonl.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                out[row["episode_index"]] = row["stats"]
        return out
    for f in sorted((root / "meta" / "episodes").rglob("*.parquet")):
        for row in pq.read_table(f).to_pylist():
            d: dict = {}
            for c, v in row.items():
                if c.startswith("stats/") and v is not None:
                    _, key, stat = c.split("/", 1)[0], *c.split("/", 1)[1].rsplit("/", 1)
                    d.setdefault(key, {})[stat] = v
            out[row["episode_index"]] = d
    return out


def _lerobot_aggregate(eps: list[dict]) -> dict:
    """LeRobot's aggregate_stats formulas, written out plainly."""
    out = {}
    for key in eps[0]:
        parts = [e[key] for e in eps]
        n = np.array([p["count"][0] for p in parts], dtype=np.float64)
        stack = {s: np.stack([np.asarray(p[s], dtype=np.float64) for p in parts]) for s in parts[0] if s != "count"}
        w = (n / n.sum()).reshape((-1,) + (1,) * (stack["mean"].ndim - 1))
        mean = (stack["mean"] * w).sum(0)
        out[key] = {
            "mean": mean,
            "std": np.sqrt(((stack["std"] ** 2 + (stack["mean"] - mean) ** 2) * w).sum(0)),
            "min": stack["min"].min(0), "max": stack["max"].max(0), "count": np.array([n.sum()]),
            **{q: (stack[q] * w).sum(0) for q in stack if q.startswith("q")},
        }
    return out


@pytest.mark.parametrize("name", DATASETS)
def test_stats_equal_what_the_dataset_stores(name):
    ds = prf.open_dataset(dataset_path(name), episodes=present_episodes(name), cameras=[])
    got = ds.stats()
    stats_json = dataset_path(name) / "meta" / "stats.json"
    if stats_json.is_file():  # all episodes selected: stats.json, as LeRobot normalizes with
        want = json.loads(stats_json.read_text())
    else:  # v2.1: LeRobot aggregates episodes_stats.jsonl
        per = _stored_per_episode(name)
        want = _lerobot_aggregate([per[e] for e in ds.episodes])
    assert set(got) == set(want)
    for key in want:
        assert set(got[key]) == set(want[key]), key
        for s in want[key]:
            np.testing.assert_allclose(got[key][s], np.asarray(want[key][s], dtype=np.float64).reshape(got[key][s].shape),
                                       rtol=1e-12, atol=0, err_msg=f"{name} {key} {s}")


@pytest.mark.parametrize("name", ["so101_wrist_v30", "pusht_sim_v30", "aloha_multicam_v30", "pusht_sim_v21"])
def test_stats_of_an_episode_selection_aggregate_the_per_episode_stats(name):
    per = _stored_per_episode(name)
    ds = prf.open_dataset(dataset_path(name), cameras=[])
    sub = ds.episodes[1::2]
    want = _lerobot_aggregate([per[e] for e in sub])
    for got in (ds.stats(episodes=sub), prf.open_dataset(dataset_path(name), episodes=sub, cameras=[]).stats()):
        for key in want:
            for s in want[key]:
                np.testing.assert_allclose(got[key][s].reshape(-1), np.ravel(want[key][s]), rtol=1e-9, atol=1e-12,
                                           err_msg=f"{key} {s}")
    if (dataset_path(name) / "meta" / "stats.json").is_file():  # the per-episode stats agree with stats.json
        full = _lerobot_aggregate([per[e] for e in ds.episodes])
        stored = json.loads((dataset_path(name) / "meta" / "stats.json").read_text())
        for key in ("observation.state", "action"):
            for s in ("mean", "std", "min", "max", "q01", "q99"):
                np.testing.assert_allclose(full[key][s], stored[key][s], rtol=1e-5)


def strip_stats(name: str, dst: Path) -> Path:
    """A copy of a dataset's metadata without any stored stats; data/ and videos/ are symlinks."""
    src = dataset_path(name)
    dst.mkdir(parents=True)
    for sub in ("data", "videos"):
        if (src / sub).exists():
            os.symlink(src / sub, dst / sub)
    (dst / "meta").mkdir()
    for f in (src / "meta").iterdir():
        if f.name in ("stats.json", "episodes_stats.jsonl"):
            continue
        if f.is_dir():  # v3.0 meta/episodes: drop the stats/ columns
            for p in f.rglob("*.parquet"):
                t = pq.read_table(p)
                out = dst / "meta" / p.relative_to(src / "meta")
                out.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(t.select([c for c in t.column_names if not c.startswith("stats/")]), out)
        else:
            shutil.copy(f, dst / "meta" / f.name)
    return dst


def _check_numeric(key: str, got: dict, want: dict, name: str) -> None:
    shape = np.asarray(got["mean"]).shape
    w = {s: np.asarray(v, dtype=np.float64).reshape(shape) for s, v in want.items() if s != "count"}
    msg = f"{name} {key}"
    np.testing.assert_allclose(got["min"], w["min"], rtol=1e-5, atol=0, err_msg=msg)
    np.testing.assert_allclose(got["max"], w["max"], rtol=1e-5, atol=0, err_msg=msg)
    np.testing.assert_allclose(got["mean"], w["mean"], rtol=1e-5, atol=1e-12, err_msg=msg)
    # LeRobot takes std = sqrt(E[x^2] - E[x]^2) in float32 (the recorded dtype): besides 1e-5 relative,
    # allow that formula's cancellation error, sqrt(k * eps32 * E[x^2]) (e.g. a constant joint stored
    # with std 6e-4 instead of 0). prf computes in float64 (checked exactly below).
    cancel = np.sqrt(64 * EPS32 * (w["mean"] ** 2 + w["std"] ** 2))
    assert np.all(np.abs(got["std"] - w["std"]) <= 1e-5 * np.abs(w["std"]) + cancel), msg
    assert int(np.ravel(got["count"])[0]) == int(np.ravel(want["count"])[0]), msg
    res = (w["max"] - w["min"]) / HISTOGRAM_BINS  # one histogram bin of the widest episode
    for q in ("q01", "q10", "q50", "q90", "q99"):
        if q in w:
            assert np.all(np.abs(got[q] - w[q]) <= res + 1e-5 * np.abs(w[q])), f"{msg} {q}"


@pytest.mark.parametrize("name", DATASETS)
def test_compute_stats_reproduces_stored_numeric_stats(name, tmp_path):
    root = strip_stats(name, tmp_path / name)
    ds = prf.open_dataset(root, episodes=present_episodes(name), cameras=[])
    with pytest.raises(StatsError, match="compute_stats"):
        ds.stats()
    got = prf.compute_stats(ds, progress=False)
    want = prf.open_dataset(dataset_path(name), episodes=present_episodes(name), cameras=[]).stats()
    numeric = [k for k in want if k not in ds.meta.camera_keys]
    assert set(numeric) <= set(got)
    for key in numeric:
        _check_numeric(key, got[key], want[key], name)
    # prf's own numbers are the exact float64 ones
    for key in ("observation.state", "action"):
        col = ds.column(key).astype(np.float64)
        np.testing.assert_allclose(got[key]["mean"], col.mean(0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[key]["std"], col.std(0), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["pusht_sim_v30", "pusht_sim_v21", "g1_cam_high_v21_subset", "so101_wrist_v30"])
def test_compute_stats_cameras(name):
    """Camera stats come from decoded (lossy) frames, LeRobot's from the frames before encoding: the
    frames sampled match (same counts), the means agree within 0.02 on [0, 1]. LeRobot 0.3.3 (v2.1)
    stored correct stds; LeRobot 0.4.4 (v3.0) squares uint8 pixels (overflow), so its stored camera
    std is far too small: prf's is the true one."""
    ds = prf.open_dataset(dataset_path(name), episodes=present_episodes(name))
    got = prf.compute_stats(ds, progress=False)
    want = ds.stats()
    for cam in ds.cameras:
        g, w = got[cam], want[cam]
        assert g["mean"].shape == (3, 1, 1)
        assert int(g["count"][0]) == int(np.ravel(w["count"])[0]) == sum(
            lerobot_sample_indices(int(n)).size for n in ds.episode_lengths)
        diff = np.abs(g["mean"] - np.asarray(w["mean"]).reshape(3, 1, 1)).max()
        assert diff < 0.02, (cam, diff)
        if ds.meta.codebase_version == "v2.1":
            assert np.abs(g["std"] - np.asarray(w["std"]).reshape(3, 1, 1)).max() < 0.01
        else:
            assert (g["std"] > np.asarray(w["std"]).reshape(3, 1, 1)).all()
        assert ((0 <= g["min"]) & (g["min"] <= g["q01"]) & (g["q01"] <= g["q50"]) & (g["q50"] <= g["q99"])
                & (g["q99"] <= g["max"]) & (g["max"] <= 1)).all()


def test_compute_stats_over_a_selection_and_with_windows():
    path = dataset_path("pusht_sim_v30")
    ds = prf.open_dataset(path, delta_timestamps={"observation.image": [-0.1, 0.0], "action": [0.0, 0.1]})
    sel = [2, 5, 7]
    got, per = prf.compute_stats(ds, episodes=sel, per_episode=True, progress=False)
    assert sorted(per) == sel
    plain = prf.open_dataset(path, episodes=sel)
    again = prf.compute_stats(plain, progress=False)
    for key in ("observation.state", "action", "observation.image"):
        for s in ("mean", "std", "min", "max", "q50"):
            np.testing.assert_allclose(got[key][s], again[key][s], rtol=1e-12)
    stored = ds.stats(episodes=sel)
    np.testing.assert_allclose(got["action"]["mean"], stored["action"]["mean"], rtol=1e-5)
    with pytest.raises(StatsError, match="not in the dataset"):
        prf.compute_stats(plain, episodes=[0])


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float64, st.tuples(st.integers(2, 300), st.integers(1, 3)),
                    elements=st.floats(-1e3, 1e3, allow_nan=False)))
def test_histogram_quantiles_within_one_bin_of_the_exact_quantile(x):
    qs = [0.01, 0.1, 0.5, 0.9, 0.99]
    got = histogram_quantiles(x, qs)
    span = x.max(0) - x.min(0) + 2e-10
    bin_w = span / HISTOGRAM_BINS
    n = x.shape[0]
    for i, q in enumerate(qs):
        # the histogram estimate lies within one bin of the q * n-th order statistics around it
        lo = np.quantile(x, q, axis=0, method="inverted_cdf") if q * n >= 1 else x.min(0)
        hi = np.quantile(x, min(1.0, q + 1.0 / n), axis=0, method="inverted_cdf")
        assert np.all(got[i] >= np.minimum(lo, hi) - bin_w - 1e-9) and np.all(got[i] <= np.maximum(lo, hi) + bin_w + 1e-9)


def test_stats_with_only_stats_json_and_a_partial_selection_warns(tmp_path):
    root = strip_stats("pusht_sim_v30", tmp_path / "p")
    shutil.copy(dataset_path("pusht_sim_v30") / "meta" / "stats.json", root / "meta" / "stats.json")
    full = prf.open_dataset(root, cameras=[]).stats()
    part = prf.open_dataset(root, episodes=[0, 1], cameras=[])
    with pytest.warns(UserWarning, match="covers all 24 episodes"):
        got = part.stats()
    np.testing.assert_array_equal(got["action"]["mean"], full["action"]["mean"])
    with pytest.raises(StatsError, match="not in the dataset's selection"):
        part.stats(episodes=[3])


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 2000), top=st.integers(0, 255), seed=st.integers(0, 2**31 - 1))
def test_uint8_exact_quantiles_are_numpys_bits(n, top, seed):
    """The writer's camera quantiles from 256-value counts equal np.quantile over every pixel / 255."""
    from prf.stats import QUANTILES, _uint8_exact_quantiles

    frames = np.random.default_rng(seed).integers(0, top + 1, (n, 2, 3), dtype=np.uint8)
    qs = list(QUANTILES.values())
    ref = np.quantile(frames.reshape(-1, 3).astype(np.float64) / 255.0, qs, axis=0)
    assert np.array_equal(_uint8_exact_quantiles(frames, qs), ref)
