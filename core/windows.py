"""``delta_timestamps`` windows, with LeRobot's semantics.

``delta_timestamps[key]`` is a list of offsets in seconds relative to the sample's frame. Each offset
must lie on the dataset's frame grid (within ``tolerance_s``, LeRobot's ``check_delta_timestamps``)
and becomes a frame offset ``round(d * fps)``. Offsets that fall outside the sample's episode are
clamped to its first/last frame and flagged in ``{key}_is_pad`` (LeRobot's ``_get_query_indices``).

Goals (``goal=`` of :func:`prf.open_dataset`, :func:`goal_steps`): ``{key}.goal`` is ``key`` at the
sample's episode's last frame, or ``k`` frames ahead clamped at that last frame (no pad flag).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

from .errors import DeltaTimestampsError, OptionsError


def delta_indices(
    delta_timestamps: Mapping[str, Iterable[float]] | None,
    fps: float,
    known_keys: Iterable[str],
    tolerance_s: float,
) -> dict[str, np.ndarray]:
    """Convert ``delta_timestamps`` (seconds) to frame offsets: ``{key: int64 [T]}``.

    Raises:
        DeltaTimestampsError: a key is not a feature, a window is empty or not a list of numbers,
            an offset is off the fps grid by more than ``tolerance_s``, or more than 2**53 frames away.
        ValueError: ``fps`` is not a finite positive number (:class:`prf.DatasetMeta` refuses such a
            dataset first).
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.integer, np.floating)) or not (
            math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a finite positive number, got {fps!r}")
    if not delta_timestamps:
        return {}
    if not isinstance(delta_timestamps, Mapping):
        raise DeltaTimestampsError(
            f"delta_timestamps must map feature keys to lists of seconds, got {type(delta_timestamps).__name__}"
        )
    known = set(known_keys)
    out: dict[str, np.ndarray] = {}
    for key, deltas in delta_timestamps.items():
        if key not in known:
            raise DeltaTimestampsError(
                f"delta_timestamps key {key!r} is not a feature of the dataset (features: {sorted(known)})"
            )
        if isinstance(deltas, (str, bytes)) or not isinstance(deltas, Iterable):
            raise DeltaTimestampsError(f"delta_timestamps[{key!r}] must be a list of seconds, got {deltas!r}")
        values = list(deltas)
        if not values:
            raise DeltaTimestampsError(f"delta_timestamps[{key!r}] is empty")
        offsets = []
        for d in values:
            if isinstance(d, bool) or not isinstance(d, (int, float, np.integer, np.floating)) or not math.isfinite(d):
                raise DeltaTimestampsError(f"delta_timestamps[{key!r}] holds {d!r}, not a finite number of seconds")
            frames = float(d) * fps
            if not math.isfinite(frames) or abs(frames) > 2**53:
                raise DeltaTimestampsError(
                    f"delta_timestamps[{key!r}] value {d!r} s is {frames:.3g} frames at fps={fps}: too far "
                    f"to be a frame offset"
                )
            off_grid_s = abs(frames - round(frames)) / fps
            if off_grid_s > tolerance_s:
                raise DeltaTimestampsError(
                    f"delta_timestamps[{key!r}] value {d!r} s is not a multiple of 1/fps = {1 / fps:.6g} s "
                    f"(off the frame grid by {off_grid_s:.3g} s > tolerance_s={tolerance_s}); "
                    f"nearest on-grid values: {math.floor(frames) / fps:.6g}, {math.ceil(frames) / fps:.6g}"
                )
            offsets.append(round(frames))
        out[key] = np.asarray(offsets, dtype=np.int64)
    return out


def window_rows(
    frame: np.ndarray, start: np.ndarray, length: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a window and its pad mask, vectorised over a batch.

    Args:
        frame: ``int64 [B]`` position of each sample inside its episode.
        start: ``int64 [B]`` row of each sample's episode start.
        length: ``int64 [B]`` frames in each sample's episode.
        offsets: ``int64 [T]`` frame offsets of the window.

    Returns:
        ``(rows int64 [B, T], is_pad bool [B, T])``: rows clamped into the episode, and where they were.
    """
    q = frame[:, None] + offsets[None, :]
    last = (length - 1)[:, None]
    is_pad = (q < 0) | (q > last)
    rows = np.clip(q, 0, last) + start[:, None]
    return rows, is_pad


def goal_steps(goal: str | Iterable[str] | Mapping[str, int | None] | None,
               known_keys: Iterable[str]) -> dict[str, int | None]:
    """Parse ``goal=`` of :func:`prf.open_dataset`: ``{key: k}``, ``k`` frames ahead (``None``: the
    episode's last frame).

    ``goal`` is a key or a list of keys (their episode's last frame), or a mapping ``{key: k | None}``
    (``k`` an int >= 0: the frame ``min(frame + k, last)``, clamped at the episode's end).

    Raises:
        OptionsError: a key is not in ``known_keys`` (the non-camera features and selected cameras),
            or ``k`` is not an int >= 0 or None.
    """
    if goal is None:
        return {}
    if isinstance(goal, str):
        goal = [goal]
    items = list(goal.items()) if isinstance(goal, Mapping) else [(k, None) for k in goal]
    known = set(known_keys)
    out: dict[str, int | None] = {}
    for key, k in items:
        if key not in known:
            raise OptionsError(
                f"goal key {key!r} is not a non-camera feature or selected camera of the dataset (goal keys: "
                f"{sorted(known)})"
            )
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0):
            raise OptionsError(
                f"goal[{key!r}] must be None (the episode's last frame) or an int >= 0 frames ahead, got {k!r}"
            )
        out[str(key)] = None if k is None else int(k)
    return out


def goal_rows(frame: np.ndarray, start: np.ndarray, length: np.ndarray, k: int | None) -> np.ndarray:
    """``int64 [B]``: the row of each sample's goal: ``start + min(frame + k, length - 1)``, or the
    episode's last row ``start + length - 1`` when ``k`` is ``None``."""
    last = length - 1
    return start + (last if k is None else np.minimum(frame + int(k), last))
