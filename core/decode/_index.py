"""Per-file packet index built by demuxing only (no decoding): every frame's pts and keyframe flag.

It maps a timestamp to the exact frame that a decoder will present for it (the frame whose pts is
nearest, as LeRobot's decoders pick it) and tells which GOP (keyframe) that frame's decode starts at.
Indexes are cached per process, keyed by (path, size, mtime), so a changed file is re-indexed.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import TimestampError, VideoError


@dataclass(frozen=True)
class VideoIndex:
    """Frames of one video stream in presentation order.

    Attributes:
        path: the video file.
        pts: ``int64 [N]`` presentation timestamps in ``time_base`` units, ascending.
        keyframe: ``bool [N]`` whether frame i is a keyframe (a GOP start).
        gop_start: ``int64 [N]`` index of the keyframe a decode of frame i starts from.
        time_base: seconds per pts unit.
        codec, width, height, pix_fmt: stream properties read from the file.
        average_fps: the container's average frame rate (frames / second), or 0.0 if unknown.
    """

    path: str
    pts: np.ndarray
    keyframe: np.ndarray
    gop_start: np.ndarray
    time_base: Fraction
    codec: str
    width: int
    height: int
    pix_fmt: str
    average_fps: float
    frame_of_pts: dict = field(default_factory=dict, compare=False, repr=False)  # pts -> frame index

    @property
    def num_frames(self) -> int:
        return int(self.pts.shape[0])

    @property
    def times(self) -> np.ndarray:
        """``float64 [N]`` presentation time of each frame, seconds."""
        return self.pts.astype(np.float64) * float(self.time_base)

    @property
    def num_keyframes(self) -> int:
        return int(self.keyframe.sum())

    def nearest(self, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices whose pts is nearest each timestamp (seconds), and the distances (seconds)."""
        t = np.asarray(timestamps, dtype=np.float64)
        times = self.times
        if times.size == 0:
            raise VideoError(f"{self.path}: the video stream has no frames")
        hi = np.clip(np.searchsorted(times, t), 1, times.size - 1) if times.size > 1 else np.zeros(t.shape, np.int64)
        lo = np.maximum(hi - 1, 0)
        d_lo = np.abs(t - times[lo])
        d_hi = np.abs(times[hi] - t)
        idx = np.where(d_hi < d_lo, hi, lo)
        return idx.astype(np.int64), np.minimum(d_lo, d_hi)

    def lookup(self, timestamps: np.ndarray, tolerance_s: float | None, context: str = "") -> np.ndarray:
        """Like :meth:`nearest` but raise :class:`TimestampError` when a frame is ``>= tolerance_s`` away
        (LeRobot's check, ``|pts - t| < tolerance_s``). ``tolerance_s=None`` skips the check."""
        idx, dist = self.nearest(timestamps)
        if tolerance_s is not None:
            bad = dist >= tolerance_s
            if bad.any():
                t = np.asarray(timestamps, dtype=np.float64)
                j = int(np.argmax(bad))
                times = self.times
                raise TimestampError(
                    f"{self.path}{context}: no frame within tolerance_s={tolerance_s} of t={t[j]:.6f}s "
                    f"(nearest frame {idx[j]} at {times[idx[j]]:.6f}s, {dist[j]:.6f}s away; "
                    f"the video has {times.size} frames spanning {times[0]:.3f}-{times[-1]:.3f}s); "
                    f"{int(bad.sum())} of {bad.size} requested timestamps are out of tolerance"
                )
        return idx


def build_index(path: str | Path) -> VideoIndex:
    """Demux ``path`` (no decoding) and index the first video stream's frames.

    Raises:
        VideoError: the file cannot be opened or demuxed, or has no video stream.
    """
    import av  # the index needs only the demuxer; PyAV is a core dependency

    path = str(path)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            stream = container.streams.video[0]
            pts: list[int] = []
            key: list[bool] = []
            for packet in container.demux(stream):
                if packet.pts is None:  # the flush packet at the end
                    continue
                pts.append(int(packet.pts))
                key.append(bool(packet.is_keyframe))
            cc = stream.codec_context
            codec = cc.name
            width, height = int(cc.width), int(cc.height)
            pix_fmt = cc.format.name if cc.format is not None else (cc.pix_fmt or "")
            tb = stream.time_base or Fraction(1, 1)
            rate = stream.average_rate
            declared = int(stream.frames or 0)
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{path}: cannot be opened or demuxed as video ({e})") from None
    if not pts:
        raise VideoError(f"{path}: the video stream has no frames (empty or truncated file)")
    if declared and len(pts) < declared:
        raise VideoError(
            f"{path}: the container declares {declared} frames but only {len(pts)} could be read; "
            f"the file is truncated or corrupt"
        )
    p = np.asarray(pts, dtype=np.int64)
    k = np.asarray(key, dtype=bool)
    order = np.argsort(p, kind="stable")
    p, k = p[order], k[order]
    if np.any(np.diff(p) == 0):
        raise VideoError(f"{path}: two frames share a pts; the file is malformed")
    if not k[0]:
        k = k.copy()
        k[0] = True  # decoding from the file start is always possible
    positions = np.arange(p.size)
    gop = np.maximum.accumulate(np.where(k, positions, 0)).astype(np.int64)
    return VideoIndex(
        path=path,
        pts=p,
        keyframe=k,
        gop_start=gop,
        time_base=Fraction(tb),
        codec=codec,
        width=width,
        height=height,
        pix_fmt=pix_fmt,
        average_fps=float(rate) if rate else 0.0,
        frame_of_pts={int(v): i for i, v in enumerate(p.tolist())},
    )


_CACHE: dict[tuple[str, int, int], VideoIndex] = {}
_LOCK = threading.Lock()


def get_index(path: str | Path) -> VideoIndex:
    """The cached :class:`VideoIndex` of ``path`` (re-built when the file's size or mtime changes).

    Raises:
        VideoError: the file is missing or cannot be demuxed.
    """
    path = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise VideoError(f"{path}: video file is missing") from None
    key = (path, st.st_size, st.st_mtime_ns)
    idx = _CACHE.get(key)
    if idx is None:
        idx = build_index(path)
        with _LOCK:
            _CACHE[key] = idx
    return idx
