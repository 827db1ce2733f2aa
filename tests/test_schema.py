"""Honest schemas: each declared feature's shape and dtype is compared with the parquet schema at open
(a mismatch is a SchemaError naming file and key), and values come out in their declared dtype, as
LeRobot's ``datasets.Features`` cast gives them (float64 stored, float32 declared -> float32)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prf
from prf.errors import DataFileError, SchemaError
from conftest import edit_info

LEROBOT_PYTHON = os.environ.get("PRF_LEROBOT_PYTHON")
READBACK = Path(__file__).parent / "tools" / "lerobot_readback.py"
MODES = ["never", "always"]  # read into memory / through the memory-mapped Arrow cache


@pytest.fixture(params=MODES)
def cache_mode(request, monkeypatch, tmp_path):
    monkeypatch.setenv("PRF_ARROW_CACHE", request.param)
    monkeypatch.setenv("PRF_CACHE", str(tmp_path / "prf-cache"))
    return request.param


def _rewrite(path: Path, key: str, make) -> None:
    t = pq.read_table(path)
    col = make(t.column(key).combine_chunks())
    pq.write_table(t.set_column(t.column_names.index(key), pa.field(key, col.type), col), path)


def _widen(col: pa.Array, extra: int) -> pa.Array:
    """Each row's list with ``extra`` more values (variable-size lists)."""
    rows = np.asarray(col.to_pylist(), dtype=np.float32)
    wide = np.concatenate([rows, np.zeros((len(rows), extra), np.float32)], axis=1)
    return pa.array(wide.tolist(), pa.list_(pa.float32()))


def test_fixed_size_list_of_other_length_is_a_schema_error(copy_dataset, cache_mode):
    root = copy_dataset("so101_wrist_v30")
    f = root / "data" / "chunk-000" / "file-000.parquet"
    _rewrite(f, "observation.state",
             lambda c: pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(len(c) * 7, np.float32)), 7))
    with pytest.raises(SchemaError) as ei:
        prf.open_dataset(root)
    msg = str(ei.value)
    assert "file-000.parquet" in msg and "'observation.state'" in msg and "7" in msg and "[6]" in msg
    assert isinstance(ei.value, DataFileError)


def test_declared_shape_larger_than_stored_is_a_schema_error(copy_dataset, cache_mode):
    """A list of 6 values where info.json says [17] (the issue's "41 where [17]" case)."""
    root = copy_dataset("so101_wrist_v30")
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"]["action"]["shape"] = [17]
    edit_info(root, features=info["features"])
    with pytest.raises(SchemaError, match=r"file-000\.parquet.*'action'.*list of 6 values.*\[17\]"):
        prf.open_dataset(root)


def test_variable_lists_of_other_length_are_a_schema_error(copy_dataset, cache_mode):
    """Variable-size lists carry no length in the schema: the values are checked as they are read."""
    root = copy_dataset("so101_wrist_v30")
    f = root / "data" / "chunk-000" / "file-000.parquet"
    _rewrite(f, "action", lambda c: _widen(c, 35))  # 41 values where info.json says [6]
    with pytest.raises(SchemaError, match=r"file-000\.parquet.*'action'.*list of 41 values.*\[6\]"):
        prf.open_dataset(root)


def test_scalar_where_a_vector_is_declared(copy_dataset, cache_mode):
    root = copy_dataset("so101_wrist_v30")
    f = root / "data" / "chunk-000" / "file-000.parquet"
    _rewrite(f, "action", lambda c: pa.array(np.zeros(len(c), np.float32)))
    with pytest.raises(SchemaError, match="'action'.*one value per frame.*shape \\[6\\]"):
        prf.open_dataset(root)


def test_text_where_numbers_are_declared(copy_dataset, cache_mode):
    root = copy_dataset("so101_wrist_v30")
    f = root / "data" / "chunk-000" / "file-000.parquet"
    _rewrite(f, "task_index", lambda c: pa.array([str(v) for v in c.to_pylist()]))
    with pytest.raises(SchemaError, match="'task_index'.*string"):
        prf.open_dataset(root)


def test_v21_first_episode_file_schema_is_checked_at_open(copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    f = root / "data" / "chunk-000" / "episode_000000.parquet"
    _rewrite(f, "action", lambda c: pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(len(c) * 3, np.float32)), 3))
    with pytest.raises(SchemaError, match="episode_000000.parquet.*'action'"):
        prf.open_dataset(root)


def test_v21_later_episode_file_is_checked_when_read(copy_dataset):
    """v2.x episode files are read on first use: a bad one is a typed error naming it then."""
    root = copy_dataset("pusht_sim_v21")
    f = root / "data" / "chunk-000" / "episode_000004.parquet"
    _rewrite(f, "action", lambda c: _widen(c, 2))
    ds = prf.open_dataset(root, cameras=[])
    ds[0]
    start = int(ds.episode_starts[ds.episodes.index(4)])
    with pytest.raises(SchemaError, match="episode_000004.parquet.*'action'.*list of 4 values"):
        ds[start]


def _float64_copy(copy_dataset) -> tuple[Path, dict[str, np.ndarray]]:
    """rebot_novideo_v30 with state, action and timestamp stored as float64 (values nudged off the
    float32 grid), and the float32 cast of what was stored (what LeRobot delivers)."""
    root = copy_dataset("rebot_novideo_v30")
    f = root / "data" / "chunk-000" / "file-000.parquet"
    t = pq.read_table(f)
    want = {}
    for key in ("observation.state", "action", "timestamp"):
        col = t.column(key).combine_chunks()
        if key == "timestamp":
            v = col.to_numpy().astype(np.float64) + 1e-9
            new = pa.array(v, pa.float64())
        else:
            v = np.asarray(col.to_pylist(), dtype=np.float64) + 1e-9
            new = pa.array(v.tolist(), pa.list_(pa.float64()))
        want[key] = v.astype(np.float32)
        t = t.set_column(t.column_names.index(key), pa.field(key, new.type), new)
    pq.write_table(t, f)
    return root, want


def test_float64_stored_comes_out_as_declared_float32(copy_dataset, cache_mode):
    root, want = _float64_copy(copy_dataset)
    ds = prf.open_dataset(root)
    idx = np.array([0, 1, 7, len(ds) // 2, len(ds) - 1])
    b = ds.get_batch(idx)
    for key, ref in want.items():
        assert b[key].dtype == np.float32, key
        np.testing.assert_array_equal(b[key], ref[idx], err_msg=key)
        assert ds.column(key).dtype == np.float32
    assert ds[3]["timestamp"].dtype == np.float32


@pytest.mark.skipif(not LEROBOT_PYTHON or not Path(LEROBOT_PYTHON).is_file(),
                    reason="set PRF_LEROBOT_PYTHON to a Python with lerobot (../shared/lerobot-reference.md)")
def test_float64_stored_equals_lerobots_values(copy_dataset, tmp_path):
    root, _ = _float64_copy(copy_dataset)
    ds = prf.open_dataset(root)
    idx = [0, 1, 7, len(ds) // 2, len(ds) - 1]
    out = tmp_path / "lr.npz"
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    r = subprocess.run([LEROBOT_PYTHON, str(READBACK), str(root), str(out), *map(str, idx)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    lr = dict(np.load(out))
    b = ds.get_batch(idx)
    for key in ("observation.state", "action", "timestamp"):
        assert lr[key].dtype == np.float32, key
        assert b[key].dtype == lr[key].dtype, key
        np.testing.assert_array_equal(b[key], lr[key], err_msg=key)


def test_timestamp_is_float32_even_when_declared_float64(copy_dataset, cache_mode):
    root = copy_dataset("rebot_novideo_v30")
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"]["timestamp"]["dtype"] = "float64"
    edit_info(root, features=info["features"])
    assert prf.open_dataset(root)[5]["timestamp"].dtype == np.float32
