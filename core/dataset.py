"""The map-style Dataset: index -> sample dict, exactly as LeRobot's ``LeRobotDataset.__getitem__``.

Non-camera features come from the episode parquet files (loaded once, as NumPy columns). Camera frames
are decoded at ``from_timestamp + timestamp`` of the (clamped) window rows, the frame chosen by nearest
pts and checked against ``tolerance_s``. :meth:`Dataset.get_batch` assembles many samples at once and
decodes each video file's requests in one sorted pass.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .decode import DecodeBackend, get_backend
from .errors import DataFileError, DatasetError, TimestampError
from .format import INDEX_KEYS, DatasetMeta, read_parquet
from .loading.plan import BatchPlan, CameraRequest, DecodedFrames, DecodeTask, assemble, decode_tasks
from .image import decode_image
from .windows import delta_indices, window_rows


class Dataset:
    """A LeRobot dataset opened for training (see :func:`prf.open_dataset`).

    ``len(ds)`` is the number of frames of the selected episodes; ``ds[i]`` is a dict with LeRobot's
    keys: every declared non-camera feature (``observation.state`` ``float32 [D]`` ...), ``timestamp``
    (``float32``, seconds), ``frame_index``, ``episode_index``, ``index``, ``task_index`` (``int64``),
    ``task`` (str), and per camera ``uint8 [H, W, C]`` RGB (video cameras decoded by the backend;
    ``image``-dtype cameras decoded from the parquet's PNG/JPEG bytes with Pillow, keeping the file's
    channels: grey ``C=1``). A key with a ``delta_timestamps`` window
    gains a leading time axis (``[T, ...]``; cameras ``[T, H, W, C]``) and a ``{key}_is_pad``
    ``bool [T]``.
    """

    def __init__(
        self,
        meta: DatasetMeta,
        *,
        episodes: Iterable[int] | None = None,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        tolerance_s: float = 1e-4,
        cameras: Iterable[str] | None = None,
        backend: str | DecodeBackend = "pyav",
        device: str = "cpu",
    ):
        self.meta = meta
        self.tolerance_s = float(tolerance_s)
        self.backend = get_backend(self._resolve_auto(backend, cameras), device)
        self.delta_timestamps = {k: list(v) for k, v in (delta_timestamps or {}).items()}
        self.cameras = self._select_cameras(cameras)
        self.episodes = self._select_episodes(episodes)
        self.delta_indices = delta_indices(self.delta_timestamps, meta.fps, meta.features, self.tolerance_s)
        meta.check_files(self.episodes, self.video_cameras)
        self._load_rows()

    # ---- set-up ---------------------------------------------------------------------------------
    #: ``backend="auto"``: torchcodec for cameras up to this many pixels, PyAV above (measured on this
    #: project's datasets with 2 workers: torchcodec 1.9x faster at 96x96, 1.2x at 320x240, PyAV 1.25x
    #: faster at 640x360, equal at 640x480; BENCHMARKS.md).
    AUTO_TORCHCODEC_MAX_PIXELS = 160_000

    def _resolve_auto(self, backend: Any, cameras: Iterable[str] | None) -> Any:
        if backend != "auto":
            return backend
        from .decode import torchcodec_available

        keys = self.meta.video_keys if cameras is None else [c for c in cameras if c in self.meta.video_keys]
        areas = [self.meta.features[k].shape[0] * self.meta.features[k].shape[1] for k in keys
                 if len(self.meta.features[k].shape) >= 2]
        small = not areas or max(areas) <= self.AUTO_TORCHCODEC_MAX_PIXELS
        return "torchcodec" if small and torchcodec_available() else "pyav"

    def _select_cameras(self, cameras: Iterable[str] | None) -> list[str]:
        all_cams = self.meta.camera_keys
        chosen = list(all_cams) if cameras is None else list(cameras)
        unknown = [c for c in chosen if c not in all_cams]
        if unknown:
            raise DatasetError(f"{self.meta.root}: unknown camera(s) {unknown}; cameras: {all_cams}")
        return chosen

    @property
    def video_cameras(self) -> list[str]:
        """The selected cameras stored as video (decoded by the backend)."""
        return [c for c in self.cameras if self.meta.features[c].is_video]

    @property
    def image_cameras(self) -> list[str]:
        """The selected cameras stored as encoded images in the data parquet (``image`` dtype)."""
        return [c for c in self.cameras if not self.meta.features[c].is_video]

    def _select_episodes(self, episodes: Iterable[int] | None) -> list[int]:
        if episodes is None:
            return list(self.meta.episodes)
        chosen = sorted({int(e) for e in episodes})
        unknown = [e for e in chosen if e not in self.meta.episodes]
        if unknown:
            raise DatasetError(
                f"{self.meta.root}: episode(s) {unknown} are not in the episodes table "
                f"(episodes {min(self.meta.episodes)}..{max(self.meta.episodes)})"
            )
        if not chosen:
            raise DatasetError(f"{self.meta.root}: episodes= selects no episode")
        return chosen

    def _load_rows(self) -> None:
        meta = self.meta
        data_keys = [k for k, f in meta.features.items() if not f.is_camera]
        for k in INDEX_KEYS:
            if k not in data_keys:
                data_keys.append(k)
        image_keys = self.image_cameras
        by_file: dict[str, list[int]] = {}
        for e in self.episodes:
            by_file.setdefault(meta.episodes[e].data_path, []).append(e)
        pieces: dict[int, dict[str, np.ndarray]] = {}
        for rel, eps in by_file.items():
            path = meta.path(rel)
            table = read_parquet(path)
            missing = [k for k in data_keys + image_keys if k not in table.column_names]
            if missing:
                raise DataFileError(f"{path}: declared feature column(s) {missing} are missing")
            table = table.select(data_keys + image_keys)  # undeclared columns are dropped, as LeRobot does
            ep_col = table.column("episode_index").to_numpy()
            for e in eps:
                rows = np.flatnonzero(ep_col == e)
                want = meta.episodes[e].length
                if rows.size != want:
                    raise DataFileError(
                        f"{path}: episode {e} has {rows.size} rows, the episodes table says {want}"
                    )
                if rows.size and rows[-1] - rows[0] + 1 != rows.size:
                    raise DataFileError(f"{path}: the rows of episode {e} are not contiguous")
                sub = table.slice(int(rows[0]), int(rows.size)) if rows.size else table.slice(0, 0)
                pieces[e] = {k: _column_to_numpy(sub.column(k), k, meta.features.get(k), path) for k in data_keys}
                pieces[e].update({k: _image_bytes(sub.column(k), k, path, e) for k in image_keys})
        self._columns: dict[str, np.ndarray] = {
            k: np.concatenate([pieces[e][k] for e in self.episodes]) for k in data_keys
        }
        # image cameras: the encoded bytes of every row (decoded when a batch asks for them)
        self._image_rows: dict[str, np.ndarray] = {
            k: np.concatenate([pieces[e][k] for e in self.episodes]) for k in image_keys
        }
        lengths = np.array([meta.episodes[e].length for e in self.episodes], dtype=np.int64)
        self._ep_length = lengths
        self._ep_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._row_episode = np.repeat(np.arange(len(self.episodes), dtype=np.int64), lengths)
        # per camera: its video files, and per selected episode the file it lives in + from_timestamp
        self._video_files: dict[str, list[str]] = {}
        self._video_file_of: dict[str, np.ndarray] = {}
        for c in self.video_cameras:
            paths = [str(meta.path(meta.episodes[e].videos[c].path)) for e in self.episodes]
            files = sorted(set(paths))
            self._video_files[c] = files
            self._video_file_of[c] = np.array([files.index(p) for p in paths], dtype=np.int64)
        self._from_ts = {
            c: np.array([meta.episodes[e].videos[c].from_timestamp for e in self.episodes], dtype=np.float64)
            for c in self.video_cameras
        }

    # ---- public API -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._row_episode.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        n = len(self)
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"Dataset indices must be integers, got {type(i).__name__}")
        if i < -n or i >= n:
            raise IndexError(f"index {i} out of range for a dataset of {n} frames")
        batch = self.get_batch(np.array([i % n], dtype=np.int64))
        return {k: (v[0] if k == "task" else v[0, ...]) for k, v in batch.items()}

    @property
    def fps(self) -> float:
        return self.meta.fps

    @property
    def episode_starts(self) -> np.ndarray:
        """``int64 [E]`` position of each selected episode's first frame in this dataset."""
        return self._ep_start

    @property
    def episode_lengths(self) -> np.ndarray:
        """``int64 [E]`` frames per selected episode (same order as :attr:`episodes`)."""
        return self._ep_length

    @property
    def row_episode(self) -> np.ndarray:
        """``int64 [N]`` ordinal (into :attr:`episodes`) of the episode of each position."""
        return self._row_episode

    def column(self, key: str) -> np.ndarray:
        """A non-camera feature for every frame of the selection (no windows): ``[N, ...]``."""
        return self._columns[key]

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        """Samples ``indices`` stacked along a leading batch axis.

        Returns:
            ``{key: ndarray [B, ...]}`` (cameras ``uint8 [B, H, W, C]`` or ``[B, T, H, W, C]``),
            ``{key}_is_pad`` ``bool [B, T]`` for windowed keys, and ``"task"``: ``list[str]`` of B.

        Raises:
            IndexError: an index is out of range.
            TimestampError: a camera frame is not within ``tolerance_s`` of its timestamp.
            VideoError: a video cannot be decoded.
        """
        plan = self.plan(indices)
        decoded = DecodedFrames()
        for task in decode_tasks([plan], self.backend.index):
            decoded.add(task, self.decode_task(task))
        return assemble(plan, decoded, self.frame_shapes(plan))

    def plan(self, indices: Sequence[int] | np.ndarray) -> BatchPlan:
        """Step 1 of :meth:`get_batch`: the batch's non-camera arrays, and per camera the exact frame
        of the exact video file every ``(sample, window step)`` needs (see :mod:`prf.loading.plan`).

        Raises:
            IndexError: an index is out of range.
            TimestampError: a camera frame is not within ``tolerance_s`` of its timestamp.
            VideoError: a video file cannot be indexed.
        """
        pos = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if pos.size and (pos.min() < 0 or pos.max() >= n):
            raise IndexError(f"indices out of range for a dataset of {n} frames")
        ep = self._row_episode[pos]
        start = self._ep_start[ep]
        length = self._ep_length[ep]
        frame = pos - start
        out: dict[str, Any] = {}
        plan = BatchPlan(pos, out)
        for key in self.cameras:
            if key in self.delta_indices:
                rows, pad = window_rows(frame, start, length, self.delta_indices[key])
                out[f"{key}_is_pad"] = pad
            else:
                rows = pos[:, None]
            if key in self._image_rows:
                plan.images[key] = functools.partial(self._decode_images, key, rows, key in self.delta_indices)
            else:
                plan.cameras[key] = self._camera_request(key, ep, rows)
        for key, col in self._columns.items():
            if key in self.delta_indices:
                rows, pad = window_rows(frame, start, length, self.delta_indices[key])
                out[key] = col[rows]
                out[f"{key}_is_pad"] = pad
            else:
                out[key] = col[pos]
        tasks = self.meta.tasks
        out["task"] = [tasks.get(int(t), "") for t in out["task_index"].reshape(pos.size, -1)[:, 0]]
        return plan

    def decode_task(self, task: DecodeTask) -> list[np.ndarray]:
        """Step 2 of :meth:`get_batch` (runs in loader workers): decode one task's frames,
        ``uint8 [H, W, 3]`` each, in the task's order."""
        return self.backend.decode_frames_list(task.path, task.frames)

    def frame_shapes(self, plan: BatchPlan) -> dict[str, tuple[int, ...]]:
        """``(H, W, 3)`` of each camera of ``plan`` (read from the video files).

        Raises:
            DataFileError: two files of one camera have different resolutions.
        """
        shapes = {}
        for key, req in plan.cameras.items():
            found = {(self.backend.index(p).height, self.backend.index(p).width) for p in
                     (req.paths[f] for f in np.unique(req.file_ids).tolist())}
            if len(found) > 1:
                raise DataFileError(f"{self.meta.root}: camera {key!r} files have different resolutions {sorted(found)}")
            h, w = found.pop() if found else self.meta.features[key].shape[:2]
            shapes[key] = (h, w, 3)
        return shapes

    def stats(self, episodes: Iterable[int] | None = None) -> dict[str, dict[str, np.ndarray]]:
        """The dataset's stored feature statistics, aggregated over the selected episodes.

        ``meta/stats.json`` when every episode of the dataset is selected (what LeRobot normalizes
        with); else the per-episode stats (v3.0 ``stats/*`` columns of ``meta/episodes``, v2.1
        ``meta/episodes_stats.jsonl``) aggregated as LeRobot's ``aggregate_stats`` over the selection
        (or over ``episodes``, a subset of it). Layout: ``{key: {"mean", "std", "min", "max", "count",
        "q01", ...: ndarray}}``; cameras per channel on ``[0, 1]``, ``[C, 1, 1]``.

        Raises:
            StatsError: nothing is stored (use :func:`prf.compute_stats`), or ``episodes`` is not a
                subset of the selection. Warns when only ``stats.json`` exists and the selection is
                partial (the stats then cover all episodes).
        """
        from .stats import dataset_stats

        return dataset_stats(self, episodes)

    def loader(self, batch_size: int = 1, *, cache_dir: str | Path | None = None,
               cache_size: tuple[int, int] | None = None, **kwargs: Any):
        """A :class:`prf.Loader` over this dataset; see its docstring for the options.

        Args:
            cache_dir: serve camera frames from a decoded-frame cache there (see :mod:`prf.cache`),
                building the missing entries first (every frame decoded once, with a progress bar).
            cache_size: ``(height, width)`` the cache stores frames at (default: the videos' own).
        """
        from .loading import Loader

        ds = self
        if cache_dir is not None:
            ds = self.with_frame_cache(cache_dir, size=cache_size)
        return Loader(ds, batch_size=batch_size, **kwargs)

    def with_transforms(self, *, transform: Any = None, normalize: Mapping[str, str] | None = None,
                        stats: Mapping[str, Any] | None = None, seed: int | None = 0):
        """A view whose ``get_batch`` / ``ds[i]`` apply image transforms then normalization (the same
        :class:`prf.loading.BatchTransform` a loader applies; ``view.loader(...)`` applies it per batch).

        Map-style randomness is keyed by ``(seed, epoch, sample index, camera)`` (``view.set_epoch(e)``);
        ``stats`` default to :meth:`stats`. See :mod:`prf.loading.batch_transform`.
        """
        from .loading.batch_transform import BatchTransform, TransformedDataset

        bt = BatchTransform.for_dataset(self, transform=transform, normalize=normalize, stats=stats, seed=seed)
        return TransformedDataset(self, bt)

    def with_frame_cache(self, cache_dir: str | Path, *, size: tuple[int, int] | None = None,
                         build: bool = True, progress: bool = True) -> "Dataset":
        """A shallow copy of this dataset that reads camera frames from a decoded-frame cache.

        Raises:
            VideoError: building the cache failed (no partial entry is left).
        """
        from .cache import CachedBackend, FrameCache, dataset_videos

        cache = FrameCache(cache_dir, size=size)
        if build:
            cache.build(dataset_videos(self), progress=progress)
        return self.with_backend(CachedBackend(self.backend, cache))

    def with_backend(self, backend: str | DecodeBackend) -> "Dataset":
        """A shallow copy of this dataset (sharing its loaded columns) that decodes with ``backend``."""
        other = copy.copy(self)
        other.backend = get_backend(backend)
        return other

    def __repr__(self) -> str:
        return (
            f"prf.Dataset({str(self.meta.root)!r}, version={self.meta.codebase_version}, "
            f"episodes={len(self.episodes)}, frames={len(self)}, cameras={self.cameras}, "
            f"delta_timestamps={self.delta_timestamps or None})"
        )

    # ---- decoding -------------------------------------------------------------------------------
    def _decode_images(self, key: str, rows: np.ndarray, windowed: bool) -> np.ndarray:
        """``uint8 [B, T, H, W, C]`` (``[B, H, W, C]`` without a window) of an image camera at window
        rows ``[B, T]``, each distinct row decoded once."""
        unique, inverse = np.unique(rows, return_inverse=True)
        data = self._image_rows[key]
        decoded = []
        for r in unique.tolist():
            try:
                decoded.append(decode_image(data[r]))
            except DataFileError as e:
                o = int(self._row_episode[r])
                raise DataFileError(f"{self.meta.root}: episode {self.episodes[o]}, frame "
                                    f"{r - int(self._ep_start[o])}, camera {key!r}: {e}") from None
        shapes = {d.shape for d in decoded}
        if len(shapes) > 1:
            raise DataFileError(f"{self.meta.root}: camera {key!r} has images of different sizes {sorted(shapes)}")
        stacked = np.stack(decoded) if decoded else np.empty((0,) + tuple(self.meta.features[key].shape), np.uint8)
        frames = stacked[inverse.reshape(rows.shape)]
        return frames if windowed else frames[:, 0]

    def _camera_request(self, key: str, ep: np.ndarray, rows: np.ndarray) -> CameraRequest:
        """Which frame of which file each window row ``[B, T]`` of one camera needs."""
        ts = self._columns["timestamp"][rows].astype(np.float64)  # in-episode timestamps (LeRobot's query_ts)
        times = (self._from_ts[key][ep][:, None] + ts).reshape(-1)
        B, T = rows.shape
        flat_ep = np.repeat(ep, T)
        file_ids = self._video_file_of[key][flat_ep]
        frames = np.empty(B * T, dtype=np.int64)
        for file_id in np.unique(file_ids).tolist():
            path = self._video_files[key][file_id]
            sel = np.flatnonzero(file_ids == file_id)
            index = self.backend.index(path)
            frame_idx, dist = index.nearest(times[sel])
            bad = dist >= self.tolerance_s
            if bad.any():
                j = int(np.argmax(bad))
                e_id = self.episodes[int(flat_ep[sel[j]])]
                raise TimestampError(
                    f"{path}: episode {e_id}, camera {key!r}: no frame within tolerance_s={self.tolerance_s} "
                    f"of t={times[sel[j]]:.6f}s (nearest frame {int(frame_idx[j])} at "
                    f"{index.times[frame_idx[j]]:.6f}s, {dist[j]:.6f}s away); the video and the data "
                    f"timestamps disagree"
                )
            frames[sel] = frame_idx
        return CameraRequest((B, T), key in self.delta_indices, self._video_files[key], file_ids, frames)


def _image_bytes(col: pa.ChunkedArray, key: str, path: Path, episode: int) -> np.ndarray:
    """The encoded images of an ``image`` feature column (Hugging Face ``datasets``' Image storage:
    ``struct<bytes: binary, path: string>``, or plain binary) as an object array of ``bytes``."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_struct(arr.type) and arr.type.get_field_index("bytes") >= 0:
        values = arr.field("bytes")
    elif pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        values = arr
    else:
        raise DataFileError(f"{path}: image column {key!r} has type {arr.type}; expected struct<bytes, path> or binary")
    out = np.asarray(values.to_pylist(), dtype=object)
    empty = [i for i, b in enumerate(out.tolist()) if not b]
    if empty or arr.null_count:
        row = empty[0] if empty else 0
        raise DataFileError(
            f"{path}: episode {episode}, camera {key!r}: row {row} has no embedded image bytes (images "
            f"stored as separate files are not supported)"
        )
    return out


def _column_to_numpy(col: pa.ChunkedArray, key: str, feature: Any, path: Path) -> np.ndarray:
    """An Arrow column as a dense NumPy array ``[N, *shape]`` (scalars ``[N]``)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    if arr.null_count:
        raise DataFileError(f"{path}: column {key!r} has {arr.null_count} null value(s)")
    dims: list[int] = []
    values = arr
    while pa.types.is_list(values.type) or pa.types.is_fixed_size_list(values.type) or pa.types.is_large_list(values.type):
        flat = pc.list_flatten(values)
        rows = len(values)
        if rows and len(flat) % rows:
            raise DataFileError(f"{path}: column {key!r} has rows of different lengths")
        dims.append(len(flat) // rows if rows else 0)
        values = flat
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        np_values = np.asarray(values.to_pylist(), dtype=object)
    else:
        np_values = values.to_numpy(zero_copy_only=False)
    out = np_values.reshape([n] + dims)
    if dims and feature is not None and feature.shape and int(np.prod(feature.shape)) == int(np.prod(dims)):
        out = out.reshape([n] + list(feature.shape))
    return np.ascontiguousarray(out)
