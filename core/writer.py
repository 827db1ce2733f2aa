"""Write LeRobot v3.0 datasets: parquet data shards, mp4 video shards (many episodes per file, each
episode at its ``from_timestamp``), ``meta/episodes`` with per-episode stats, ``meta/tasks.parquet``,
``meta/info.json`` and ``meta/stats.json``, in the layout LeRobot 0.4.x writes.

Writes are atomic: everything goes to a temporary folder beside ``root`` that is renamed into place at
the end; an error (or an interrupt) midway removes it and leaves no dataset behind.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from .encode import VideoEncoder, pick_encoder
from .errors import PrfError, WriteError
from .stats import aggregate_stats, feature_stats, stats_to_json

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
_INDEX_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
_CODEC_NAMES = {"libsvtav1": "av1", "libaom-av1": "av1", "libx264": "h264", "h264": "h264", "libx265": "hevc"}


def write_lerobot_dataset(
    root: str | Path,
    *,
    features: Mapping[str, Mapping[str, Any]],
    episodes: Iterable[Mapping[str, Any]],
    fps: int,
    robot_type: str | None = None,
    video_codec: str = "auto",
    chunks_size: int = 1000,
    data_files_size_in_mb: int = 100,
    video_files_size_in_mb: int = 200,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write a LeRobot v3.0 dataset at ``root`` and return its path.

    Args:
        root: destination folder; must not exist unless ``overwrite``.
        features: ``{key: {"dtype", "shape", "names"?}}`` of the recorded features (not the index
            columns, which are added). Cameras have ``dtype "video"`` and ``shape [H, W, 3]``.
        episodes: an iterable of episodes, each ``{key: array [L, *shape]}`` for every feature (cameras
            ``uint8 [L, H, W, 3]`` RGB) plus ``"task": str``. Consumed one at a time.
        fps: frames per second.
        robot_type: stored in ``info.json``.
        video_codec: ``"auto"`` (AV1 when available, else H.264), ``"av1"``, ``"h264"``, ``"hevc"``.
        data_files_size_in_mb, video_files_size_in_mb: a new shard starts when one grows past this.

    Raises:
        WriteError: bad features or episode arrays, or ``root`` exists; nothing is left at ``root``.
    """
    root = Path(root)
    if root.exists() and not overwrite:
        raise WriteError(f"{root}: already exists (pass overwrite=True to replace it)")
    feats = _check_features(features, root)
    cameras = [k for k, f in feats.items() if f["dtype"] == "video"]
    tmp = root.parent / f".{root.name}.prf-tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        w = _Writer(tmp, feats, cameras, fps, video_codec, chunks_size, data_files_size_in_mb, video_files_size_in_mb)
        for ep in tqdm(episodes, desc=f"writing {root.name}", unit="episode", disable=not progress):
            w.add_episode(ep)
        w.finish(robot_type)
        if root.exists():
            trash = root.parent / f".{root.name}.prf-old-{uuid.uuid4().hex[:8]}"
            os.rename(root, trash)
            os.rename(tmp, root)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.rename(tmp, root)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, PrfError) or not isinstance(e, Exception):
            raise
        raise WriteError(f"{root}: writing failed, nothing was written ({type(e).__name__}: {e})") from e
    return root


def _check_features(features: Mapping[str, Mapping[str, Any]], root: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, spec in features.items():
        if key in _INDEX_FEATURES or key == "task":
            raise WriteError(f"{root}: feature {key!r} is written by prf itself; do not declare it")
        dtype = str(spec.get("dtype", ""))
        shape = [int(s) for s in spec.get("shape", [1])]
        if dtype == "video":
            if len(shape) != 3 or shape[2] != 3:
                raise WriteError(f"{root}: camera {key!r} must have shape [H, W, 3], got {shape}")
        elif dtype == "image":
            raise WriteError(f"{root}: feature {key!r}: dtype 'image' is not written by prf; use 'video'")
        else:
            try:
                np.dtype(dtype)
            except TypeError:
                raise WriteError(f"{root}: feature {key!r} has unknown dtype {dtype!r}") from None
        out[key] = {"dtype": dtype, "shape": shape, "names": spec.get("names")}
    if not out:
        raise WriteError(f"{root}: no features declared")
    return out


def _arrow_type(dtype: str, shape: list[int]) -> pa.DataType:
    t = pa.from_numpy_dtype(np.dtype(dtype))
    if shape == [1]:
        return t
    for n in reversed(shape):
        t = pa.list_(t, n)
    return t


def _hf_feature(dtype: str, shape: list[int]) -> dict[str, Any]:
    f: dict[str, Any] = {"dtype": dtype, "_type": "Value"}
    if shape == [1]:
        return f
    for n in reversed(shape):
        f = {"feature": f, "length": n, "_type": "List"}
    return f


class _Writer:
    def __init__(self, tmp: Path, feats: dict, cameras: list[str], fps: int, codec: str, chunks_size: int,
                 data_mb: int, video_mb: int):
        self.tmp, self.feats, self.cameras, self.fps = tmp, feats, cameras, fps
        self.encoder_name = pick_encoder(codec) if cameras else None
        self.chunks_size, self.data_bytes, self.video_bytes = chunks_size, data_mb * 2**20, video_mb * 2**20
        self.tasks: dict[str, int] = {}
        self.episode_rows: list[dict[str, Any]] = []
        self.episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
        self.total = 0
        self.data_file = 0
        self.data_pending: list[pa.Table] = []
        self.data_pending_bytes = 0
        self.video: dict[str, dict[str, Any]] = {c: {"file": 0, "enc": None, "frames": 0} for c in cameras}
        all_feats = {**feats, **_INDEX_FEATURES}
        self.schema = pa.schema(
            [pa.field(k, _arrow_type(f["dtype"], f["shape"])) for k, f in all_feats.items() if f["dtype"] != "video"],
            metadata={"huggingface": json.dumps({"info": {"features": {
                k: _hf_feature(f["dtype"], f["shape"]) for k, f in all_feats.items() if f["dtype"] != "video"
            }}})},
        )

    def _loc(self, file_no: int) -> dict[str, int]:
        return {"chunk_index": file_no // self.chunks_size, "file_index": file_no % self.chunks_size}

    def add_episode(self, ep: Mapping[str, Any]) -> None:
        e = len(self.episode_rows)
        task = ep.get("task")
        if not isinstance(task, str):
            raise WriteError(f"episode {e}: 'task' must be a string, got {task!r}")
        lengths = {k: len(ep[k]) for k in self.feats if k in ep}
        missing = [k for k in self.feats if k not in ep]
        if missing:
            raise WriteError(f"episode {e}: features {missing} are missing")
        if len(set(lengths.values())) != 1:
            raise WriteError(f"episode {e}: features have different lengths {lengths}")
        length = next(iter(lengths.values()))
        if length == 0:
            raise WriteError(f"episode {e}: has no frames")
        task_index = self.tasks.setdefault(task, len(self.tasks))
        cols: dict[str, Any] = {}
        stats: dict[str, dict[str, np.ndarray]] = {}
        for k, f in self.feats.items():
            a = np.asarray(ep[k])
            want = (length, *f["shape"]) if f["dtype"] == "video" or f["shape"] != [1] else (length,)
            if a.shape == (length, 1) and f["shape"] == [1]:
                a = a.reshape(length)
            if a.shape != tuple(want):
                raise WriteError(f"episode {e}: feature {k!r} has shape {a.shape}, expected {tuple(want)}")
            if f["dtype"] == "video":
                if a.dtype != np.uint8:
                    raise WriteError(f"episode {e}: camera {k!r} frames must be uint8, got {a.dtype}")
                stats[k] = feature_stats(a[:: max(1, length // 100)], is_camera=True)
                continue
            a = a.astype(f["dtype"], copy=False)
            stats[k] = feature_stats(a)
            cols[k] = a
        frame_index = np.arange(length, dtype=np.int64)
        cols["timestamp"] = (frame_index / self.fps).astype(np.float32)
        cols["frame_index"] = frame_index
        cols["episode_index"] = np.full(length, e, dtype=np.int64)
        cols["index"] = np.arange(self.total, self.total + length, dtype=np.int64)
        cols["task_index"] = np.full(length, task_index, dtype=np.int64)
        for k in _INDEX_FEATURES:
            stats[k] = feature_stats(cols[k])
        row: dict[str, Any] = {
            "episode_index": e, "tasks": [task], "length": length,
            **{f"data/{n}": v for n, v in self._loc(self.data_file).items()},
            "dataset_from_index": self.total, "dataset_to_index": self.total + length,
        }
        self._add_data(cols, length)
        for c in self.cameras:
            row.update(self._add_video(c, np.asarray(ep[c]), length))
        for k, s in stats.items():
            for name, v in s.items():
                row[f"stats/{k}/{name}"] = v.tolist()
        self.episode_rows.append(row)
        self.episode_stats.append(stats)
        self.total += length

    def _add_data(self, cols: dict[str, np.ndarray], length: int) -> None:
        arrays = []
        for field in self.schema:
            a = cols[field.name]
            arr = pa.array(a.reshape(-1))
            for n in reversed(a.shape[1:]):
                arr = pa.FixedSizeListArray.from_arrays(arr, n)
            arrays.append(arr)
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        self.data_pending.append(table)
        self.data_pending_bytes += table.nbytes
        if self.data_pending_bytes >= self.data_bytes:
            self._flush_data()
            self.data_file += 1

    def _flush_data(self) -> None:
        if not self.data_pending:
            return
        path = self.tmp / DATA_PATH.format(**self._loc(self.data_file))
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(self.data_pending), path)
        self.data_pending, self.data_pending_bytes = [], 0

    def _add_video(self, key: str, frames: np.ndarray, length: int) -> dict[str, Any]:
        v = self.video[key]
        if v["enc"] is not None and os.path.getsize(v["enc"].path) >= self.video_bytes:
            v["enc"].close()
            v["enc"], v["file"], v["frames"] = None, v["file"] + 1, 0
        if v["enc"] is None:
            path = self.tmp / VIDEO_PATH.format(video_key=key, **self._loc(v["file"]))
            path.parent.mkdir(parents=True, exist_ok=True)
            h, w = self.feats[key]["shape"][:2]
            v["enc"] = VideoEncoder(path, self.fps, w, h, codec=self.encoder_name)
        start = v["frames"]
        v["enc"].add(frames)
        v["frames"] += length
        loc = self._loc(v["file"])
        return {
            f"videos/{key}/chunk_index": loc["chunk_index"],
            f"videos/{key}/file_index": loc["file_index"],
            f"videos/{key}/from_timestamp": start / self.fps,
            f"videos/{key}/to_timestamp": (start + length) / self.fps,
        }

    def finish(self, robot_type: str | None) -> None:
        if not self.episode_rows:
            raise WriteError("no episodes were given")
        self._flush_data()
        for v in self.video.values():
            if v["enc"] is not None:
                v["enc"].close()
        meta = self.tmp / "meta"
        ep_path = self.tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
        ep_path.parent.mkdir(parents=True, exist_ok=True)
        for r in self.episode_rows:
            r["meta/episodes/chunk_index"], r["meta/episodes/file_index"] = 0, 0
        pq.write_table(pa.Table.from_pylist(self.episode_rows), ep_path)
        _write_tasks(meta / "tasks.parquet", self.tasks)
        codec = _CODEC_NAMES.get(self.encoder_name or "", self.encoder_name)
        features: dict[str, Any] = {}
        for k, f in self.feats.items():
            features[k] = dict(f)
            if f["dtype"] == "video":
                h, w, c = f["shape"]
                features[k]["names"] = f["names"] or ["height", "width", "channels"]
                features[k]["info"] = {
                    "video.height": h, "video.width": w, "video.codec": codec, "video.pix_fmt": "yuv420p",
                    "video.is_depth_map": False, "video.fps": self.fps, "video.channels": c, "has_audio": False,
                }
        features.update(_INDEX_FEATURES)
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": len(self.episode_rows),
            "total_frames": self.total,
            "total_tasks": len(self.tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_bytes // 2**20,
            "video_files_size_in_mb": self.video_bytes // 2**20,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episode_rows)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.cameras else None,
            "features": features,
        }
        (meta / "info.json").write_text(json.dumps(info, indent=4))
        (meta / "stats.json").write_text(json.dumps(stats_to_json(aggregate_stats(self.episode_stats)), indent=4))


def _write_tasks(path: Path, tasks: dict[str, int]) -> None:
    """``tasks.parquet`` as LeRobot writes it: a ``task_index`` column, the task text as pandas index."""
    names = list(tasks)
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0",
    }
    table = pa.table(
        {"task_index": pa.array([tasks[n] for n in names], pa.int64()), "__index_level_0__": pa.array(names, pa.string())},
    ).replace_schema_metadata({"pandas": json.dumps(pandas_meta)})
    pq.write_table(table, path)
