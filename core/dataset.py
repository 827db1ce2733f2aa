"""The map-style Dataset: index -> sample dict, exactly as LeRobot's ``LeRobotDataset.__getitem__``.

Non-camera features stay in Arrow (:mod:`prf.format.tables`: memory-mapped from an Arrow cache of the
data files, or read into memory for small selections; v2.x episode files on first use) and each batch
gathers only its rows; per-episode arrays (start, length, file, ``from_timestamp``) are all that is
built at open, so memory after open grows with the number of episodes, not frames. Camera frames
are decoded at ``from_timestamp + timestamp`` of the (clamped) window rows, the frame chosen by nearest
pts and checked against ``tolerance_s``. :meth:`Dataset.get_batch` assembles many samples at once and
decodes each video file's requests in one sorted pass.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import _profile
from .decode import DecodeBackend, resolve_backend
from .decode._malloc import note_decoded
from .errors import DataFileError, DatasetError, MetadataError, TimestampError
from .format import INDEX_KEYS, DatasetMeta
from .format.meta import DERIVABLE_KEYS
from .format.tables import (ColumnSpec, Piece, check_schema, column_specs, derived_keys, estimated_bytes,
                            locate_episodes, open_cached, read_in_memory, run_positions, scan_files)
from .plan import item, BatchPlan, CameraRequest, DecodedFrames, DecodeTask, assemble, decode_tasks
from .image import decode_image
from .stream import is_remote, open_input
from .windows import delta_indices, goal_rows, goal_steps, window_rows


class Dataset:
    """A LeRobot dataset opened for training (see :func:`prf.open_dataset`).

    ``len(ds)`` is the number of frames of the selected episodes; ``ds[i]`` is a dict with LeRobot's
    keys: every declared non-camera feature (``observation.state`` ``float32 [D]`` ...), ``timestamp``
    (``float32``, seconds), ``frame_index``, ``episode_index``, ``index``, ``task_index`` (``int64``),
    ``task`` (str), and per camera ``uint8 [H, W, C]`` RGB (video cameras decoded by the backend;
    ``image``-dtype cameras decoded from the parquet's PNG/JPEG bytes with Pillow, keeping the file's
    channels: grey ``C=1``). A key with a ``delta_timestamps`` window
    gains a leading time axis (``[T, ...]``; cameras ``[T, H, W, C]``) and a ``{key}_is_pad``
    ``bool [T]``. A key of ``goal`` (see :func:`prf.open_dataset`) adds ``{key}.goal``: the key's value
    (its declared shape and dtype, e.g. ``observation.state.goal`` ``float32 [D]``, ``[B, D]`` in
    batches; a selected camera's goal image ``uint8 [H, W, C]``; never windowed) at the episode's last
    frame, or ``k`` frames ahead clamped at it.

    Data files without ``frame_index``, ``index`` or ``task_index`` columns (some v2.0 datasets, which
    LeRobot 0.3.3 reads) get them derived as LeRobot's writer fills them: ``frame_index`` the position
    in the episode, ``index`` = the episode's ``dataset_from_index`` + ``frame_index``, ``task_index``
    the first of the episode's ``tasks`` (episodes table) looked up in the tasks table, else 0.

    Checked at open (vectorised over the selection; per data file once, kept in its Arrow cache entry):
    every ``task_index`` of the data has a task (:class:`MetadataError`); consecutive ``timestamp`` s of
    each episode are ``1/fps`` apart within ``tolerance_s``, as LeRobot's ``check_timestamps_sync``
    (v2.x always, v3.0 when video cameras are selected; :class:`TimestampError` naming the episode,
    the largest deviation and the ``tolerance_s`` that accepts it). Each video file's stream is
    compared with ``info.json`` (resolution, fps) when its packet index is first used
    (:class:`DataFileError` naming the file and camera).
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
        goal: str | Iterable[str] | Mapping[str, int | None] | None = None,
    ):
        self.meta = meta
        self.tolerance_s = float(tolerance_s)
        self.backend = resolve_backend(backend, device=device, frame_pixels=self._max_frame_pixels(cameras))
        self.delta_timestamps = {k: list(v) for k, v in (delta_timestamps or {}).items()}
        self.cameras = self._select_cameras(cameras)
        self.episodes = self._select_episodes(episodes)
        self.delta_indices = delta_indices(self.delta_timestamps, meta.fps, meta.features, self.tolerance_s)
        meta.check_files(self.episodes, self.video_cameras)
        self._load_rows()
        self.goal = goal_steps(goal, [k for k in self._specs if k in meta.features] + self.cameras)
        self._check_tasks()
        if self.video_cameras or not meta.is_v3:
            self._check_timestamps()

    # ---- set-up ---------------------------------------------------------------------------------
    def _max_frame_pixels(self, cameras: Iterable[str] | None) -> int | None:
        """``H * W`` of the largest selected video camera (``None`` without one): for ``backend="auto"``."""
        keys = self.meta.video_keys if cameras is None else [c for c in cameras if c in self.meta.video_keys]
        areas = [self.meta.features[k].shape[0] * self.meta.features[k].shape[1] for k in keys
                 if len(self.meta.features[k].shape) >= 2]
        return max(areas) if areas else None

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
        table = self.meta.episode_table
        if episodes is None:
            return table.index.tolist()
        chosen = np.unique(np.asarray([int(e) for e in episodes], dtype=np.int64))
        unknown = chosen[table.ordinals(chosen) < 0]
        if unknown.size:
            raise DatasetError(
                f"{self.meta.root}: episode(s) {unknown[:20].tolist()} are not in the episodes table "
                f"(episodes {int(table.index[0])}..{int(table.index[-1])})"
            )
        if not chosen.size:
            raise DatasetError(f"{self.meta.root}: episodes= selects no episode")
        return chosen.tolist()

    def _load_rows(self) -> None:
        """Per-episode arrays of the selection (vectorised from the episodes table) and where each
        episode's rows are (:class:`_Rows`); no per-frame array is built."""
        meta = self.meta
        table = meta.episode_table
        ords = table.ordinals(self.episodes)
        lengths = table.length[ords].astype(np.int64)
        self._ep_length = lengths
        self._ep_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        self._n = int(lengths.sum())
        self._row_episode_cache: np.ndarray | None = None
        self._specs = column_specs(meta.features, INDEX_KEYS)
        self._rows = _Rows(meta, ords, lengths, self._specs, self.image_cameras)
        self._derived = frozenset(self._rows.derived)
        self._ep_from_index = table.dataset_from_index[ords].astype(np.int64)
        self._ep_task = _episode_task_index(meta, ords) if "task_index" in self._derived else None
        self._checked_streams: set[str] = set()
        # per camera: its video files, and per selected episode the file it lives in + from_timestamp
        self._video_files: dict[str, list[str]] = {}
        self._video_file_of: dict[str, np.ndarray] = {}
        self._from_ts: dict[str, np.ndarray] = {}
        for c in self.video_cameras:
            ids, inverse = np.unique(table.video_file[c][ords], return_inverse=True)
            paths = [str(meta.path(table.video_files[c][i])) for i in ids.tolist()]
            order = np.argsort(paths, kind="stable")  # files in path order
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            self._video_files[c] = [paths[i] for i in order.tolist()]
            self._video_file_of[c] = rank[inverse.reshape(-1)]
            self._from_ts[c] = table.from_timestamp[c][ords].astype(np.float64)

    def _check_tasks(self) -> None:
        """Every ``task_index`` of the selected data names a task of the tasks table."""
        pairs = self._rows.task_pairs
        if "task_index" in self._derived or not len(pairs):
            return
        meta = self.meta
        known = np.fromiter(meta.tasks.keys(), dtype=np.int64, count=len(meta.tasks))
        bad = ~np.isin(pairs[:, 1], known)
        if bad.any():
            e, t = (int(v) for v in pairs[np.argmax(bad)])
            tasks_file = meta.root / "meta" / ("tasks.parquet" if meta.is_v3 else "tasks.jsonl")
            values = sorted(meta.tasks)
            shown = values[:10] + (["..."] if len(values) > 10 else [])
            raise MetadataError(
                f"{self._data_file_of(e)}: episode {e} has task_index {t}, which {tasks_file} does not list "
                f"(its task_index values: {shown if values else 'none, the table is empty'}); "
                f"{int(np.unique(pairs[bad, 1]).size)} task_index value(s) of the data have no task"
            )

    def _check_timestamps(self) -> None:
        """LeRobot's ``check_timestamps_sync``: within each selected episode, consecutive data timestamps
        are ``1/fps`` apart within ``tolerance_s`` (from per-run min/max steps, vectorised)."""
        dts = self._rows.ep_dts
        if not len(dts):
            return
        step = 1.0 / float(self.meta.fps)
        nan = np.isnan(dts).any(axis=1)
        has = dts[:, 0] <= dts[:, 1]  # episodes of two frames or more
        with np.errstate(invalid="ignore"):
            off = np.where(has, np.maximum(np.abs(dts[:, 1] - step), np.abs(dts[:, 0] - step)), 0.0)
        off[nan] = np.inf
        bad = off > self.tolerance_s
        if not bad.any():
            return
        if nan[bad].any():
            e = int(self._rows.episodes[int(np.argmax(nan))])
            raise TimestampError(f"{self._data_file_of(e)}: episode {e} has a NaN timestamp")
        j = int(np.argmax(np.where(bad, off, -1.0)))  # the episode furthest off
        e = int(self._rows.episodes[j])
        raise TimestampError(
            f"{self._data_file_of(e)}: episode {e}: consecutive data timestamps are not 1/fps = {step:.6g} s "
            f"apart within tolerance_s={self.tolerance_s}: a step is off by {off[j]:.6g} s (LeRobot's "
            f"check_timestamps_sync refuses this too; {int(bad.sum())} of the {len(bad)} selected episode(s) "
            f"are off); open with tolerance_s={_ceil2(float(off[j]))} to accept them (camera frames are then "
            f"matched to their timestamps within that tolerance too)"
        )

    def _data_file_of(self, episode: int) -> Path:
        t = self.meta.episode_table
        row = int(t.ordinals([episode])[0])
        return self.meta.path(t.data_files[int(t.data_file[row])]) if row >= 0 else self.meta.root

    def _check_stream(self, key: str, path: str) -> None:
        """The video stream of ``path`` has the resolution and fps ``info.json`` declares for camera
        ``key`` (checked once per file, when its packet index is first used)."""
        if path in self._checked_streams:
            return
        backend = self.backend
        while getattr(backend, "inner", None) is not None:  # a frame cache may resize: the source's index
            backend = backend.inner
        index = backend.index(path)
        f = self.meta.features[key]
        hw = _declared_hw(f)
        if hw is not None and (index.height, index.width) != hw:
            raise DataFileError(
                f"{path}: camera {key!r}: the video stream is {index.width}x{index.height} (width x height); "
                f"info.json declares shape {list(f.shape)} ({hw[1]}x{hw[0]})"
            )
        fps = float(self.meta.fps)
        if index.average_fps > 0 and abs(index.average_fps - fps) > 0.01 * fps:
            raise DataFileError(
                f"{path}: camera {key!r}: the video stream runs at {index.average_fps:.6g} fps; info.json "
                f"declares fps {self.meta.fps}"
            )
        self._checked_streams.add(path)

    # ---- public API -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return item(self, i)

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
        """``int64 [N]`` ordinal (into :attr:`episodes`) of the episode of each position.

        Built on first use and kept (8 bytes per frame); batches locate their episodes with
        :meth:`episode_of` instead."""
        if self._row_episode_cache is None:
            self._row_episode_cache = np.repeat(np.arange(len(self.episodes), dtype=np.int64), self._ep_length)
        return self._row_episode_cache

    def episode_of(self, positions: Sequence[int] | np.ndarray) -> np.ndarray:
        """``int64``: the ordinal (into :attr:`episodes`) of the episode of each position (same shape)."""
        return self._ep_start.searchsorted(np.asarray(positions, dtype=np.int64), side="right") - 1

    def column(self, key: str) -> np.ndarray:
        """A non-camera feature for every frame of the selection (no windows): ``[N, ...]`` in its
        declared dtype; a new array, gathered from the Arrow tables at each call.

        Raises:
            KeyError: ``key`` is not a non-camera column of the dataset.
        """
        if key not in self._specs:
            raise KeyError(f"{key!r} is not a non-camera column of {self.meta.root} (columns: {list(self._specs)})")
        ep = np.repeat(np.arange(len(self.episodes), dtype=np.int64), self._ep_length)
        return self._gather(key, self._locate(ep, np.arange(self._n, dtype=np.int64)))

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
        n_frames = 0
        for task in decode_tasks([plan], self.backend.index):
            decoded.add(task, self.decode_task(task))
            n_frames += task.frames.size
        if n_frames:
            note_decoded(n_frames)  # prf.decode._malloc: bounded RSS in DataLoader worker processes
        return assemble(plan, decoded, self.frame_shapes(plan))

    def plan(self, indices: Sequence[int] | np.ndarray) -> BatchPlan:
        """Step 1 of :meth:`get_batch`: the batch's non-camera arrays, and per camera the exact frame
        of the exact video file every ``(sample, window step)`` needs (see :mod:`prf.plan`).

        Raises:
            IndexError: an index is out of range.
            TimestampError: a camera frame is not within ``tolerance_s`` of its timestamp.
            VideoError: a video file cannot be indexed.
        """
        pos = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = self._n
        if pos.size == 1:
            if not 0 <= int(pos[0]) < n:
                raise IndexError(f"indices out of range for a dataset of {n} frames")
        elif pos.size and (pos.min() < 0 or pos.max() >= n):
            raise IndexError(f"indices out of range for a dataset of {n} frames")
        ep = self.episode_of(pos)
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
            if key not in self._video_files:
                plan.images[key] = functools.partial(self._decode_images, key, ep, rows, key in self.delta_indices)
            else:
                plan.cameras[key] = self._camera_request(key, ep, rows)
        with _profile.stage("parquet rows"):  # a no-op unless Loader.profile() runs (prf._profile)
            here = self._locate(ep, pos)
            windows: dict[bytes, tuple[Any, np.ndarray]] = {}
            for key in self._specs:
                if key in self.delta_indices:
                    offsets = self.delta_indices[key]
                    w = windows.get(offsets.tobytes())
                    if w is None:
                        rows, pad = window_rows(frame, start, length, offsets)
                        w = windows[offsets.tobytes()] = (self._locate(ep[:, None], rows), pad)
                    out[key] = self._gather(key, w[0])
                    out[f"{key}_is_pad"] = w[1]
                else:
                    out[key] = self._gather(key, here)
            for key, k in self.goal.items():
                g = goal_rows(frame, start, length, k)
                if key in self._video_files:  # a goal image: one frame per sample, never windowed
                    req = self._camera_request(key, ep, g[:, None])
                    req.windowed = False
                    plan.cameras[f"{key}.goal"] = req
                elif key in self.cameras:
                    plan.images[f"{key}.goal"] = functools.partial(self._decode_images, key, ep, g[:, None], False)
                else:
                    out[f"{key}.goal"] = self._gather(key, self._locate(ep, g))
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
               cache_size: tuple[int, int] | None = None, output: str | None = None, **kwargs: Any):
        """A :class:`prf.Loader` over this dataset; see its docstring for the options.

        Args:
            cache_dir: serve camera frames from a decoded-frame cache there (see :mod:`prf.decode.cache`),
                building the missing entries first (every frame decoded once, with a progress bar).
            cache_size: ``(height, width)`` the cache stores frames at (default: the videos' own).
            output: ``None`` / ``"numpy"``: NumPy batches (the :class:`prf.Loader` itself). An adapter
                name (``"torch"``, ``"mlx"``, ``"jax"``, ``"keras"``): the installed adapter plugin
                (entry-point group ``prf.adapters``, see :mod:`prf._plugins`) wraps the loader, so
                batches are that framework's arrays; length, epochs and state stay the loader's.

        Raises:
            PluginError: ``output`` names an adapter that is not installed or whose framework is
                missing (the message names the package to install).
        """
        from ._plugins import wrap_loader
        from .loading import Loader

        ds = self
        if cache_dir is not None:
            ds = self.with_frame_cache(cache_dir, size=cache_size)
        return wrap_loader(Loader(ds, batch_size=batch_size, **kwargs), output)

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
        from .decode.cache import CachedBackend, FrameCache, dataset_videos

        cache = FrameCache(cache_dir, size=size)
        if build:
            cache.build(dataset_videos(self), progress=progress)
        return self.with_backend(CachedBackend(self.backend, cache))

    def with_backend(self, backend: str | DecodeBackend) -> "Dataset":
        """A shallow copy of this dataset (sharing its loaded columns) that decodes with ``backend``."""
        other = copy.copy(self)
        other.backend = resolve_backend(backend)
        return other

    def __repr__(self) -> str:
        return (
            f"prf.Dataset({str(self.meta.root)!r}, version={self.meta.codebase_version}, "
            f"episodes={len(self.episodes)}, frames={len(self)}, cameras={self.cameras}, "
            f"delta_timestamps={self.delta_timestamps or None})"
        )

    # ---- decoding -------------------------------------------------------------------------------
    def _locate(self, ep: np.ndarray, pos: np.ndarray) -> "_Loc":
        """Where positions ``pos`` (any shape; ``ep`` their episode ordinals, broadcastable) are stored."""
        if ep.shape != pos.shape:
            ep = np.broadcast_to(ep, pos.shape)
        return self._rows.locate(ep, pos - self._ep_start[ep])

    def _gather(self, key: str, loc: "_Loc") -> np.ndarray:
        """``[*loc.shape, ...]``: column ``key`` at the located rows (a new array)."""
        if key in self._derived:
            return self._derive(key, loc)
        rows = self._rows
        if loc.piece is not None:
            return rows.piece(loc.piece).arrays[key][loc.rows]
        first = rows.piece(loc.groups[0][0]).arrays[key]
        out = np.empty((loc.rows.size,) + first.shape[1:], first.dtype)
        flat = loc.rows.reshape(-1)
        for p, sel in loc.groups:
            out[sel] = rows.piece(p).arrays[key][flat[sel]]
        return out.reshape(loc.rows.shape + first.shape[1:])

    def _derive(self, key: str, loc: "_Loc") -> np.ndarray:
        """A derived index column (see the class docstring) at the located positions, ``int64``."""
        if key == "frame_index":
            return loc.frame.astype(np.int64, copy=True)
        if key == "index":
            return self._ep_from_index[loc.ep] + loc.frame
        return self._ep_task[loc.ep].copy()

    def _decode_images(self, key: str, ep: np.ndarray, rows: np.ndarray, windowed: bool) -> np.ndarray:
        """``uint8 [B, T, H, W, C]`` (``[B, H, W, C]`` without a window) of an image camera at window
        rows ``[B, T]``, each distinct row read from the table and decoded once."""
        unique, inverse = np.unique(rows, return_inverse=True)
        u_ep = self.episode_of(unique)
        loc = self._locate(u_ep, unique)
        groups = [(loc.piece, np.arange(unique.size))] if loc.piece is not None else loc.groups
        data: list[Any] = [None] * unique.size
        flat = loc.rows.reshape(-1)
        for p, sel in groups:
            got = self._rows.piece(p).images[key].take(pa.array(flat[sel])).to_pylist()
            for j, b in zip(np.asarray(sel).tolist(), got):
                data[j] = b
        decoded = []
        for j, b in enumerate(data):
            try:
                decoded.append(decode_image(b))
            except DataFileError as e:
                o = int(u_ep[j])
                raise DataFileError(f"{self.meta.root}: episode {self.episodes[o]}, frame "
                                    f"{int(unique[j]) - int(self._ep_start[o])}, camera {key!r}: {e}") from None
        shapes = {d.shape for d in decoded}
        if len(shapes) > 1:
            raise DataFileError(f"{self.meta.root}: camera {key!r} has images of different sizes {sorted(shapes)}")
        stacked = np.stack(decoded) if decoded else np.empty((0,) + tuple(self.meta.features[key].shape), np.uint8)
        frames = stacked[inverse.reshape(rows.shape)]
        return frames if windowed else frames[:, 0]

    def _camera_request(self, key: str, ep: np.ndarray, rows: np.ndarray) -> CameraRequest:
        """Which frame of which file each window row ``[B, T]`` of one camera needs."""
        ts = self._gather("timestamp", self._locate(ep[:, None], rows)).astype(np.float64)  # LeRobot's query_ts
        times = (self._from_ts[key][ep][:, None] + ts).reshape(-1)
        B, T = rows.shape
        flat_ep = np.repeat(ep, T)
        file_ids = self._video_file_of[key][flat_ep]
        frames = np.empty(B * T, dtype=np.int64)
        for file_id in np.unique(file_ids).tolist():
            path = self._video_files[key][file_id]
            sel = np.flatnonzero(file_ids == file_id)
            self._check_stream(key, path)
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


class _Loc:
    """Where a batch's positions are stored: ``rows`` (row in its piece, the positions' shape) and
    either the one ``piece`` they all lie in, or ``groups``: ``(piece, flat indices)`` per piece;
    ``ep`` (episode ordinals) and ``frame`` (position in the episode) of each, same shape."""

    __slots__ = ("piece", "rows", "groups", "ep", "frame")

    def __init__(self, piece: int | None, rows: np.ndarray, groups: list[tuple[int, np.ndarray]] | None,
                 ep: np.ndarray | None = None, frame: np.ndarray | None = None):
        self.piece, self.rows, self.groups = piece, rows, groups
        self.ep, self.frame = ep, frame


def _cache_mode() -> str:
    """``PRF_ARROW_CACHE``: ``auto`` (default), ``always`` or ``never`` (see :class:`_Rows`)."""
    mode = os.environ.get("PRF_ARROW_CACHE", "auto")
    return mode if mode in ("auto", "always", "never") else "auto"


def _env_mb(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


#: ``PRF_ARROW_CACHE=auto``: selections whose non-camera columns take more than this many MiB
#: (``PRF_ARROW_CACHE_MIN_MB``) are read through the memory-mapped Arrow cache, smaller ones into
#: memory. Image columns always go to the cache.
ARROW_CACHE_MIN_MB = 64.0
#: v2.x per-episode tables are read on first use and kept up to this many MiB (``PRF_V2_TABLES_MB``;
#: least recently used dropped first, read again when needed).
V2_TABLES_MB = 1024.0


class _Rows:
    """The stored rows of the selected episodes: per episode ordinal, the :class:`Piece` holding it
    (``ep_piece``) and its first row there (``ep_row``).

    v3.0: every data file of the selection is opened here: through the memory-mapped Arrow cache
    (:func:`prf.format.tables.open_cached`) when the selection is large or has image columns, else
    read into memory with ``episode_index`` pushed down to the row groups. Row counts per episode
    and contiguity are checked against the episodes table for every file, vectorised.
    v2.x: one piece per episode file, read on first use (opening a dataset of 10k episode files reads
    none of them; the first file's schema is checked at open), kept in a bounded LRU.
    Thread-safe; pickles without its memory-mapped or lazily read pieces (reopened on use).
    """

    def __init__(self, meta: DatasetMeta, ords: np.ndarray, lengths: np.ndarray,
                 specs: Mapping[str, ColumnSpec], image_keys: list[str]):
        self.meta, self.image_keys = meta, list(image_keys)
        table = meta.episode_table
        self.episodes = table.index[ords]
        self.lengths = lengths
        self.file_of = table.data_file[ords]
        self._lock = threading.Lock()
        self._lru: OrderedDict[int, int] = OrderedDict()
        self._lru_bytes = 0
        E = len(ords)
        #: per selected episode: smallest and largest step between its timestamps (see FileSummary)
        self.ep_dts = np.empty((E, 2), np.float64)
        self.ep_dts[:, 0], self.ep_dts[:, 1] = np.inf, -np.inf
        #: distinct (episode_index, task_index) pairs of the selected data
        self.task_pairs = np.zeros((0, 2), np.int64)
        # the index columns the data files lack are derived (the first file's schema decides)
        self.derived: list[str] = []
        self.specs = dict(specs)
        if E:
            first = meta.path(table.data_files[int(self.file_of[0])])
            try:
                schema = pq.read_schema(open_input(first))  # a streamed file: its footer by byte range
            except FileNotFoundError:
                raise
            except (pa.ArrowException, OSError) as e:
                raise DataFileError(f"{first}: cannot be read as parquet ({e})") from None
            self.derived = derived_keys(schema, DERIVABLE_KEYS)
            self.specs = {k: v for k, v in specs.items() if k not in self.derived}
        self.lazy = not meta.is_v3
        if self.lazy:
            self.mode = "lazy"
            self.ep_piece = np.arange(E, dtype=np.int64)
            self.ep_row = np.zeros(E, dtype=np.int64)
            self.pieces: list[Piece | None] = [None] * E
            if E:
                check_schema(first, schema, self.specs, self.image_keys)
                self._scan_v2()
            return
        mode = _cache_mode()
        if E and is_remote(meta.path(table.data_files[int(self.file_of[0])])):
            mode = "never"  # streamed: only the row groups of the selection, by byte range (no local copy)
        if mode == "auto":
            limit = _env_mb("PRF_ARROW_CACHE_MIN_MB", ARROW_CACHE_MIN_MB) * 2**20
            big = estimated_bytes(self.specs, int(lengths.sum())) > limit
            mode = "always" if (big or self.image_keys) else "never"
        self.mode = "cache" if mode == "always" else "memory"
        self._open_v3()

    def _scan_v2(self) -> None:
        """The open checks' per-episode facts of v2.x episode files, from their ``timestamp``,
        ``episode_index`` and ``task_index`` columns (the rest is read on first use; results kept per
        file, see :func:`prf.format.tables.scan_files`). A file that cannot be read is left to that
        first use, which names it."""
        table = self.meta.episode_table
        paths = [self.meta.path(table.data_files[int(f)]) for f in self.file_of.tolist()]
        pairs = []
        for o, res in enumerate(scan_files(paths, self.meta.root)):
            if res is None:
                continue
            summary, runs = res
            e = self.episodes[o:o + 1]
            r = int(run_positions(runs, e)[0])
            if r >= 0:
                self.ep_dts[o] = summary.dts[r]
            pairs.append(summary.tasks[summary.tasks[:, 0] == e[0]])
        if pairs:
            self.task_pairs = np.concatenate(pairs)

    def _open_v3(self) -> None:
        table = self.meta.episode_table
        E = len(self.episodes)
        self.ep_piece = np.empty(E, dtype=np.int64)
        self.ep_row = np.empty(E, dtype=np.int64)
        pieces: list[Piece] = []
        pairs = []
        order = np.argsort(self.file_of, kind="stable")
        files, first_of = np.unique(self.file_of[order], return_index=True)
        bounds = np.concatenate([first_of, [E]])
        for j, f in enumerate(files.tolist()):
            sel = order[bounds[j]:bounds[j + 1]]  # ascending episode order within the file
            path = self.meta.path(table.data_files[f])
            eps, lens = self.episodes[sel], self.lengths[sel]
            if self.mode == "cache":
                file_pieces, starts, runs, summary = open_cached(path, self.specs, self.image_keys)
                first = locate_episodes(path, runs, eps, lens)
                k = np.searchsorted(starts, first, side="right") - 1
                self.ep_piece[sel] = len(pieces) + k
                self.ep_row[sel] = first - starts[k]
                pieces += file_pieces
            else:
                piece, runs, summary = read_in_memory(path, self.specs, self.image_keys, episodes=eps)
                self.ep_row[sel] = locate_episodes(path, runs, eps, lens)
                self.ep_piece[sel] = len(pieces)
                pieces.append(piece)
            at = run_positions(runs, eps)
            self.ep_dts[sel] = np.where((at >= 0)[:, None], summary.dts[np.maximum(at, 0)], [np.inf, -np.inf])
            pairs.append(summary.tasks)
        if pairs:  # the pairs of the selected episodes (self.episodes is sorted)
            p = np.concatenate(pairs)
            at = np.minimum(np.searchsorted(self.episodes, p[:, 0]), max(E - 1, 0))
            self.task_pairs = p[self.episodes[at] == p[:, 0]] if E else p[:0]
        self.pieces = pieces

    # ---- access ---------------------------------------------------------------------------------
    def piece(self, p: int) -> Piece:
        got = self.pieces[p]
        if got is not None:
            return got
        with self._lock:
            got = self.pieces[p]
            if got is None:
                if self.lazy:
                    got = self._load_v2(p)
                else:  # a copy unpickled without its memory-mapped pieces
                    self._open_v3()
                    got = self.pieces[p]
        return got

    def _load_v2(self, o: int) -> Piece:
        path = self.meta.path(self.meta.episode_table.data_files[int(self.file_of[o])])
        piece, runs, _ = read_in_memory(path, self.specs, self.image_keys)
        e, n = self.episodes[o:o + 1], self.lengths[o:o + 1]
        first = int(locate_episodes(path, runs, e, n)[0])
        if first != 0 or piece.rows != int(n[0]):
            piece = _slice_piece(piece, first, int(n[0]))
        self.pieces[o] = piece
        size = piece.nbytes()
        self._lru[o] = size
        self._lru_bytes += size
        while self._lru_bytes > _env_mb("PRF_V2_TABLES_MB", V2_TABLES_MB) * 2**20 and len(self._lru) > 1:
            old, sz = self._lru.popitem(last=False)
            self.pieces[old] = None
            self._lru_bytes -= sz
        return piece

    def locate(self, ep: np.ndarray, frame: np.ndarray) -> _Loc:
        rows = self.ep_row[ep] + frame
        if len(self.pieces) == 1:
            return _Loc(0, rows, None, ep, frame)
        pid = self.ep_piece[ep]
        flat = pid.reshape(-1)
        if flat.size == 1 or (flat.size and (flat == flat[0]).all()):
            return _Loc(int(flat[0]), rows, None, ep, frame)
        order = np.argsort(flat, kind="stable")
        ids, first = np.unique(flat[order], return_index=True)
        bounds = np.concatenate([first, [flat.size]])
        groups = [(int(p), order[bounds[i]:bounds[i + 1]]) for i, p in enumerate(ids.tolist())]
        if not groups:
            return _Loc(int(self.ep_piece[0]) if len(self.ep_piece) else 0, rows, None, ep, frame)
        return _Loc(None, rows, groups, ep, frame)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock")
        if self.mode in ("cache", "lazy"):
            state["pieces"] = [None] * len(self.pieces)
            state["_lru"], state["_lru_bytes"] = OrderedDict(), 0
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _slice_piece(piece: Piece, start: int, n: int) -> Piece:
    out = Piece.__new__(Piece)
    out.rows = n
    out.arrays = {k: v[start:start + n] for k, v in piece.arrays.items()}
    out.images = {k: v.slice(start, n) for k, v in piece.images.items()}
    return out


def _declared_hw(f: Any) -> tuple[int, int] | None:
    """``(height, width)`` of a camera feature's declared shape: ``[H, W, C]`` (LeRobot's layout), or
    ``[C, H, W]`` where its names say so (some v2.0 datasets); ``None`` when the shape says neither."""
    shape = tuple(f.shape)
    if len(shape) != 3:
        return None
    names = tuple(n.lower() for n in (f.names or ()))
    if names and names[0].startswith("channel"):
        return int(shape[1]), int(shape[2])
    return int(shape[0]), int(shape[1])


def _episode_task_index(meta: DatasetMeta, ords: np.ndarray) -> np.ndarray:
    """``int64 [E]``: for data files without ``task_index``, each selected episode's: the first of its
    ``tasks`` (episodes table) in the tasks table, else 0 (runs only for such datasets)."""
    by_text = {t: i for i, t in meta.tasks.items()}
    tasks = meta.episode_table.tasks
    if tasks is None:
        return np.zeros(len(ords), np.int64)
    if isinstance(tasks, list):
        firsts = [tasks[o][0] if tasks[o] else None for o in ords.tolist()]
    else:
        firsts = [(t[0] if t else None) for t in tasks.take(pa.array(ords)).to_pylist()]
    return np.array([by_text.get(t, 0) for t in firsts], dtype=np.int64)


def _ceil2(x: float) -> float:
    """``x`` rounded up to two significant digits (a ``tolerance_s`` to suggest)."""
    if not np.isfinite(x) or x <= 0:
        return float(x)
    k = int(np.floor(np.log10(x))) - 1
    out = float(np.ceil(x / 10.0**k) * 10.0**k)
    out = float(f"{out:.2g}")
    return out if out >= x else float(np.nextafter(x, np.inf))
