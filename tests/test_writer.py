"""prf's LeRobot v3.0 writer: round trip through open_dataset, atomic on failure."""

from __future__ import annotations

import json

import numpy as np
import pytest

import prf
from prf.errors import WriteError
from prf.writer import write_lerobot_dataset
from conftest import uint8_frames

FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
    "action": {"dtype": "float32", "shape": [2]},
    "next.done": {"dtype": "bool", "shape": [1]},
    "observation.images.cam": {"dtype": "video", "shape": [32, 48, 3]},
}


def _episodes(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for e in range(n):
        L = 20 + 7 * e
        out.append({
            "observation.state": rng.normal(size=(L, 3)).astype(np.float32),
            "action": rng.normal(size=(L, 2)).astype(np.float32),
            "next.done": np.arange(L) == L - 1,
            "observation.images.cam": uint8_frames(L, seed=e),
            "task": ["pick", "place"][e % 2],
        })
    return out


@pytest.mark.parametrize("codec", ["h264", "av1"])
def test_round_trip(tmp_path, codec):
    eps = _episodes()
    root = write_lerobot_dataset(tmp_path / "ds", features=FEATURES, episodes=eps, fps=15, robot_type="test",
                                 video_codec=codec, progress=False)
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_frames"] == 20 + 27 + 34
    assert info["features"]["observation.images.cam"]["info"]["video.codec"] == codec
    ds = prf.open_dataset(root, delta_timestamps={"action": [0, 1 / 15]})
    assert ds.meta.tasks == {0: "pick", 1: "place"}
    assert len(ds) == 81
    b = ds.get_batch(np.arange(81))
    state = np.concatenate([e["observation.state"] for e in eps])
    assert np.array_equal(b["observation.state"], state)
    assert np.array_equal(b["next.done"], np.concatenate([e["next.done"] for e in eps]))
    assert np.array_equal(b["episode_index"], np.repeat([0, 1, 2], [20, 27, 34]))
    assert np.array_equal(b["timestamp"], np.concatenate([np.arange(L) / 15 for L in (20, 27, 34)]).astype(np.float32))
    assert b["task"][0] == "pick" and b["task"][25] == "place"
    frames = np.concatenate([e["observation.images.cam"] for e in eps])
    diff = np.abs(b["observation.images.cam"].astype(int) - frames.astype(int))
    assert diff.mean() < 8  # lossy encode, right frames
    # the right frame, not a neighbour: each decoded frame is closest to its own source frame
    d_next = np.abs(b["observation.images.cam"][:-1].astype(int) - frames[1:].astype(int)).mean(axis=(1, 2, 3))
    assert (diff[:-1].mean(axis=(1, 2, 3)) < d_next).all()
    # episodes share one mp4: episode 2 starts at frame 47
    assert ds.meta.episodes[2].videos["observation.images.cam"].from_timestamp == pytest.approx(47 / 15)
    stats = json.loads((root / "meta" / "stats.json").read_text())
    assert np.allclose(stats["observation.state"]["mean"], state.mean(0), atol=1e-6)
    assert np.allclose(stats["observation.state"]["std"], state.std(0), atol=1e-6)
    assert stats["observation.images.cam"]["mean"][0] == [[pytest.approx(stats["observation.images.cam"]["mean"][0][0][0])]]


def test_compact_write(tmp_path):
    """compact=True: same rows as the default write, float leaves BYTE_STREAM_SPLIT + zstd, smaller data."""
    import pyarrow.parquet as pq

    eps = _episodes(n=3, seed=4)
    feats = {k: v for k, v in FEATURES.items() if v["dtype"] != "video"}
    eps = [{k: v for k, v in e.items() if k != "observation.images.cam"} for e in eps]
    plain = write_lerobot_dataset(tmp_path / "plain", feats, eps, fps=15, video_codec="h264", progress=False)
    small = write_lerobot_dataset(tmp_path / "small", feats, eps, fps=15, video_codec="h264", compact=True,
                                  progress=False)
    f_plain, f_small = (r / "data" / "chunk-000" / "file-000.parquet" for r in (plain, small))
    assert pq.read_table(f_small).equals(pq.read_table(f_plain))
    md = pq.ParquetFile(f_small).metadata.row_group(0)
    cols = {md.column(i).path_in_schema: md.column(i) for i in range(md.num_columns)}
    assert "BYTE_STREAM_SPLIT" in cols["observation.state.list.element"].encodings
    assert "BYTE_STREAM_SPLIT" in cols["timestamp"].encodings
    assert all(c.compression == "ZSTD" for c in cols.values())
    assert "BYTE_STREAM_SPLIT" not in cols["episode_index"].encodings
    md_plain = pq.ParquetFile(f_plain).metadata.row_group(0)
    assert {md_plain.column(i).compression for i in range(md_plain.num_columns)} == {"SNAPPY"}
    b_plain = prf.open_dataset(plain).get_batch(np.arange(81))
    b_small = prf.open_dataset(small).get_batch(np.arange(81))
    assert all(np.array_equal(b_plain[k], b_small[k]) for k in b_plain if k != "task")


def test_failure_midway_leaves_nothing(tmp_path):
    def episodes():
        yield from _episodes(2)
        raise RuntimeError("recorder crashed")

    with pytest.raises(WriteError, match="recorder crashed"):
        write_lerobot_dataset(tmp_path / "ds", features=FEATURES, episodes=episodes(), fps=15, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_destination_is_kept(tmp_path):
    root = write_lerobot_dataset(tmp_path / "ds", features=FEATURES, episodes=_episodes(1), fps=15, progress=False)
    with pytest.raises(WriteError, match="already exists"):
        write_lerobot_dataset(root, features=FEATURES, episodes=_episodes(1), fps=15, progress=False)
    bad = _episodes(2)
    bad[1]["action"] = bad[1]["action"][:-1]
    with pytest.raises(WriteError, match="different lengths"):
        write_lerobot_dataset(root, features=FEATURES, episodes=bad, fps=15, overwrite=True, progress=False)
    assert len(prf.open_dataset(root)) == 20  # the old dataset is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.parametrize("features,msg", [
    ({"cam": {"dtype": "video", "shape": [32, 48]}}, "shape"),
    ({"x": {"dtype": "float99", "shape": [1]}}, "dtype"),
    ({"index": {"dtype": "int64", "shape": [1]}}, "written by prf"),
])
def test_bad_features(tmp_path, features, msg):
    with pytest.raises(WriteError, match=msg):
        write_lerobot_dataset(tmp_path / "ds", features=features, episodes=[], fps=10, progress=False)
