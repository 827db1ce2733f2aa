"""Memory after open grows with the number of episodes, not frames; the Arrow cache is keyed to its
source file; v2.x episode files are read only when used."""

from __future__ import annotations

import gc
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prf
from prf.errors import DataFileError
from prf.format import tables

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benches"))
from _scale_data import generate_nocam  # noqa: E402


@pytest.fixture
def arrow_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PRF_CACHE", str(tmp_path / "prf-cache"))
    monkeypatch.setenv("PRF_ARROW_CACHE", "always")
    return tmp_path / "prf-cache" / "arrow"


def _held_after_open(root: Path) -> tuple[int, int, prf.Dataset]:
    """(bytes NumPy/Python hold, bytes Arrow's pool holds) after a warm open of ``root``."""
    prf.open_dataset(root)  # builds the cache: the measured open is a warm one
    gc.collect()
    arrow0 = pa.total_allocated_bytes()
    tracemalloc.start()
    ds = prf.open_dataset(root)
    gc.collect()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return held, pa.total_allocated_bytes() - arrow0, ds


def test_memory_after_open_does_not_grow_with_frames(tmp_path, arrow_cache):
    """1000 episodes of ~30 and of ~240 frames (30k vs 240k frames, 8x): what the open holds is the
    same (per-episode arrays, no per-frame column, no row -> episode array)."""
    small = generate_nocam(tmp_path / "short", 30_000, mean_length=30, dim=14)
    large = generate_nocam(tmp_path / "long", 240_000, mean_length=240, dim=14)
    held_s, arrow_s, ds_s = _held_after_open(small)
    held_l, arrow_l, ds_l = _held_after_open(large)
    assert abs(len(ds_l) - 240_000) < 2_000 and abs(len(ds_s) - 30_000) < 2_000
    assert len(ds_s.episodes) == len(ds_l.episodes) == 1000
    # the old reader held every column in NumPy: 240k frames x 148 bytes = 36 MB (and 1.9 MB row_episode)
    assert held_l < 1.5 * held_s + 256 * 1024, (held_s, held_l)
    assert held_l < 2**20, held_l  # measured: 140 kB for 1000 episodes
    assert arrow_l < 2**20 and arrow_s < 2**20, (arrow_s, arrow_l)  # frames stay memory-mapped
    # and the samples are right
    s = ds_l[123_456]
    assert int(s["index"]) == 123_456
    e = int(s["episode_index"])
    o = ds_l.episodes.index(e)
    assert int(s["frame_index"]) == 123_456 - int(ds_l.episode_starts[o])
    assert s["observation.state"].shape == (14,) and s["observation.state"].dtype == np.float32


def test_samples_through_the_cache_equal_the_parquet(tmp_path, arrow_cache):
    root = generate_nocam(tmp_path / "ds", 30_000, mean_length=100, dim=5, rows_per_file=7_000, row_group_size=1000)
    ds = prf.open_dataset(root, delta_timestamps={"action": [i / 30 for i in range(8)]})
    assert ds._rows.mode == "cache" and len(ds._rows.pieces) > 1
    full = pa.concat_tables([pq.read_table(p) for p in sorted((root / "data").rglob("*.parquet"))])
    state = np.asarray(full.column("observation.state").to_pylist(), np.float32)
    action = np.asarray(full.column("action").to_pylist(), np.float32)
    idx = np.random.default_rng(0).integers(0, len(ds), 300)
    b = ds.get_batch(idx)
    np.testing.assert_array_equal(b["observation.state"], state[idx])
    np.testing.assert_array_equal(b["index"], idx)
    ep = full.column("episode_index").to_numpy()
    for j, i in enumerate(idx.tolist()):  # the window clamps at the episode's end
        last = int(np.flatnonzero(ep == ep[i])[-1])
        rows = np.minimum(np.arange(i, i + 8), last)
        np.testing.assert_array_equal(b["action"][j], action[rows])
        np.testing.assert_array_equal(b["action_is_pad"][j], np.arange(i, i + 8) > last)
    np.testing.assert_array_equal(ds.column("action"), action)
    # a subset of episodes opens the same cache (no second entry)
    sub = prf.open_dataset(root, episodes=[3, 150, 299])
    assert len(list(arrow_cache.glob("*.arrow"))) == len(list((root / "data").rglob("*.parquet")))
    np.testing.assert_array_equal(sub.column("episode_index"), np.repeat([3, 150, 299], sub.episode_lengths))


def test_cache_is_rebuilt_when_the_source_changes(tmp_path, arrow_cache):
    root = generate_nocam(tmp_path / "ds", 2_000, mean_length=100, dim=3)
    f = next((root / "data").rglob("*.parquet"))
    assert float(prf.open_dataset(root)[0]["action"][0]) != 42.0
    entries = list(arrow_cache.glob("*.arrow"))
    assert len(entries) == 1
    t = pq.read_table(f)
    a = np.asarray(t.column("action").to_pylist(), np.float32)
    a[0, 0] = 42.0
    col = pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), 3)
    pq.write_table(t.set_column(t.column_names.index("action"), "action", col), f)
    assert float(prf.open_dataset(root)[0]["action"][0]) == 42.0
    now = list(arrow_cache.glob("*.arrow"))
    assert len(now) == 1 and now != entries  # the stale entry of that file is gone


def test_damaged_cache_entry_is_rebuilt(tmp_path, arrow_cache):
    root = generate_nocam(tmp_path / "ds", 2_000, mean_length=100, dim=3)
    want = prf.open_dataset(root)[17]["action"]
    entry = next(arrow_cache.glob("*.arrow"))
    entry.write_bytes(entry.read_bytes()[:100])
    np.testing.assert_array_equal(prf.open_dataset(root)[17]["action"], want)


def test_v21_episode_files_are_read_lazily(copy_dataset):
    """Opening a v2.1 dataset reads none of its episode files but the first one's schema: a corrupt
    episode file surfaces (typed, naming it) when that episode is first read."""
    root = copy_dataset("pusht_sim_v21")
    bad = root / "data" / "chunk-000" / "episode_000005.parquet"
    bad.write_bytes(b"PAR1 not parquet")
    ds = prf.open_dataset(root, cameras=[])
    assert ds._rows.mode == "lazy" and all(p is None for p in ds._rows.pieces)
    ds[0]
    assert sum(p is not None for p in ds._rows.pieces) == 1
    with pytest.raises(DataFileError, match="episode_000005.parquet"):
        ds[int(ds.episode_starts[ds.episodes.index(5)])]


def test_v21_row_count_mismatch_named_on_read(copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    f = root / "data" / "chunk-000" / "episode_000002.parquet"
    t = pq.read_table(f)
    pq.write_table(t.slice(0, t.num_rows - 2), f)
    ds = prf.open_dataset(root, cameras=[])
    with pytest.raises(DataFileError, match="episode 2 has"):
        ds.column("action")


def test_row_groups_of_other_episodes_are_not_read(tmp_path, monkeypatch):
    """A small subset of a large file reads only the row groups that hold it (episode_index pushdown)."""
    monkeypatch.setenv("PRF_ARROW_CACHE", "never")
    root = generate_nocam(tmp_path / "ds", 20_000, mean_length=100, dim=3, row_group_size=500)
    seen = []
    real = pq.ParquetFile.read_row_groups

    def spy(self, groups, *a, **k):
        seen.append(list(groups))
        return real(self, groups, *a, **k)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    ds = prf.open_dataset(root, episodes=[100])
    assert seen and len(seen[-1]) <= 2  # of 40 row groups
    assert (ds.column("episode_index") == 100).all() and len(ds) == ds.episode_lengths[0]


def test_meta_episodes_is_a_lazy_mapping():
    from conftest import dataset_path

    meta = prf.DatasetMeta(dataset_path("aloha_multicam_v30"))
    assert isinstance(meta.episode_table.length, np.ndarray)
    eps = meta.episodes
    assert list(eps) == sorted(eps) and len(eps) == meta.total_episodes
    assert 1 in eps and -1 not in eps and "1" not in eps
    e = eps[1]
    assert e.episode_index == 1 and e.dataset_to_index - e.dataset_from_index == e.length
    with pytest.raises(KeyError):
        eps[10_000]
    assert tables.episode_runs(np.array([3, 3, 4, 4, 4, 3])).tolist() == [[3, 0, 2], [4, 2, 3], [3, 5, 1]]
