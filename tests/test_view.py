"""prf view: the .rrd recording, read back with rerun-sdk's own reader (rerun.chunk.RrdReader), holds
the expected entity paths, timelines, row counts and values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import prf

rr = pytest.importorskip("rerun")
rchunk = pytest.importorskip("rerun.chunk")

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SO101 = DATA / "lerobot" / "so101_wrist_v30"
ALOHA = DATA / "lerobot" / "aloha_multicam_v30"
TURTLESIM = DATA / "ros1bag" / "turtlesim_rosbagjs" / "fixtures" / "example.bag"


def _read(path: Path) -> tuple[dict[str, int], dict[str, set], dict[str, list]]:
    """Per entity path: rows (non-static), timelines, and the record batches of its chunks."""
    rows: dict[str, int] = {}
    timelines: dict[str, set] = {}
    batches: dict[str, list] = {}
    for ch in rchunk.RrdReader(str(path)).store().stream():
        if ch.is_static:
            rows.setdefault(ch.entity_path, 0)
            continue
        rows[ch.entity_path] = rows.get(ch.entity_path, 0) + ch.num_rows
        timelines.setdefault(ch.entity_path, set()).update(ch.timeline_names)
        batches.setdefault(ch.entity_path, []).append(ch.to_record_batch())
    return rows, timelines, batches


def _column(batches: list, name: str) -> list:
    out = []
    for b in batches:
        out += b.column(b.schema.names.index(name)).to_pylist()
    return out


def test_view_episode_so101(tmp_path):
    out = tmp_path / "so.rrd"
    r = subprocess.run([sys.executable, "-m", "prf.cli", "view", str(SO101), "--episode", "2", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out) and out.is_file()
    meta = prf.DatasetMeta(SO101)
    n = meta.episodes[2].length
    rows, timelines, batches = _read(out)
    names = list(meta.features["observation.state"].names)
    want = {"/observation.images.wrist", "/task", "/episode", "/__properties"}
    want |= {f"/{k}/{j}" for k in ("observation.state", "action") for j in names}
    assert set(rows) == want
    for k in ("observation.state", "action"):
        for j in names:
            assert rows[f"/{k}/{j}"] == n
            assert timelines[f"/{k}/{j}"] == {"frame_index", "timestamp"}  # rerun's log_time/log_tick are off
    assert rows["/observation.images.wrist"] == n and rows["/task"] == 1
    # values: the episode's state, joint by joint, on its frame_index timeline
    ds = prf.open_dataset(SO101, episodes=[2], cameras=[])
    state = ds.column("observation.state")
    for d, j in enumerate(names):
        b = batches[f"/observation.state/{j}"]
        fi = np.asarray(_column(b, "frame_index"))
        vals = np.asarray([v[0] for v in _column(b, "Scalars:scalars")])
        order = np.argsort(fi)
        np.testing.assert_array_equal(fi[order], np.arange(n))
        np.testing.assert_allclose(vals[order], state[:, d].astype(np.float64), rtol=0, atol=0)
    assert _column(batches["/task"], "TextDocument:text") == [[meta.tasks[0]]]
    # camera rows are JPEG frames close to the decoded ones
    from PIL import Image
    import io

    blobs = _column(batches["/observation.images.wrist"], "EncodedImage:blob")
    fi = _column(batches["/observation.images.wrist"], "frame_index")
    k = fi.index(n // 2)
    img = np.asarray(Image.open(io.BytesIO(bytes(blobs[k][0] if isinstance(blobs[k], list) else blobs[k]))))
    ref = prf.open_dataset(SO101, episodes=[2])[n // 2]["observation.images.wrist"]
    assert img.shape == ref.shape
    assert np.abs(img.astype(int) - ref.astype(int)).mean() < 4


def test_view_multicam_default_episode(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = prf.report.write_recording(ALOHA)
    assert out == Path("aloha_multicam_v30_ep0.rrd") and (tmp_path / out).is_file()
    meta = prf.DatasetMeta(ALOHA)
    rows, timelines, _ = _read(tmp_path / out)
    n = meta.episodes[0].length
    for cam in meta.video_keys:
        assert rows[f"/{cam}"] == n and timelines[f"/{cam}"] == {"frame_index", "timestamp"}
    for j in meta.features["action"].names:
        assert rows[f"/action/{j}"] == n


def test_view_errors(tmp_path):
    with pytest.raises(prf.errors.MetadataError, match="episode 99"):
        prf.report.write_recording(SO101, tmp_path / "x.rrd", episode=99)
    assert not (tmp_path / "x.rrd").exists()


def test_view_converted_log(tmp_path):
    pytest.importorskip("rosbags")
    sys.path.insert(0, str(Path(__file__).parent))
    import _logs

    _logs.write_ros2_bag(tmp_path / "bag")
    prf.convert_log(tmp_path / "bag", tmp_path / "conv", progress=False)
    out = prf.report.write_recording(tmp_path / "conv", tmp_path / "log.rrd")
    rows, timelines, batches = _read(out)
    assert rows["/camera/image_raw"] == 20 and rows["/camera/compressed"] == 20
    for j in range(3):
        assert rows[f"/joint_states/position\\[{j}\\]"] == 60
    assert rows["/cmd_vel/linear.x"] == 30
    assert all(tl == {"log_time"} for tl in timelines.values())
    df = prf.RoboticsDataFrame.from_converted(tmp_path / "conv")
    b = batches["/joint_states/position\\[1\\]"]
    t = np.asarray([np.datetime64(x, "ns").astype(np.int64) for x in _column(b, "log_time")])
    vals = np.asarray([v[0] for v in _column(b, "Scalars:scalars")])
    np.testing.assert_array_equal(np.sort(t), df.times("/joint_states"))
    np.testing.assert_allclose(vals[np.argsort(t)], [_logs.joint_positions(k)[1] for k in range(60)])


def test_view_real_log_every_topic(tmp_path):
    pytest.importorskip("rosbags")
    prf.convert_log(TURTLESIM, tmp_path / "turtle", progress=False)
    df = prf.RoboticsDataFrame.from_converted(tmp_path / "turtle")
    r = subprocess.run([sys.executable, "-m", "prf.cli", "view", str(tmp_path / "turtle"), "--out",
                        str(tmp_path / "t.rrd")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows, timelines, _ = _read(tmp_path / "t.rrd")
    for topic in df.topics:
        base = "/" + "/".join(rr.escape_entity_path_part(p) for p in topic.split("/") if p)
        mine = {e: n for e, n in rows.items() if e == base or e.startswith(base + "/")}
        assert mine, (topic, sorted(rows)[:10])
        assert max(mine.values()) == df[topic].num_rows  # every message on log_time


def test_spawn_without_a_display_still_writes_the_file(tmp_path):
    if sys.platform != "linux":
        pytest.skip("without DISPLAY the viewer cannot open only on Linux (elsewhere it would open a window)")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "WAYLAND_SOCKET")}
    out = tmp_path / "s.rrd"
    r = subprocess.run([sys.executable, "-m", "prf.cli", "view", str(ALOHA), "--episode", "1", "--out", str(out),
                        "--spawn"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and str(out) in r.stdout
    assert "viewer" in r.stdout  # says why no viewer opened (none found / no display)
    rows, _, _ = _read(out)
    assert rows["/observation.images.top"] == prf.DatasetMeta(ALOHA).episodes[1].length
