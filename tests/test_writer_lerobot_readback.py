"""LeRobot itself reads what prf writes: a dataset from prf.write_lerobot_dataset (two tasks, streamed
frames, several data and video shards) and one from prf.log_to_lerobot are loaded with LeRobot's
``LeRobotDataset`` in a subprocess, and every sample equals prf.open_dataset's: numeric features and
index columns bit-equal, task strings equal, frames within the parity tolerance of
../shared/data/README.md.

Runs when $PRF_LEROBOT_PYTHON names a Python with lerobot installed (e.g. the reference environment of
../shared/lerobot-reference.md: ``../shared/tools/lerobot-reference/setup.sh VENV`` then
``PRF_LEROBOT_PYTHON=VENV/bin/python``); skipped otherwise.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import _logs
import prf
from test_writer_lerobot import FEATURES, _episode

LEROBOT_PYTHON = os.environ.get("PRF_LEROBOT_PYTHON")
SCRIPT = Path(__file__).parent / "tools" / "lerobot_readback.py"

pytestmark = pytest.mark.skipif(
    not LEROBOT_PYTHON or not Path(LEROBOT_PYTHON).is_file(),
    reason="set PRF_LEROBOT_PYTHON to a Python with lerobot installed (../shared/lerobot-reference.md) "
           "to check that LeRobot reads prf-written datasets",
)


def _lerobot_read(root: Path, out: Path) -> dict:
    r = subprocess.run([LEROBOT_PYTHON, str(SCRIPT), str(root), str(out)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, f"LeRobot could not read {root}:\n{r.stderr[-4000:]}"
    return dict(np.load(out))


def _compare(root: Path, lr: dict, record_property) -> None:
    ds = prf.open_dataset(root)
    assert int(lr["__len__"]) == len(ds) and int(lr["__episodes__"]) == ds.meta.total_episodes
    b = ds.get_batch(list(lr["__indices__"]))
    worst = 0
    for key, ref in lr.items():
        if key.startswith("__"):
            continue
        if key == "task":
            assert list(b["task"]) == [str(x) for x in ref]
        elif key in ds.meta.camera_keys:
            diff = np.abs(b[key].astype(np.int16) - ref.astype(np.int16))
            worst = max(worst, int(diff.max()))
            assert diff.max() <= 8 and diff.reshape(len(diff), -1).mean(1).max() <= 0.5, key
        else:
            got = b[key]
            assert got.shape == ref.shape and np.array_equal(got, ref.astype(got.dtype)), key
    record_property("max_abs_frame_diff", worst)
    print(f"{root.name}: LeRobot read {len(ds)} frames; largest frame |diff| {worst}")


def test_lerobot_reads_written_dataset(tmp_path, record_property):
    root = prf.write_lerobot_dataset(
        tmp_path / "written", FEATURES, (_episode(e, streamed=e % 2 == 1) for e in range(4)), 10,
        tasks=["pick", "place"], robot_type="test_arm", data_files_size_in_mb=0.0002,
        video_files_size_in_mb=0.0002, progress=False)
    assert len(list((root / "data" / "chunk-000").iterdir())) > 1
    _compare(root, _lerobot_read(root, tmp_path / "a.npz"), record_property)


def test_lerobot_reads_compact_written_dataset(tmp_path, record_property):
    """compact=True (BYTE_STREAM_SPLIT + zstd data shards): LeRobot reads the same samples."""
    import pyarrow.parquet as pq

    root = prf.write_lerobot_dataset(
        tmp_path / "compact", FEATURES, (_episode(e, streamed=False) for e in range(3)), 10, tasks=["pick", "place"],
        compact=True, progress=False)
    md = pq.ParquetFile(root / "data" / "chunk-000" / "file-000.parquet").metadata.row_group(0)
    assert any("BYTE_STREAM_SPLIT" in md.column(i).encodings for i in range(md.num_columns))
    _compare(root, _lerobot_read(root, tmp_path / "c.npz"), record_property)


def test_lerobot_reads_log_to_lerobot_dataset(tmp_path, record_property):
    _logs.write_ros2_bag(tmp_path / "bag", "sqlite3")
    root = prf.log_to_lerobot(
        tmp_path / "bag", tmp_path / "from_log", fps=20, state=["/joint_states/position"], action=["/cmd_vel"],
        cameras={"observation.images.raw": "/camera/image_raw", "observation.images.jpeg": "/camera/compressed"},
        episode_split=5, task=["a", "b", "a"], progress=False)
    _compare(root, _lerobot_read(root, tmp_path / "b.npz"), record_property)
