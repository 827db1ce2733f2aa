"""prf.log_to_lerobot: a generated ROS bag (joint states linear in time, raw and JPEG camera images, a
velocity command) -> a LeRobot v3.0 dataset whose values equal the analytic signals at the frame
times, whose frames are the images at or before each frame time; episode splits; clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import _logs
import prf
from prf.errors import DataFrameError

FPS = 20
CAMS = {"observation.images.raw": "/camera/image_raw", "observation.images.jpeg": "/camera/compressed"}


@pytest.fixture(scope="module")
def bag(module_tmp):
    p = module_tmp("bag") / "robot"
    _logs.write_ros2_bag(p, "mcap")
    return p


def _grid(n):
    t0 = _logs.T0 + 3_000_000  # the first camera image is the latest first message
    return t0 + (np.arange(n, dtype=np.int64) * 10**9) // FPS


def test_values_and_frames(bag, tmp_path):
    root = prf.log_to_lerobot(bag, tmp_path / "ds", fps=FPS, state=["/joint_states/position"],
                              action=["/cmd_vel/linear.x", ("/cmd_vel", "angular.z")], cameras=CAMS,
                              task="reach", robot_type="arm3", progress=False)
    ds = prf.open_dataset(root)
    n = len(ds)
    grid = _grid(n)
    # the data span: images from T0+3ms to T0+3ms+19*33ms, joints to T0+590ms, commands to T0+580ms
    assert grid[-1] <= _logs.T0 + 580_000_000 < grid[-1] + 10**9 // FPS
    assert ds.meta.features["observation.state"].names == ("shoulder.position", "elbow.position", "wrist.position")
    assert ds.meta.features["action"].names == ("linear.x", "angular.z")
    b = ds.get_batch(list(range(n)))
    k = (grid - _logs.T0) / 10_000_000  # joint message index, fractional: positions are linear in it
    want_state = np.stack([_logs.joint_positions(x) for x in k]).astype(np.float32)
    assert np.allclose(b["observation.state"], want_state, atol=1e-6, rtol=0)
    kc = (grid - _logs.T0) / 20_000_000
    assert np.allclose(b["action"], np.stack([0.1 * kc, -0.05 * kc], 1).astype(np.float32), atol=1e-6)
    img_index = (grid - _logs.T0 - 3_000_000) // 33_000_000
    def mad(frame, k):
        return np.abs(frame.astype(int) - _logs.image(int(k)).astype(int)).mean()

    for cam in CAMS:  # lossy (AV1, and JPEG before it): the right image is close and closer than its neighbours
        for f in range(n):
            d = mad(b[cam][f], img_index[f])
            assert d < 6 and d < mad(b[cam][f], img_index[f] + 1) and (img_index[f] == 0 or d < mad(b[cam][f], img_index[f] - 1)), (cam, f)
    assert set(b["task"]) == {"reach"} and ds.meta.robot_type == "arm3"


def test_matches_dataframe_resampling(bag, tmp_path):
    df = prf.RoboticsDataFrame.from_log(bag, progress=False)
    root = prf.log_to_lerobot(df, tmp_path / "ds", fps=FPS, state=["/joint_states"], method="previous",
                              progress=False)
    ds = prf.open_dataset(root)
    grid = _grid(len(ds))
    rs = df.resample_at(grid, "previous", topics=["/joint_states"])["/joint_states"]
    want = np.concatenate([np.array(rs.column(c).to_pylist()) for c in ("position", "velocity", "effort")], 1)
    got = ds.get_batch(list(range(len(ds))))["observation.state"]
    assert got.shape == (len(ds), 9) and np.array_equal(got, want.astype(np.float32))


def test_episode_split(bag, tmp_path):
    root = prf.log_to_lerobot(bag, tmp_path / "a", fps=FPS, state=["/joint_states/position"], episode_split=4,
                              task="t", progress=False)
    ds = prf.open_dataset(root)
    lengths = [e.length for e in ds.meta.episodes.values()]
    assert lengths[:-1] == [4] * (len(lengths) - 1) and 1 <= lengths[-1] <= 4 and sum(lengths) == 12
    spans = [(_logs.T0 + 100_000_000, _logs.T0 + 300_000_000), (_logs.T0 + 400_000_000, _logs.T0 + 10**10)]
    root = prf.log_to_lerobot(bag, tmp_path / "b", fps=FPS, state=["/joint_states/position"], cameras=CAMS,
                              episode_split=spans, task=["first", "second"], progress=False)
    ds = prf.open_dataset(root)
    assert [e.length for e in ds.meta.episodes.values()] == [4, 4]  # 100..250 ms and 400..550 ms at 20 fps
    assert ds.meta.tasks == {0: "first", 1: "second"}
    b = ds.get_batch([4])
    want = _logs.joint_positions(40.0).astype(np.float32)  # first frame of episode 2: T0 + 400 ms
    assert np.allclose(b["observation.state"][0], want, atol=1e-6)


def test_ros1_bag_source(tmp_path):
    _logs.write_ros1_bag(tmp_path / "r.bag", "bz2")
    root = prf.log_to_lerobot(tmp_path / "r.bag", tmp_path / "ds", fps=FPS, state=["/joint_states/position"],
                              cameras={"observation.images.cam": "/camera/compressed"}, progress=False)
    ds = prf.open_dataset(root)
    assert len(ds) == 12 and ds[0]["observation.images.cam"].shape == (_logs.H, _logs.W, 3)


def test_errors_leave_nothing(bag, tmp_path):
    with pytest.raises(DataFrameError, match="names no topic"):
        prf.log_to_lerobot(bag, tmp_path / "x", fps=FPS, state=["/nope/position"], progress=False)
    with pytest.raises(DataFrameError, match="not an image topic"):
        prf.log_to_lerobot(bag, tmp_path / "x", fps=FPS, state=["/joint_states/position"],
                           cameras={"observation.images.x": "/cmd_vel"}, progress=False)
    with pytest.raises(DataFrameError, match="fps"):
        prf.log_to_lerobot(bag, tmp_path / "x", fps=0, state=["/joint_states/position"], progress=False)
    with pytest.raises(DataFrameError, match="no frame inside"):
        prf.log_to_lerobot(bag, tmp_path / "x", fps=FPS, state=["/joint_states/position"],
                           episode_split=[(0, 10)], progress=False)
    assert not (tmp_path / "x").exists()
