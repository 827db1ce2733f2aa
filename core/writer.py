"""Write LeRobot v3.0 datasets: parquet data shards, mp4 video shards (many episodes per file, each
episode at its ``from_timestamp``), ``meta/episodes`` with per-episode stats, ``meta/tasks.parquet``,
``meta/info.json`` and ``meta/stats.json``, in the layout LeRobot 0.4.x writes.

Writes are atomic: everything goes to a temporary folder beside ``root`` that is renamed into place at
the end; an error (or an interrupt) midway removes it and leaves no dataset behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from .encode import VideoEncoder, pick_encoder
from .errors import PrfError, WriteError
from .stats import aggregate_stats, feature_stats, stats_to_json
from ._atomic import replace_dir, temp_dir_for
from .format.layout import (CODEBASE_VERSION, DATA_PATH, EPISODES_PATH, INDEX_FEATURES as _INDEX_FEATURES,
                             PARQUET_WRITE_OPTIONS, VIDEO_PATH, arrow_type as _arrow_type,
                             hf_feature as _hf_feature, write_parquet, write_tasks)

# Every parquet file prf writes carries CRC-32 page checksums (see prf.format.layout.PARQUET_WRITE_OPTIONS).
_CODEC_NAMES = {"libsvtav1": "av1", "libaom-av1": "av1", "libx264": "h264", "h264": "h264"}


def write_lerobot_dataset(
    root: str | Path,
    features: Mapping[str, Mapping[str, Any]],
    episodes: Iterable[Mapping[str, Any]],
    fps: int,
    *,
    tasks: Sequence[str] | None = None,
    robot_type: str | None = None,
    video_codec: str = "auto",
    chunks_size: int = 1000,
    data_files_size_in_mb: float = 100,
    video_files_size_in_mb: float = 200,
    overwrite: bool = False,
    compact: bool = False,
    progress: bool = True,
) -> Path:
    """Write a LeRobot v3.0 dataset at ``root`` and return its path.

    The layout is LeRobot 0.4.x's: ``data/chunk-XXX/file-YYY.parquet`` shards (a new file once the
    current one holds ``data_files_size_in_mb``), per camera ``videos/{key}/chunk-XXX/file-YYY.mp4``
    shards (many episodes per file, each at its ``from_timestamp``; a new file once the encoded video
    passes ``video_files_size_in_mb``), ``meta/episodes/chunk-000/file-000.parquet`` (one row per
    episode with its data/video locations and per-episode ``stats/{feature}/{stat}``),
    ``meta/tasks.parquet``, ``meta/info.json``, ``meta/stats.json``. Camera frames are encoded with
    PyAV: AV1 (libsvtav1, else libaom) where the PyAV build has it, else H.264; ``yuv420p``, a keyframe
    every 2 frames, CRF 30 (LeRobot's defaults).

    Args:
        root: destination folder; must not exist unless ``overwrite``.
        features: ``{key: {"dtype", "shape", "names"?}}`` of the recorded features (not the index
            columns, which are added). Cameras have ``dtype "video"`` and ``shape [H, W, 3]``.
        episodes: an iterable of episodes, consumed one at a time. Each is ``{key: values}`` for every
            feature plus ``"task": str`` (or ``"task_index": int`` into ``tasks``). Non-camera values
            are arrays ``[L, *shape]``; camera values are ``uint8 [L, H, W, 3]`` RGB arrays or any
            iterable of ``uint8 [H, W, 3]`` frames (consumed while encoding, so an episode's video need
            not fit in memory; its length must still be ``L``).
        fps: frames per second.
        tasks: task strings in ``task_index`` order (default: in order of first use). When given, an
            episode's task must be one of them.
        robot_type: stored in ``info.json``.
        video_codec: ``"auto"`` (AV1 when available, else H.264), ``"av1"``, ``"h264"`` (no HEVC: see
            :data:`prf.encode.ENCODERS`).
        data_files_size_in_mb, video_files_size_in_mb: shard sizes (LeRobot: 100 and 200). A new shard
            starts with the first episode after the current one reached the size: data by the Arrow size
            of its rows, video by the encoded bytes muxed so far (the encoder holds a few frames back,
            so a video shard can end up somewhat larger).
        compact: store the data shards' floating-point columns with Parquet's ``BYTE_STREAM_SPLIT``
            encoding and zstd (level 9), the others zstd with dictionaries (default: snappy, as LeRobot
            writes); smaller files that LeRobot and pyarrow read unchanged (see
            :func:`prf.format.layout.write_parquet`; sizes in BENCHMARKS.md "Compact writes"). The edit
            operations (``prf.delete_episodes`` ...) take the same option.

    Raises:
        WriteError: bad features or episode arrays, ``root`` exists, or the write failed midway. The
            dataset is written to a temporary folder beside ``root`` and renamed into place at the end;
            on any error or interrupt (``KeyboardInterrupt`` included) the temporary folder is removed,
            so nothing is left at ``root``.
    """
    root = Path(root)
    if root.exists() and not overwrite:
        raise WriteError(f"{root}: already exists (pass overwrite=True to replace it)")
    feats = _check_features(features, root)
    cameras = [k for k, f in feats.items() if f["dtype"] == "video"]
    tmp = temp_dir_for(root)
    if tasks is not None:
        tasks = list(tasks)
        if len(set(tasks)) != len(tasks) or not all(isinstance(t, str) for t in tasks):
            raise WriteError(f"{root}: tasks must be distinct strings, got {tasks!r}")
    tmp.mkdir(parents=True)
    w = None
    try:
        w = _Writer(tmp, feats, cameras, fps, video_codec, chunks_size, data_files_size_in_mb, video_files_size_in_mb,
                    tasks, compact)
        for ep in tqdm(episodes, desc=f"writing {root.name}", unit="episode", disable=not progress):
            w.add_episode(ep)
        w.finish(robot_type)
        replace_dir(tmp, root)
    except BaseException as e:
        if w is not None:
            w.abort()
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






class _Writer:
    def __init__(self, tmp: Path, feats: dict, cameras: list[str], fps: int, codec: str, chunks_size: int,
                 data_mb: float, video_mb: float, tasks: list[str] | None = None, compact: bool = False):
        self.tmp, self.feats, self.cameras, self.fps = tmp, feats, cameras, fps
        self.compact = compact
        self.encoder_name = pick_encoder(codec) if cameras else None
        self.chunks_size, self.data_mb, self.video_mb = chunks_size, data_mb, video_mb
        self.data_bytes, self.video_bytes = data_mb * 2**20, video_mb * 2**20
        self.fixed_tasks = tasks is not None
        self.tasks: dict[str, int] = {t: i for i, t in enumerate(tasks or [])}
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

    def _task(self, ep: Mapping[str, Any], e: int) -> tuple[str, int]:
        if "task" not in ep and "task_index" in ep:
            ti = int(ep["task_index"])
            by_index = {i: t for t, i in self.tasks.items()}
            if ti not in by_index:
                raise WriteError(f"episode {e}: task_index {ti} is not an index into tasks ({len(self.tasks)} tasks)")
            return by_index[ti], ti
        task = ep.get("task")
        if not isinstance(task, str):
            raise WriteError(f"episode {e}: 'task' must be a string, got {task!r}")
        if task not in self.tasks:
            if self.fixed_tasks:
                raise WriteError(f"episode {e}: task {task!r} is not one of tasks={list(self.tasks)}")
            self.tasks[task] = len(self.tasks)
        return task, self.tasks[task]

    def add_episode(self, ep: Mapping[str, Any]) -> None:
        e = len(self.episode_rows)
        task, task_index = self._task(ep, e)
        missing = [k for k in self.feats if k not in ep]
        if missing:
            raise WriteError(f"episode {e}: features {missing} are missing")
        ep = dict(ep)
        lengths = {k: len(ep[k]) for k in self.feats if hasattr(ep[k], "__len__")}
        if not lengths:  # only streamed cameras: the first one sets the length
            first = self.cameras[0]
            ep[first] = np.asarray(list(ep[first]))
            lengths = {first: len(ep[first])}
        if len(set(lengths.values())) != 1:
            raise WriteError(f"episode {e}: features have different lengths {lengths}")
        length = next(iter(lengths.values()))
        if length == 0:
            raise WriteError(f"episode {e}: has no frames")
        cols: dict[str, Any] = {}
        stats: dict[str, dict[str, np.ndarray]] = {}
        for k, f in self.feats.items():
            if f["dtype"] == "video":
                continue
            a = np.asarray(ep[k])
            want = (length, *f["shape"]) if f["shape"] != [1] else (length,)
            if a.shape == (length, 1) and f["shape"] == [1]:
                a = a.reshape(length)
            if a.shape != tuple(want):
                raise WriteError(f"episode {e}: feature {k!r} has shape {a.shape}, expected {tuple(want)}")
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
        for c in self.cameras:
            row.update(self._add_video(c, ep[c], length, e, stats))
        self._add_data(cols, length)
        for k in [*self.feats, *_INDEX_FEATURES]:
            for name, v in stats[k].items():
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
        write_parquet(pa.concat_tables(self.data_pending), path, compact=self.compact)
        self.data_pending, self.data_pending_bytes = [], 0

    def _add_video(self, key: str, frames: Any, length: int, e: int, stats: dict[str, Any]) -> dict[str, Any]:
        v = self.video[key]
        if v["enc"] is not None and v["enc"].bytes_written >= self.video_bytes:
            v["enc"].close()
            v["enc"], v["file"], v["frames"] = None, v["file"] + 1, 0
        h, w = self.feats[key]["shape"][:2]
        if v["enc"] is None:
            path = self.tmp / VIDEO_PATH.format(video_key=key, **self._loc(v["file"]))
            path.parent.mkdir(parents=True, exist_ok=True)
            v["enc"] = VideoEncoder(path, self.fps, w, h, codec=self.encoder_name)
        enc = v["enc"]
        every = max(1, length // 100)
        if isinstance(frames, np.ndarray):
            if frames.shape != (length, h, w, 3):
                raise WriteError(f"episode {e}: camera {key!r} has shape {frames.shape}, expected {(length, h, w, 3)}")
            if frames.dtype != np.uint8:
                raise WriteError(f"episode {e}: camera {key!r} frames must be uint8, got {frames.dtype}")
            enc.add(frames)
            samples = frames[::every]
            n = length
        else:
            picked, buf, n = [], [], 0
            for fr in _frames(frames):
                if fr.shape != (h, w, 3) or fr.dtype != np.uint8:
                    raise WriteError(f"episode {e}: camera {key!r} frame {n} is {fr.dtype} {fr.shape}, expected "
                                     f"uint8 {(h, w, 3)}")
                if n >= length:
                    raise WriteError(f"episode {e}: camera {key!r} has more than {length} frames")
                if n % every == 0:
                    picked.append(fr)
                buf.append(fr)
                n += 1
                if len(buf) == 16:
                    enc.add(np.stack(buf))
                    buf = []
            if buf:
                enc.add(np.stack(buf))
            if n != length:
                raise WriteError(f"episode {e}: camera {key!r} has {n} frames, the other features {length}")
            samples = np.stack(picked)
        stats[key] = feature_stats(samples, is_camera=True)
        start = v["frames"]
        v["frames"] += length
        loc = self._loc(v["file"])
        return {
            f"videos/{key}/chunk_index": loc["chunk_index"],
            f"videos/{key}/file_index": loc["file_index"],
            f"videos/{key}/from_timestamp": start / self.fps,
            f"videos/{key}/to_timestamp": (start + length) / self.fps,
        }

    def abort(self) -> None:
        """Close open video files after an error (the caller removes the folder)."""
        for v in self.video.values():
            if v["enc"] is not None:
                v["enc"].abort()
                v["enc"] = None

    def finish(self, robot_type: str | None) -> None:
        if not self.episode_rows:
            raise WriteError("no episodes were given")
        self._flush_data()
        for v in self.video.values():
            if v["enc"] is not None:
                enc, v["enc"] = v["enc"], None
                enc.close()
        meta = self.tmp / "meta"
        ep_path = self.tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
        ep_path.parent.mkdir(parents=True, exist_ok=True)
        for r in self.episode_rows:
            r["meta/episodes/chunk_index"], r["meta/episodes/file_index"] = 0, 0
        pq.write_table(pa.Table.from_pylist(self.episode_rows), ep_path, **PARQUET_WRITE_OPTIONS)
        write_tasks(meta / "tasks.parquet", sorted(self.tasks, key=self.tasks.get))
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
            "data_files_size_in_mb": self.data_mb,
            "video_files_size_in_mb": self.video_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episode_rows)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.cameras else None,
            "features": features,
        }
        (meta / "info.json").write_text(json.dumps(info, indent=4))
        (meta / "stats.json").write_text(json.dumps(stats_to_json(aggregate_stats(self.episode_stats)), indent=4))


def _frames(frames: Any) -> Iterator[np.ndarray]:
    for fr in frames:
        yield np.asarray(fr)
