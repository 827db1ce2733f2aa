"""Decode plans: the camera frames that one or more batches need, grouped by video file and GOP.

A batch is planned in three steps, so that a loader can decode several batches (a prefetch window)
together and spread the work over its workers:

1. :meth:`prf.Dataset.plan` -> :class:`BatchPlan`: every non-camera array of the batch (cheap NumPy
   gathers) and, per camera, the exact frame of the exact file each ``(sample, window step)`` needs
   (nearest pts, checked against ``tolerance_s``).
2. :func:`decode_tasks`: the requests of many plans merged per file, deduplicated (overlapping
   windows and neighbouring samples share frames), sorted by pts and cut into :class:`DecodeTask`
   pieces at GOP boundaries, so no GOP is decoded twice and each task decodes forward from a keyframe.
3. :func:`assemble`: each plan's batch filled from the decoded frames (and its ``image``-dtype cameras
   decoded from their stored PNG/JPEG bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from . import _profile
from .decode import FrameSource, VideoIndex


@dataclass
class CameraRequest:
    """The frames one camera of one batch needs: ``frames[i]`` of file ``paths[file_ids[i]]`` for
    flat slot ``i = b * T + t``."""

    shape: tuple[int, int]  # (B, T)
    windowed: bool
    paths: list[str]
    file_ids: np.ndarray  # int64 [B*T]
    frames: np.ndarray  # int64 [B*T]


@dataclass
class BatchPlan:
    """A batch with its non-camera arrays assembled and its camera frames still to decode."""

    indices: np.ndarray
    data: dict[str, Any]
    cameras: dict[str, CameraRequest] = field(default_factory=dict)
    #: image-dtype cameras: a call that decodes the key's array, run by :func:`assemble` (in a loader
    #: worker, not in the planning thread)
    images: dict[str, Callable[[], np.ndarray]] = field(default_factory=dict)

    def requests(self) -> Iterable[tuple[str, np.ndarray]]:
        """``(path, frame indices)`` per file and camera (not deduplicated)."""
        for req in self.cameras.values():
            for fid in np.unique(req.file_ids).tolist():
                yield req.paths[fid], req.frames[req.file_ids == fid]

    def frame_count(self) -> int:
        return sum(int(r.frames.size) for r in self.cameras.values())


@dataclass
class DecodeTask:
    """Frames of one file to decode in one forward pass (sorted, unique, whole GOPs never split)."""

    path: str
    frames: np.ndarray  # int64 [n], ascending, unique


class DecodedFrames:
    """Results of decode tasks: ``uint8 [H, W, 3]`` frames by (path, frame index)."""

    def __init__(self) -> None:
        self._parts: dict[str, list[tuple[np.ndarray, FrameSource]]] = {}

    def add(self, task: DecodeTask, frames: FrameSource | list[np.ndarray]) -> None:
        """``frames``: what the backend's ``decode_frames_list`` returned for the task: a list of
        ``uint8 [H, W, 3]`` arrays in the task's order, or a :class:`prf.decode.FrameSource` (e.g. the
        frame cache's, which copies each frame from storage straight into the batch)."""
        self._parts.setdefault(task.path, []).append((task.frames, FrameSource.of(frames)))

    def fill(self, out: np.ndarray, slots: np.ndarray, path: str, frames: np.ndarray) -> None:
        """``out[slots[j]] = frame frames[j] of path`` for every j."""
        done = np.zeros(frames.size, dtype=bool)
        for have, arrays in self._parts.get(path, ()):
            pos = np.searchsorted(have, frames)
            pos_c = np.minimum(pos, have.size - 1)
            hit = (have[pos_c] == frames) & ~done
            for j in np.flatnonzero(hit).tolist():
                arrays.copy_into(int(pos_c[j]), out[slots[j]])
            done |= hit
        if not done.all():  # a bug, never bad data: every planned frame has a task
            raise RuntimeError(f"{path}: frames {frames[~done][:5].tolist()} were planned but not decoded")


def decode_tasks(
    plans: Iterable[BatchPlan], index_of: Callable[[str], VideoIndex], split: int = 1, min_frames: int = 8
) -> list[DecodeTask]:
    """Merge the plans' requests per file and cut them into tasks.

    Args:
        plans: the batch plans of a prefetch window.
        index_of: the packet index of a file (GOP starts).
        split: cut each file's frames into about this many tasks (for parallel workers), at GOP
            boundaries, with at least ``min_frames`` frames per task.
    """
    per_file: dict[str, list[np.ndarray]] = {}
    for plan in plans:
        for path, frames in plan.requests():
            per_file.setdefault(path, []).append(frames)
    tasks: list[DecodeTask] = []
    for path, parts in per_file.items():
        frames = np.unique(np.concatenate(parts))
        n_pieces = max(1, min(split, frames.size // max(1, min_frames)))
        if n_pieces == 1:
            tasks.append(DecodeTask(path, frames))
            continue
        gop = index_of(path).gop_start[frames]
        # candidate cut points: where a new GOP starts; choose the ones nearest equal-size pieces
        cuts_ok = np.flatnonzero(np.diff(gop) != 0) + 1
        targets = (np.arange(1, n_pieces) * frames.size) // n_pieces
        cuts = np.unique(cuts_ok[np.clip(np.searchsorted(cuts_ok, targets), 0, max(cuts_ok.size - 1, 0))]) if cuts_ok.size else []
        for piece in np.split(frames, cuts):
            if piece.size:
                tasks.append(DecodeTask(path, piece))
    return tasks


def allocate(plan: BatchPlan, frame_shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Uninitialised camera arrays ``uint8 [B*T, H, W, 3]`` for ``plan``.

    The loader calls this in its own thread: glibc serves the main thread from its main heap, which keeps
    and reuses freed batch memory, where worker threads' arenas unmap and re-fault it (measured 2-3x
    run-to-run swings on 640x360 batches from the frame cache)."""
    return {key: np.empty((req.shape[0] * req.shape[1],) + frame_shapes[key], dtype=np.uint8)
            for key, req in plan.cameras.items()}


def assemble(plan: BatchPlan, decoded: DecodedFrames, frame_shapes: dict[str, tuple[int, ...]],
             out_arrays: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The finished batch of ``plan``: its data plus every camera ``uint8 [B, (T,) H, W, 3]`` (filled
    into ``out_arrays`` from :func:`allocate` when given)."""
    out = dict(plan.data)
    for key, decode in plan.images.items():
        with _profile.stage(f"decode {key}"):  # a no-op unless Loader.profile() runs (prf._profile)
            out[key] = decode()
        n = out[key].shape[0] * (out[key].shape[1] if out[key].ndim == 5 else 1)
        _profile.count("frames_assembled", n)
        _profile.count("frames_decoded", n)  # image-dtype cameras: every slot is decoded from its bytes
    for key, req in plan.cameras.items():
        B, T = req.shape
        flat = out_arrays[key] if out_arrays is not None else np.empty((B * T,) + frame_shapes[key], dtype=np.uint8)
        for fid in np.unique(req.file_ids).tolist():
            slots = np.flatnonzero(req.file_ids == fid)
            decoded.fill(flat, slots, req.paths[fid], req.frames[slots])
        frames = flat.reshape((B, T) + frame_shapes[key])
        out[key] = frames if req.windowed else frames[:, 0]
    return out


def item(dataset: Any, i: int) -> dict[str, Any]:
    """``dataset[i]``: the one-sample batch of ``dataset.get_batch`` without its batch axis (the one rule
    for every map-style view: :class:`Dataset`, ``ds.with_transforms(...)``).

    Raises:
        TypeError: ``i`` is not an integer.
        IndexError: ``i`` is out of range (negative indices count from the end).
    """
    n = len(dataset)
    if not isinstance(i, (int, np.integer)):
        raise TypeError(f"Dataset indices must be integers, got {type(i).__name__}")
    if i < -n or i >= n:
        raise IndexError(f"index {i} out of range for a dataset of {n} frames")
    batch = dataset.get_batch(np.array([i % n], dtype=np.int64))
    return {k: (v[0] if isinstance(v, list) else v[0, ...]) for k, v in batch.items()}
