"""Bad input gets a typed error (from prf.errors) naming the file, never silent wrong data."""

from __future__ import annotations


import pytest

import prf
from prf import errors
from conftest import edit_info


def test_missing_info_json(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    (root / "meta" / "info.json").unlink()
    with pytest.raises(errors.MetadataError, match="info.json"):
        prf.open_dataset(root)


def test_info_json_not_json(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    (root / "meta" / "info.json").write_text("{not json")
    with pytest.raises(errors.MetadataError, match="info.json.*not valid JSON"):
        prf.open_dataset(root)


@pytest.mark.parametrize("version", ["v4.0", "v1.6", None, "3.0"])
def test_unknown_codebase_version(copy_dataset, version):
    root = copy_dataset("pusht_sim_v30")
    edit_info(root, codebase_version=version)
    with pytest.raises(errors.UnsupportedVersionError) as ei:
        prf.open_dataset(root)
    assert "info.json" in str(ei.value) and repr(version) in str(ei.value)


def test_corrupt_parquet(copy_dataset):
    root = copy_dataset("so101_wrist_v30")
    p = root / "data" / "chunk-000" / "file-000.parquet"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # truncated: the footer is gone
    with pytest.raises(errors.DataFileError) as ei:
        prf.open_dataset(root)
    assert "file-000.parquet" in str(ei.value)


def test_corrupt_episodes_table(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    p = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    p.write_bytes(b"PAR1 garbage")
    with pytest.raises(errors.DataFileError, match="meta/episodes/chunk-000/file-000.parquet"):
        prf.open_dataset(root)


def test_truncated_mp4(copy_dataset):
    root = copy_dataset("pusht_sim_v30")
    p = root / "videos" / "observation.image" / "chunk-000" / "file-000.mp4"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    ds = prf.open_dataset(root)  # opening reads no video
    with pytest.raises(errors.VideoError) as ei:
        ds.get_batch(list(range(len(ds) - 5, len(ds))))
    assert "file-000.mp4" in str(ei.value)


def test_garbage_mp4(copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    p = root / "videos" / "chunk-000" / "observation.image" / "episode_000002.mp4"
    p.write_bytes(b"\x00" * 1000)
    ds = prf.open_dataset(root, episodes=[2])
    with pytest.raises(errors.VideoError, match="episode_000002.mp4"):
        ds[0]


def test_missing_video_file(copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    (root / "videos" / "chunk-000" / "observation.image" / "episode_000005.mp4").unlink()
    with pytest.raises(errors.MissingFilesError) as ei:
        prf.open_dataset(root)
    assert "episode_000005.mp4" in str(ei.value)
    assert 5 not in ei.value.present_episodes and 4 in ei.value.present_episodes
    assert isinstance(ei.value, FileNotFoundError)
    # the rest opens
    ds = prf.open_dataset(root, episodes=ei.value.present_episodes)
    assert 5 not in ds.episodes


@pytest.mark.parametrize("template", ["../../outside/{chunk_index}/{file_index}.parquet",
                                      "/etc/{chunk_index}{file_index}.parquet",
                                      "data/../../x-{chunk_index}-{file_index}.parquet"])
def test_path_template_escaping_root(copy_dataset, template):
    root = copy_dataset("so101_wrist_v30")
    edit_info(root, data_path=template)
    with pytest.raises(errors.UnsafePathError) as ei:
        prf.open_dataset(root)
    assert "escapes the dataset root" in str(ei.value)


def test_video_template_escaping_root(copy_dataset):
    root = copy_dataset("pusht_sim_v21")
    edit_info(root, video_path="videos/../../../{video_key}/episode_{episode_index:06d}.mp4")
    with pytest.raises(errors.UnsafePathError):
        prf.open_dataset(root)


def test_template_with_unknown_field(copy_dataset):
    root = copy_dataset("so101_wrist_v30")
    edit_info(root, data_path="data/{bogus}.parquet")
    with pytest.raises(errors.MetadataError, match="data_path"):
        prf.open_dataset(root)


@pytest.mark.parametrize("bad", [[0.05], [-0.1, 0.0155], [1 / 60]])
def test_delta_timestamps_off_grid(bad):
    from conftest import dataset_path

    with pytest.raises(errors.DeltaTimestampsError) as ei:
        prf.open_dataset(dataset_path("so101_wrist_v30"), delta_timestamps={"action": bad})
    assert "action" in str(ei.value) and "fps" in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_delta_timestamps_unknown_key():
    from conftest import dataset_path

    with pytest.raises(errors.DeltaTimestampsError, match="not a feature"):
        prf.open_dataset(dataset_path("so101_wrist_v30"), delta_timestamps={"actions": [0.0]})


def test_timestamps_out_of_tolerance(copy_dataset):
    """A camera frame time (from_timestamp + timestamp) that no video frame matches raises TimestampError
    naming file and episode. (Data timestamps off the fps grid are refused at open: test_bad_metadata.)"""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = copy_dataset("so101_wrist_v30")
    p = next((root / "meta" / "episodes").rglob("*.parquet"))
    t = pq.read_table(p)
    key = "videos/observation.images.wrist/from_timestamp"
    ts = t.column(key).to_pylist()
    ts[1] += 0.5 / 30  # half a frame off
    t = t.set_column(t.column_names.index(key), key, pa.array(ts, pa.float64()))
    pq.write_table(t, p)
    ds = prf.open_dataset(root)
    ds[0]  # episode 0 is fine
    with pytest.raises(errors.TimestampError) as ei:
        ds[int(ds.episode_starts[1]) + 10]
    assert "file-000.mp4" in str(ei.value) and "episode 1" in str(ei.value)


def test_episode_rows_disagree_with_meta(copy_dataset):
    import pyarrow.parquet as pq

    root = copy_dataset("so101_wrist_v30")
    p = root / "data" / "chunk-000" / "file-000.parquet"
    t = pq.read_table(p)
    pq.write_table(t.slice(0, t.num_rows - 3), p)
    with pytest.raises(errors.DataFileError, match="episode 5 has"):
        prf.open_dataset(root)


def test_all_errors_share_one_base():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.PrfError)
