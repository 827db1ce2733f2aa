"""Malformed or inconsistent metadata (issue 11, items 1, 2, 3, 7, 8, 9): every case is a typed prf
error naming the file and what is wrong, or (missing index columns) opens with derived values.

The bad inputs are built here from copies of the shared datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prf
from prf import errors
from conftest import dataset_path, edit_info


def _episodes_file(root: Path) -> Path:
    return next((root / "meta" / "episodes").rglob("*.parquet"))


def _set_column(path: Path, name: str, values, type_=None) -> None:
    t = pq.read_table(path)
    col = pa.array(values, type_) if type_ is not None or not isinstance(values, pa.Array) else values
    i = t.column_names.index(name)
    t = t.set_column(i, pa.field(name, col.type), col)
    pq.write_table(t, path)


def _data_file(root: Path) -> Path:
    return sorted((root / "data").rglob("*.parquet"))[0]


# ---- item 3 / 7: info.json ----------------------------------------------------------------------------
def test_duplicate_key_in_info_json(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    p = root / "meta" / "info.json"
    text = p.read_text()
    assert text.lstrip().startswith("{")
    p.write_text('{"fps": 99, ' + text.lstrip()[1:])  # "fps" twice: JSON's last one would win silently
    with pytest.raises(errors.MetadataError, match=r"info.json.*'fps' appears twice"):
        prf.DatasetMeta(root)


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), 1e300, -30, 0, True, "30"])
def test_bad_fps(copy_dataset, fps):
    root = copy_dataset("pusht_sim_v30")
    p = root / "meta" / "info.json"
    info = json.loads(p.read_text())
    info["fps"] = fps
    p.write_text(json.dumps(info))  # NaN / Infinity as Python's json writes them
    with pytest.raises(errors.MetadataError, match="info.json: fps must be"):
        prf.open_dataset(root, delta_timestamps={"action": [0.0, 0.1]})


def test_delta_timestamps_that_overflow_the_frame_grid():
    from prf.windows import delta_indices

    with pytest.raises(errors.DeltaTimestampsError, match="delta_timestamps"):
        delta_indices({"action": [1e308]}, 1e6, ["action"], 1e-4)


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_info_json_not_utf8(copy_dataset, encoding):
    root = copy_dataset("pusht_sim_v30")
    p = root / "meta" / "info.json"
    info = json.loads(p.read_text())
    info["robot_type"] = "bras articulé"
    p.write_bytes(json.dumps(info, ensure_ascii=False).encode(encoding))
    with pytest.raises(errors.MetadataError, match="info.json: not UTF-8"):
        prf.open_dataset(root)


def test_info_json_nested_too_deep(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    p = root / "meta" / "info.json"
    info = json.loads(p.read_text())
    text = json.dumps(info)
    p.write_text(text[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(errors.MetadataError, match="info.json.*nested"):
        prf.open_dataset(root)


@pytest.mark.parametrize("bad", [[1, 2], "codec", 3])
def test_feature_info_not_an_object(copy_dataset, bad):
    root = copy_dataset("pusht_sim_v30")
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"]["observation.image"]["info"] = bad
    edit_info(root, features=info["features"])
    with pytest.raises(errors.MetadataError, match=r"info.json: feature 'observation.image': 'info' must be an object"):
        prf.open_dataset(root)


# ---- item 3 / 7: the episodes table -------------------------------------------------------------------
@pytest.mark.parametrize("column,values,type_,match", [
    ("videos/observation.image/from_timestamp", "nan", pa.float64(), "NaN"),
    ("videos/observation.image/from_timestamp", "null", pa.float64(), "null"),
    ("length", "null", pa.int64(), "null"),
    ("length", "abc", pa.string(), "type string"),
])
def test_bad_episodes_table_values_v30(copy_dataset, column, values, type_, match):
    root = copy_dataset("pusht_sim_v30")
    f = _episodes_file(root)
    t = pq.read_table(f)
    vals = t.column(column).to_pylist()
    vals[3] = {"nan": float("nan"), "null": None, "abc": "abc"}[values]
    if type_ == pa.string():
        vals = [str(v) for v in vals]
    _set_column(f, column, vals, type_)
    with pytest.raises(errors.MetadataError) as ei:
        prf.open_dataset(root)
    msg = str(ei.value)
    assert "meta/episodes" in msg and repr(column) in msg and match in msg, msg


def test_empty_episodes_table_v30(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    f = _episodes_file(root)
    t = pq.read_table(f)
    pq.write_table(t.slice(0, 0), f)
    with pytest.raises(errors.MetadataError, match="meta/episodes.*empty"):
        prf.open_dataset(root)


@pytest.mark.parametrize("edit,match", [
    (lambda r: r.update(length=None), "'length' is None"),
    (lambda r: r.update(length="abc"), "'length' is 'abc'"),
    (lambda r: r.update(length=float("nan")), "'length' is nan"),
    (lambda r: r.pop("length"), "'length' is missing"),
    (lambda r: r.update(episode_index=1e300), "'episode_index'"),
    (lambda r: r.update(tasks="push"), "'tasks' must be a list"),
])
def test_bad_episodes_jsonl_values(copy_dataset, edit, match):
    root = copy_dataset("pusht_sim_v21")
    p = root / "meta" / "episodes.jsonl"
    rows = [json.loads(line) for line in p.read_text().splitlines()]
    edit(rows[2])
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(errors.MetadataError, match="episodes.jsonl: row 3") as ei:
        prf.open_dataset(root)
    assert match in str(ei.value), str(ei.value)


def test_empty_episodes_jsonl(copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    (root / "meta" / "episodes.jsonl").write_text("\n")
    with pytest.raises(errors.MetadataError, match="episodes.jsonl.*empty"):
        prf.open_dataset(root)
