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


@pytest.fixture(params=["always", "never"])
def cache_mode(request, monkeypatch, tmp_path):
    """v3.0 data read through the Arrow cache (summaries from its entry) and into memory."""
    monkeypatch.setenv("PRF_CACHE", str(tmp_path / "prf-cache"))
    monkeypatch.setenv("PRF_ARROW_CACHE", request.param)
    return request.param


def _rewrite_tasks_v3(root: Path, rows: list[tuple[int, str]]) -> None:
    t = pa.table({"task_index": pa.array([r[0] for r in rows], pa.int64()),
                  "__index_level_0__": pa.array([r[1] for r in rows], pa.large_string())})
    pq.write_table(t, root / "meta" / "tasks.parquet")


# ---- item 1: tasks ------------------------------------------------------------------------------------
def test_tasks_table_shifted_v30(copy_dataset, cache_mode):
    root = copy_dataset("aloha_multicam_v30")
    tasks = prf.DatasetMeta(root).tasks
    _rewrite_tasks_v3(root, [(i + 1, t) for i, t in tasks.items()])  # 1, 2 where the data says 0, 1
    with pytest.raises(errors.MetadataError) as ei:
        prf.open_dataset(root, cameras=[])
    msg = str(ei.value)
    assert "data/chunk-000/file-000.parquet" in msg and "task_index 0" in msg and "tasks.parquet" in msg, msg


def test_tasks_table_duplicated_v30(copy_dataset):
    root = copy_dataset("aloha_multicam_v30")
    tasks = prf.DatasetMeta(root).tasks
    _rewrite_tasks_v3(root, [(0, tasks[0]), (0, tasks[1])])
    with pytest.raises(errors.MetadataError, match=r"tasks.parquet: task_index 0 appears 2 times"):
        prf.open_dataset(root, cameras=[])


def test_tasks_table_empty_v30(copy_dataset, cache_mode):
    root = copy_dataset("pusht_sim_v30")
    _rewrite_tasks_v3(root, [])
    with pytest.raises(errors.MetadataError, match=r"task_index 0, which .*tasks.parquet does not list.*empty"):
        prf.open_dataset(root, cameras=[])


def test_data_task_index_without_a_task_v30(copy_dataset, cache_mode):
    root = copy_dataset("aloha_multicam_v30")
    f = _data_file(root)
    t = pq.read_table(f)
    ti = t.column("task_index").to_numpy().copy()
    ep = t.column("episode_index").to_numpy()
    ti[ep == 4] = 7
    _set_column(f, "task_index", pa.array(ti, pa.int64()))
    with pytest.raises(errors.MetadataError, match=r"file-000.parquet: episode 4 has task_index 7, which"):
        prf.open_dataset(root, cameras=[])
    # a selection without that episode is fine
    assert len(prf.open_dataset(root, cameras=[], episodes=[0, 1])) > 0


def test_tasks_shifted_v21(copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    p = root / "meta" / "tasks.jsonl"
    rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    p.write_text("".join(json.dumps({**r, "task_index": r["task_index"] + 1}) + "\n" for r in rows))
    with pytest.raises(errors.MetadataError, match=r"episode_000000.parquet: episode 0 has task_index 0, which .*tasks.jsonl"):
        prf.open_dataset(root, cameras=[])


# ---- item 2: video streams vs info.json ---------------------------------------------------------------
def test_video_resolution_differs_from_info(copy_dataset, cache_mode):
    root = copy_dataset("pusht_sim_v30")
    info = json.loads((root / "meta" / "info.json").read_text())
    info["features"]["observation.image"]["shape"] = [64, 80, 3]
    edit_info(root, features=info["features"])
    ds = prf.open_dataset(root)  # opening demuxes no video
    with pytest.raises(errors.DataFileError) as ei:
        ds.get_batch([5])
    msg = str(ei.value)
    assert "file-000.mp4" in msg and "'observation.image'" in msg and "96x96" in msg and "[64, 80, 3]" in msg, msg
    # without the camera the dataset reads
    assert prf.open_dataset(root, cameras=[])[5]["index"] == 5


def test_video_fps_differs_from_info(copy_dataset, cache_mode):
    """info.json says 20 fps and the data timestamps agree, but the mp4 runs at 10 fps."""
    root = copy_dataset("pusht_sim_v30")
    edit_info(root, fps=20)
    f = _data_file(root)
    t = pq.read_table(f)
    ts = (t.column("frame_index").to_numpy() / 20.0).astype(np.float32)
    _set_column(f, "timestamp", pa.array(ts, pa.float32()))
    ds = prf.open_dataset(root)
    with pytest.raises(errors.DataFileError, match=r"file-000.mp4: camera 'observation.image': the video stream runs at 10 fps; info.json declares fps 20"):
        ds[3]


def test_video_streams_of_every_shared_dataset_match_info():
    from conftest import CAMERA_DATASETS, present_episodes

    for name in CAMERA_DATASETS:
        ds = prf.open_dataset(dataset_path(name), episodes=present_episodes(name))
        ds.get_batch([0, len(ds) - 1])
        assert len(ds._checked_streams) >= len(ds.video_cameras)


# ---- item 8: index columns missing from the data --------------------------------------------------------
def _drop_columns(path: Path, names) -> None:
    t = pq.read_table(path)
    pq.write_table(t.drop_columns([n for n in names if n in t.column_names]), path)


def _make_v20_without_index_columns(root: Path) -> None:
    info = json.loads((root / "meta" / "info.json").read_text())
    for k in ("frame_index", "index", "task_index"):
        info["features"].pop(k)
    info["codebase_version"] = "v2.0"
    (root / "meta" / "info.json").write_text(json.dumps(info))
    (root / "meta" / "episodes_stats.jsonl").unlink()
    for f in (root / "data").rglob("*.parquet"):
        _drop_columns(f, ["frame_index", "index", "task_index"])


def test_v20_without_index_columns_opens_with_derived_values(copy_dataset):
    original = prf.open_dataset(dataset_path("pusht_sim_v21"), delta_timestamps={"action": [-0.1, 0.0, 0.1]})
    root = copy_dataset("pusht_sim_v21")
    _make_v20_without_index_columns(root)
    ds = prf.open_dataset(root, delta_timestamps={"action": [-0.1, 0.0, 0.1]})
    assert ds.meta.codebase_version == "v2.0" and sorted(ds._derived) == ["frame_index", "index", "task_index"]
    for key in ("frame_index", "index", "task_index", "episode_index", "action"):
        np.testing.assert_array_equal(ds.column(key), original.column(key))
    idx = np.array([0, 1, 197, 198, 1000, len(ds) - 1])
    got, want = ds.get_batch(idx), original.get_batch(idx)
    for key in ("frame_index", "index", "task_index", "observation.image", "action", "action_is_pad"):
        np.testing.assert_array_equal(got[key], want[key])
        assert got[key].dtype == want[key].dtype
    assert got["task"] == want["task"]


def test_v30_without_frame_index_and_index(copy_dataset, cache_mode):
    original = prf.open_dataset(dataset_path("aloha_multicam_v30"), cameras=[])
    root = copy_dataset("aloha_multicam_v30")
    _drop_columns(_data_file(root), ["frame_index", "index"])
    ds = prf.open_dataset(root, cameras=[])
    for key in ("frame_index", "index", "task_index"):
        np.testing.assert_array_equal(ds.column(key), original.column(key))
    sub = prf.open_dataset(root, cameras=[], episodes=[3, 7])
    np.testing.assert_array_equal(sub.column("index"), prf.open_dataset(dataset_path("aloha_multicam_v30"), cameras=[], episodes=[3, 7]).column("index"))
    assert sub[5]["frame_index"] == 5


def test_missing_required_columns_are_not_called_declared(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    _drop_columns(_data_file(root), ["timestamp"])
    with pytest.raises(errors.DataFileError) as ei:
        prf.open_dataset(root)
    assert "['timestamp']" in str(ei.value) and "declared" not in str(ei.value)
    root = copy_dataset("pusht_sim_v21")
    _drop_columns(root / "data" / "chunk-000" / "episode_000000.parquet", ["action"])
    with pytest.raises(errors.DataFileError, match=r"\['action'\] declared as features in info.json are missing"):
        prf.open_dataset(root)


# ---- item 9: data timestamps off the fps grid --------------------------------------------------------
def test_v21_timestamps_off_grid_refused_at_open(copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    f = root / "data" / "chunk-000" / "episode_000003.parquet"
    t = pq.read_table(f)
    ts = t.column("timestamp").to_numpy().copy()
    ts[5:] += np.float32(0.004)  # a 4 ms jump inside episode 3
    _set_column(f, "timestamp", pa.array(ts, pa.float32()))
    with pytest.raises(errors.TimestampError) as ei:
        prf.open_dataset(root, cameras=[])
    msg = str(ei.value)
    assert "episode_000003.parquet: episode 3" in msg and "off by 0.004" in msg and "tolerance_s=0.0041" in msg, msg
    ds = prf.open_dataset(root, tolerance_s=0.0041)  # the suggested tolerance accepts it
    assert ds.get_batch([int(ds.episode_starts[3]) + 5])["observation.image"].shape == (1, 96, 96, 3)
    assert len(prf.open_dataset(root, episodes=[0, 1, 2])) > 0  # other episodes are fine


@pytest.mark.parametrize("bad", [0.5 / 30, float("nan")])
def test_v30_timestamps_off_grid_refused_at_open(copy_dataset, cache_mode, bad):
    root = copy_dataset("so101_wrist_v30")
    f = _data_file(root)
    t = pq.read_table(f)
    ts = t.column("timestamp").to_numpy().copy()
    ep = t.column("episode_index").to_numpy()
    j = int(np.flatnonzero(ep == 2)[10])
    ts[j] = ts[j] + bad if bad == bad else bad
    _set_column(f, "timestamp", pa.array(ts, pa.float32()))
    with pytest.raises(errors.TimestampError, match=r"file-000.parquet: episode 2"):
        prf.open_dataset(root)
    # without video cameras nothing is matched by timestamp (and LeRobot 0.4.4 does not check): it opens
    assert len(prf.open_dataset(root, cameras=[])) == len(ts)


# ---- the per-file summary (vectorised, batch by batch) equals a plain per-episode computation ---------
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 9), min_size=1, max_size=12), seed=st.integers(0, 2**32 - 1),
       cuts=st.lists(st.integers(0, 100), max_size=5))
def test_file_summary_matches_naive(lengths, seed, cuts):
    from prf.format import tables

    rng = np.random.default_rng(seed)
    ep = np.repeat(rng.permutation(len(lengths)) * 3, lengths).astype(np.int64)
    n = len(ep)
    ts = (rng.integers(0, 50, n) / 7).astype(np.float32)
    task = rng.integers(0, 3, n).astype(np.int64)
    runs = tables.episode_runs(ep)
    b = tables._SummaryBuilder(runs)
    bounds = sorted({0, n, *[c % (n + 1) for c in cuts]})
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        b.add(ts[lo:hi], ep[lo:hi], task[lo:hi])
    got = b.result()
    whole = tables.summarize(ts, ep, task, runs)
    for e, start, k in runs.tolist():
        d = np.diff(ts[start:start + k]).astype(np.float64)
        want = (d.min(), d.max()) if len(d) else (np.inf, -np.inf)
        r = int(tables.run_positions(runs, np.array([e]))[0])
        assert tuple(got.dts[r]) == want and tuple(whole.dts[r]) == want
    naive = sorted({(int(a), int(c)) for a, c in zip(ep, task)})
    assert [tuple(p) for p in got.tasks.tolist()] == naive == [tuple(p) for p in whole.tasks.tolist()]


def test_v21_scan_is_kept_per_file(copy_dataset, monkeypatch, tmp_path):
    """A warm v2.x open reads no episode file for its checks; a changed file is scanned again."""
    from prf.format import tables

    monkeypatch.setenv("PRF_CACHE", str(tmp_path / "prf-cache"))
    root = copy_dataset("pusht_sim_v21")
    prf.open_dataset(root, cameras=[])
    calls = []
    real = tables.scan_file
    monkeypatch.setattr(tables, "scan_file", lambda p: calls.append(p) or real(p))
    prf.open_dataset(root, cameras=[])
    assert calls == []
    f = root / "data" / "chunk-000" / "episode_000004.parquet"
    t = pq.read_table(f)
    ts = t.column("timestamp").to_numpy().copy()
    ts[7] += np.float32(0.01)
    _set_column(f, "timestamp", pa.array(ts, pa.float32()))
    with pytest.raises(errors.TimestampError, match="episode 4"):
        prf.open_dataset(root, cameras=[])
    assert [Path(p).name for p in calls] == ["episode_000004.parquet"]
