"""Metadata of every LeRobot dataset in ../shared/data opens into one model."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import prf
from prf.errors import MissingFilesError
from prf.format import flatten_names
from conftest import DATASETS, dataset_path, present_episodes


@pytest.mark.parametrize("name", DATASETS)
def test_every_dataset_opens(name):
    root = dataset_path(name)
    info = json.loads((root / "meta" / "info.json").read_text())
    ds = prf.open_dataset(root, episodes=present_episodes(name))
    meta = ds.meta
    assert meta.codebase_version == info["codebase_version"]
    assert meta.fps == info["fps"]
    assert meta.total_episodes == info["total_episodes"]
    assert meta.total_frames == info["total_frames"]
    assert len(meta.tasks) == info["total_tasks"]
    assert list(meta.features) == list(info["features"])
    assert len(ds) == sum(meta.episodes[e].length for e in ds.episodes)
    # the index range of every episode is consistent with the lengths
    for e in meta.episodes.values():
        assert e.dataset_to_index - e.dataset_from_index == e.length
    s = ds[len(ds) - 1]
    assert int(s["frame_index"]) == meta.episodes[ds.episodes[-1]].length - 1
    assert s["task"] in meta.tasks.values()
    for cam in ds.cameras:
        h, w, c = meta.features[cam].shape
        assert s[cam].shape == (h, w, c) and s[cam].dtype == np.uint8


def test_v30_video_spans_and_files():
    meta = prf.DatasetMeta(dataset_path("aloha_multicam_v30"))
    # three cameras with 3, 2 and 1 mp4 files and different episode boundaries
    files = {k: {meta.episodes[e].videos[k].path for e in meta.episodes} for k in meta.video_keys}
    assert sorted(len(v) for v in files.values()) == [1, 2, 3]
    ep1 = meta.episodes[1].videos["observation.images.top"]
    assert ep1.from_timestamp == pytest.approx(3.9) and ep1.to_timestamp == pytest.approx(6.6)


def test_v21_episodes_from_jsonl():
    meta = prf.DatasetMeta(dataset_path("pusht_sim_v21"))
    assert meta.codebase_version == "v2.1"
    e3 = meta.episodes[3]
    assert e3.data_path == "data/chunk-000/episode_000003.parquet"
    assert e3.videos["observation.image"].path == "videos/chunk-000/observation.image/episode_000003.mp4"
    assert e3.videos["observation.image"].from_timestamp == 0.0
    # v2.x index ranges are the cumulative lengths
    starts = np.cumsum([0] + [meta.episodes[e].length for e in sorted(meta.episodes)])[:-1]
    assert [meta.episodes[e].dataset_from_index for e in sorted(meta.episodes)] == starts.tolist()


def test_names_in_every_form():
    assert flatten_names(["a", "b"]) == ("a", "b")
    assert flatten_names([["a", "b"]]) == ("a", "b")
    assert flatten_names({"motors": ["a", "b"]}) == ("a", "b")
    assert flatten_names(None) is None
    so101 = prf.DatasetMeta(dataset_path("so101_wrist_v30")).features["observation.state"]
    assert so101.names == ("j0", "j1", "j2", "j3", "j4", "j5")  # {"motors": [...]}
    g1 = prf.DatasetMeta(dataset_path("g1_cam_high_v21_subset")).features["action"]
    assert len(g1.names) == 26 and g1.names[0] == "kLeftShoulderPitch"  # nested list


def test_partial_download_opens_with_present_episodes():
    root = dataset_path("g1_cam_high_v21_subset")
    with pytest.raises(MissingFilesError) as ei:
        prf.open_dataset(root)
    err = ei.value
    assert err.present_episodes == [1, 2]
    assert any("episode_000000.parquet" in str(p) for p in err.missing)
    assert "episode_000000" in str(err) and "episodes=" in str(err)
    ds = prf.open_dataset(root, episodes=err.present_episodes)
    assert len(ds) == 393 + 343
    # windows clamp within the sample's own episode: last frame of episode 1 pads forward
    ds = prf.open_dataset(root, episodes=[1, 2], delta_timestamps={"action": [0.0, 1 / 30]})
    s = ds[392]
    assert s["action_is_pad"].tolist() == [False, True]
    assert int(s["episode_index"]) == 1 and int(s["index"]) == 479 + 392


def test_undeclared_columns_are_dropped(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    p = root / "data" / "chunk-000" / "file-000.parquet"
    t = pq.read_table(p)
    t = t.append_column("debug.extra", pa.array(np.arange(t.num_rows, dtype=np.float64)))
    pq.write_table(t, p)
    ds = prf.open_dataset(root, cameras=[])
    assert "debug.extra" not in ds[0]
    assert set(ds[0]) == {"observation.state", "action", "next.reward", "next.success", "next.done",
                          "timestamp", "frame_index", "episode_index", "index", "task_index", "task"}


def test_no_camera_dataset():
    ds = prf.open_dataset(dataset_path("rebot_novideo_v30"), delta_timestamps={"action": [0, 1 / 30]})
    assert ds.cameras == [] and len(ds) == 871
    b = ds.get_batch([0, 870])
    assert b["action"].shape == (2, 2, 7) and b["action_is_pad"].tolist() == [[False, False], [False, True]]


def test_cameras_selection():
    root = dataset_path("aloha_multicam_v30")
    ds = prf.open_dataset(root, cameras=["observation.images.left_wrist"])
    assert ds.cameras == ["observation.images.left_wrist"]
    assert "observation.images.top" not in ds[0]
    with pytest.raises(prf.errors.DatasetError, match="unknown camera"):
        prf.open_dataset(root, cameras=["observation.images.nope"])
