"""PyAV decode backend (the default): self-contained, FFmpeg 7 with dav1d (AV1), H.264, HEVC, MPEG-4.

Requests for several frames of one file are decoded in one pass: sorted by pts, grouped by GOP, each
GOP decoded once forward from its keyframe; a seek happens only where it skips work. Open containers
are cached per thread and per process (created lazily after a fork, never inherited).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import VideoError
from ._index import VideoIndex, get_index
from ._per_thread import DecoderTable


class _OpenVideo:
    """An open container + stream and the decoder's position (last presented frame index)."""

    def __init__(self, path: str, thread_count: int):
        import av

        try:
            self.container = av.open(path)
        except (av.FFmpegError, OSError) as e:
            raise VideoError(f"{path}: cannot be opened ({e})") from None
        self.stream = self.container.streams.video[0]
        if thread_count > 0:
            self.stream.codec_context.thread_count = thread_count
        self.frames = None  # live decode generator
        self.position = -1  # index of the last frame the generator presented
        # One reformatter per open file: frame.to_ndarray(format=...) builds a new swscale context for
        # every frame, which costs more than decoding a small frame (measured 7x slower at 96x96).
        from av.video.reformatter import VideoReformatter

        self.reformatter = VideoReformatter()

    def restart(self) -> None:
        """A new decode generator from the container's current position (after a seek)."""
        self.stop()
        self.frames = self._decode()

    def stop(self) -> None:
        frames, self.frames = self.frames, None
        if frames is not None:
            frames.close()

    def _decode(self):
        # container.decode() without its leak: PyAV's demux generator frees its read packet only when
        # closed, and decode() never closes it (measured: ~140 bytes per abandoned decode, 1 MB per
        # epoch of random access on aloha_multicam_v30, epoch after epoch)
        packets = self.container.demux(self.stream)
        try:
            for packet in packets:
                yield from packet.decode()
        finally:
            packets.close()

    def to_rgb(self, frame) -> np.ndarray:
        return self.reformatter.reformat(frame, format="rgb24").to_ndarray()

    def close(self) -> None:
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - as below
            pass
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - closing a broken container must not mask the real error
            pass


class PyAVBackend:
    """Decode frames with PyAV.

    Args:
        thread_count: FFmpeg decoder threads per open file (0 = FFmpeg's default, one per core).
            The default 1 is measured fastest for random access (frame-threaded decoders such as dav1d
            buffer several frames before presenting one); loaders parallelise across files/GOPs instead.
        max_open: open files kept per thread (least recently used are closed).
    """

    name = "pyav"

    def __init__(self, thread_count: int = 1, max_open: int = 16):
        self.thread_count = int(thread_count)
        self.max_open = int(max_open)
        self._decoders = DecoderTable()

    # The backend is shared with loader workers: pickling drops the per-thread open files.
    def __getstate__(self):
        return {"thread_count": self.thread_count, "max_open": self.max_open}

    def __setstate__(self, state):
        self.__init__(**state)

    def index(self, path: str | Path) -> VideoIndex:
        """The file's packet index (pts and keyframes, from demuxing)."""
        return get_index(path)

    def decode(
        self, path: str | Path, timestamps: np.ndarray, tolerance_s: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames presented at ``timestamps`` (seconds of the file's timeline).

        Returns:
            ``(frames uint8 [N, H, W, 3] RGB, pts float64 [N] seconds)``.

        Raises:
            TimestampError: a timestamp has no frame within ``tolerance_s``.
            VideoError: the file is missing, corrupt or truncated.
        """
        idx = self.index(path)
        frames_idx = idx.lookup(np.asarray(timestamps, dtype=np.float64), tolerance_s)
        return self.decode_frames(path, frames_idx), idx.times[frames_idx]

    def decode_frames(self, path: str | Path, frame_indices: np.ndarray) -> np.ndarray:
        """Frames by index in presentation order: ``uint8 [N, H, W, 3]`` RGB.

        Raises:
            VideoError: a frame could not be decoded (corrupt or truncated file).
        """
        path = str(path)
        index = self.index(path)
        want = np.asarray(frame_indices, dtype=np.int64)
        if want.size and (want.min() < 0 or want.max() >= index.num_frames):
            raise VideoError(f"{path}: frame index out of range 0..{index.num_frames - 1}")
        out = np.empty((want.size, index.height, index.width, 3), dtype=np.uint8)
        if want.size == 0:
            return out
        unique, inverse = np.unique(want, return_inverse=True)
        decoded = self.decode_frames_list(path, unique)
        for j, slot in enumerate(inverse):
            out[j] = decoded[slot]
        return out

    def decode_frames_list(self, path: str | Path, frames: np.ndarray) -> list[np.ndarray]:
        """Frames ``frames`` (ascending, unique indices) as a list of ``uint8 [H, W, 3]`` arrays, decoded
        in one forward pass that seeks only to skip whole GOPs.

        Raises:
            VideoError: a frame could not be decoded (corrupt or truncated file).
        """
        path = str(path)
        return self._decode_sorted(path, self.index(path), np.asarray(frames, dtype=np.int64))

    # ---- internals ------------------------------------------------------------------------------
    def _open(self, path: str) -> _OpenVideo:
        cache: OrderedDict[str, _OpenVideo] = self._decoders.current()
        v = cache.get(path)
        if v is None:
            v = _OpenVideo(path, self.thread_count)
            cache[path] = v
            while len(cache) > self.max_open:
                _, old = cache.popitem(last=False)
                old.close()
        else:
            cache.move_to_end(path)
        return v

    def _drop(self, path: str) -> None:
        v = self._decoders.current().pop(path, None)
        if v is not None:
            v.close()

    def _decode_sorted(self, path: str, index: VideoIndex, unique: np.ndarray) -> list[np.ndarray]:
        import av

        v = self._open(path)
        result: list[np.ndarray] = []
        pts_to_idx = index.frame_of_pts
        try:
            for target in unique.tolist():
                gop = int(index.gop_start[target])
                if v.frames is None or target <= v.position or gop > v.position + 1:
                    # Seek to the target's keyframe; decoding forward from there reaches it.
                    v.container.seek(int(index.pts[gop]), stream=v.stream, backward=True, any_frame=False)
                    v.restart()
                    v.position = gop - 1
                frame = None
                for frame in v.frames:
                    i = pts_to_idx.get(frame.pts) if frame.pts is not None else v.position + 1
                    if i is None:  # a pts the index does not know: count forward
                        i = v.position + 1
                    v.position = i
                    if i >= target:
                        break
                else:
                    v.stop()
                    frame = None
                if frame is None or v.position != target:
                    raise VideoError(
                        f"{path}: frame {target} (pts {int(index.pts[target])}) could not be decoded; "
                        f"the file is truncated or corrupt (decoder stopped at frame {v.position})"
                    )
                result.append(v.to_rgb(frame))
        except VideoError:
            self._drop(path)
            raise
        except (av.FFmpegError, OSError, ValueError) as e:
            self._drop(path)
            raise VideoError(f"{path}: decoding failed near frame {v.position + 1} ({e})") from None
        return result
