"""prf.write_lerobot_dataset: arrays and streamed frame sequences, tasks, data and video shard
rotation, per-episode stats in LeRobot's layout, atomic writes (a write killed after its first shard
leaves nothing), and the old keyword-only call of prf demo."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import prf
from conftest import uint8_frames
from prf.errors import WriteError
from prf.stats import feature_stats

H, W = 32, 48
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": [3], "names": ["a", "b", "c"]},
    "action": {"dtype": "float32", "shape": [2], "names": None},
    "counter": {"dtype": "int64", "shape": [1], "names": None},
    "observation.images.cam": {"dtype": "video", "shape": [H, W, 3], "names": ["height", "width", "channels"]},
}
LENGTHS = [7, 12, 5, 9]


def _episode(e: int, streamed: bool) -> dict:
    L = LENGTHS[e]
    rng = np.random.default_rng(e)
    frames = uint8_frames(L, H, W, seed=e)
    return {
        "observation.state": rng.normal(size=(L, 3)).astype(np.float32),
        "action": rng.normal(size=(L, 2)).astype(np.float32),
        "counter": np.arange(L, dtype=np.int64) + 100 * e,
        "observation.images.cam": (f for f in frames) if streamed else frames,
        **({"task_index": 1} if e == 2 else {"task": "pick" if e % 2 == 0 else "place"}),
    }


def _write(root, n=4, **kw):
    kw.setdefault("progress", False)
    return prf.write_lerobot_dataset(root, FEATURES, (_episode(e, streamed=e % 2 == 1) for e in range(n)), 10,
                                     tasks=["pick", "place"], robot_type="test_arm", **kw)


def test_round_trip_arrays_and_streamed_frames(tmp_path):
    root = _write(tmp_path / "ds")
    ds = prf.open_dataset(root)
    assert len(ds) == sum(LENGTHS) and ds.meta.robot_type == "test_arm"
    assert ds.meta.tasks == {0: "pick", 1: "place"}
    b = ds.get_batch(list(range(len(ds))))
    start = 0
    for e, L in enumerate(LENGTHS):
        ref = _episode(e, streamed=False)
        sl = slice(start, start + L)
        assert np.array_equal(b["observation.state"][sl], ref["observation.state"])
        assert np.array_equal(b["action"][sl], ref["action"])
        assert np.array_equal(b["counter"][sl], ref["counter"])
        assert list(b["task"][sl]) == [["pick", "place", "place", "place"][e]] * L
        assert np.array_equal(b["frame_index"][sl], np.arange(L))
        diff = np.abs(b["observation.images.cam"][sl].astype(int) - ref["observation.images.cam"].astype(int))
        assert diff.mean() < 6, f"episode {e}: mean |diff| {diff.mean():.2f}"
        start += L


def test_shard_rotation(tmp_path):
    root = _write(tmp_path / "ds", data_files_size_in_mb=0.0002, video_files_size_in_mb=0.0002)
    data = sorted(p.name for p in (root / "data" / "chunk-000").iterdir())
    videos = sorted(p.name for p in (root / "videos" / "observation.images.cam" / "chunk-000").iterdir())
    assert len(data) >= 3 and len(videos) >= 2, (data, videos)
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert len({e["data/file_index"] for e in eps}) == len(data)
    assert len({e["videos/observation.images.cam/file_index"] for e in eps}) == len(videos)
    for prev, e in zip(eps, eps[1:]):  # a new video file restarts at 0, otherwise continues
        key = "videos/observation.images.cam/"
        if e[key + "file_index"] == prev[key + "file_index"]:
            assert e[key + "from_timestamp"] == pytest.approx(prev[key + "to_timestamp"])
        else:
            assert e[key + "from_timestamp"] == 0.0
    info = json.loads((root / "meta/info.json").read_text())
    assert info["data_files_size_in_mb"] == 0.0002
    ds = prf.open_dataset(root)
    last = _episode(3, streamed=False)
    assert np.array_equal(ds.get_batch(list(range(len(ds) - 9, len(ds))))["counter"], last["counter"])
    frames = ds.get_batch(list(range(len(ds) - 9, len(ds))))["observation.images.cam"]
    assert np.abs(frames.astype(int) - last["observation.images.cam"].astype(int)).mean() < 6


def test_per_episode_stats_in_lerobot_layout(tmp_path):
    root = _write(tmp_path / "ds")
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    for e, row in enumerate(eps):
        ref = _episode(e, streamed=False)
        for key in ("observation.state", "action"):
            want = feature_stats(ref[key])
            for stat in ("min", "max", "mean", "std", "q50"):
                assert np.allclose(row[f"stats/{key}/{stat}"], want[stat]), (e, key, stat)
            assert row[f"stats/{key}/count"] == [LENGTHS[e]]
        cam = np.asarray(row["stats/observation.images.cam/mean"])
        assert cam.shape == (3, 1, 1) and np.all((cam >= 0) & (cam <= 1))
        assert row["stats/frame_index/max"] == [LENGTHS[e] - 1]
    stats = json.loads((root / "meta/stats.json").read_text())
    allstate = np.concatenate([_episode(e, False)["observation.state"] for e in range(4)])
    assert np.allclose(stats["observation.state"]["mean"], allstate.mean(0), atol=1e-6)
    assert np.allclose(stats["observation.state"]["std"], allstate.std(0), atol=1e-6)
    assert stats["observation.state"]["count"] == [sum(LENGTHS)]


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_write_killed_after_first_shard_leaves_nothing(tmp_path, monkeypatch, exc):
    from prf import writer

    flushed = []
    real = writer._Writer._flush_data

    def spy(self):
        if self.data_pending:
            flushed.append(self.data_file)
        return real(self)

    monkeypatch.setattr(writer._Writer, "_flush_data", spy)

    def episodes():
        for e in range(3):
            yield _episode(e, streamed=True)
        assert flushed, "no shard was written before the failure"
        raise exc("killed midway")

    root = tmp_path / "out" / "ds"
    root.parent.mkdir()
    with pytest.raises(WriteError if exc is RuntimeError else KeyboardInterrupt, match="killed midway"):
        prf.write_lerobot_dataset(root, FEATURES, episodes(), 10, data_files_size_in_mb=0.0002, progress=False)
    assert flushed and not root.exists()
    assert list(root.parent.iterdir()) == []  # no temporary folder either


def test_overwrite_keeps_old_dataset_until_success(tmp_path):
    root = _write(tmp_path / "ds", n=2)
    with pytest.raises(WriteError, match="exists"):
        _write(root, n=1)

    def bad():
        yield _episode(0, False)
        raise RuntimeError("boom")

    with pytest.raises(WriteError):
        prf.write_lerobot_dataset(root, FEATURES, bad(), 10, overwrite=True, progress=False)
    assert len(prf.open_dataset(root)) == LENGTHS[0] + LENGTHS[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_errors(tmp_path):
    ep = _episode(0, False)
    with pytest.raises(WriteError, match="not one of tasks"):
        prf.write_lerobot_dataset(tmp_path / "a", FEATURES, [{**ep, "task": "dance"}], 10, tasks=["pick"], progress=False)
    short = {**ep, "observation.images.cam": (f for f in ep["observation.images.cam"][:-1])}
    with pytest.raises(WriteError, match="6 frames, the other features 7"):
        prf.write_lerobot_dataset(tmp_path / "b", FEATURES, [short], 10, progress=False)
    with pytest.raises(WriteError, match="task_index 5"):
        prf.write_lerobot_dataset(tmp_path / "c", FEATURES, [{**{k: v for k, v in ep.items() if k != "task"},
                                                            "task_index": 5}], 10, tasks=["pick"], progress=False)
    with pytest.raises(WriteError, match="shape"):
        prf.write_lerobot_dataset(tmp_path / "d", FEATURES, [{**ep, "action": np.zeros((7, 3), np.float32)}], 10,
                                  progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_keyword_call_of_prf_demo_still_works(tmp_path):
    from prf._demo_data import make_demo_dataset

    root = make_demo_dataset(tmp_path / "demo", n_episodes=2, length=20, progress=False)
    ds = prf.open_dataset(root)
    assert len(ds) == 40 and ds.meta.tasks == {0: "Move the red square onto the green square."}
