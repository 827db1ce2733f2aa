"""prf.mlx: conversion to mx.array (dtypes, copies) and loader options (shared behaviour: conformance/)."""

from __future__ import annotations

import numpy as np
import pytest

mx = pytest.importorskip("mlx.core")
import prf  # noqa: E402
import prf.mlx  # noqa: E402

from conftest import dataset_path  # noqa: E402


def test_to_mlx_keeps_dtypes_values_and_strings():
    batch = {
        "u8": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        "b": np.array([True, False]),
        "i64": np.array([2**40, -1], dtype=np.int64),
        "f32": np.array([[0.5, -1.25]], dtype=np.float32),
        "scalar": np.float32(3.5),
        "task": ["push", "pull"],
    }
    out = prf.mlx.to_mlx(batch)
    for k in ("u8", "b", "i64", "f32"):
        assert isinstance(out[k], mx.array) and str(out[k].dtype) == f"mlx.core.{batch[k].dtype.name}"
        assert np.array_equal(np.array(out[k]), batch[k])
    assert out["scalar"].item() == 3.5 and out["task"] == ["push", "pull"]
    src = np.zeros(4, np.float32)
    arr = prf.mlx.to_mlx({"x": src})["x"]
    src[0] = 7
    # shares memory exactly when the build supports it (not MLX's Linux CPU build), else a copy
    assert np.array(arr)[0] == (7 if prf.mlx.zero_copy_supported() else 0)


def test_loader_options(tmp_path):
    ds = prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[0, 1], cameras=[])
    n = len(ds)
    loader = prf.mlx.loader(ds, 32, shuffle=True, seed=3, drop_last=True, num_workers=2, prefetch=1)
    assert len(loader) == n // 32 and loader.epoch == 0
    got = [np.array(b["index"]) for b in loader]
    assert loader.epoch == 1  # a full pass moves to the next epoch, as prf.Loader
    want = [ds.column("index")[i] for i in ds.loader(32, shuffle=True, seed=3, drop_last=True).batch_indices(0)]
    assert all(np.array_equal(a, b) for a, b in zip(got, want)) and len(got) == len(want)
    by_path = prf.mlx.loader(dataset_path("pusht_sim_v30"), 8, open_kwargs={"episodes": [1], "cameras": []})
    assert len(by_path.dataset) == len(prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[1], cameras=[]))
    with pytest.raises(TypeError):
        prf.mlx.loader(ds, 8, open_kwargs={"episodes": [1]})
    assert "prf.mlx.Loader" in repr(loader)
