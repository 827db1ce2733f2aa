"""PyAV decode backend (the default): self-contained, FFmpeg 7 with dav1d (AV1), H.264, HEVC, MPEG-4.

Requests for several frames of one file are decoded in one pass: sorted by pts, grouped by GOP, each
GOP decoded once forward from its keyframe; a seek happens only where it skips work. Open containers
are kept per thread and per process (created lazily after a fork, never inherited), LRU-bounded in count
and estimated bytes, and closed explicitly (:meth:`PyAVBackend.close`, LRU eviction), never left to
finalizers.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..errors import StreamError, VideoError
from ..stream import open_input, prefetch_frames
from ._base import BackendCapabilities, _PooledBackend
from ._index import VideoIndex, get_index
from ._per_thread import DEFAULT_MAX_OPEN, DEFAULT_MAX_OPEN_BYTES, decoder_bytes


_THREAD = threading.local()
_INHERITED_REFORMATTERS: list = []


def rgb_reformatter():
    """This thread's PyAV ``VideoReformatter`` in this process (one swscale context, re-initialised by
    FFmpeg only when the source format or size changes).

    Measured: ``frame.to_ndarray(format=...)`` builds a new swscale context for every frame (7x slower
    than a reused one at 96x96), and initialising a context costs 3-12 ms, so a reformatter per open
    file made a shuffled epoch over many small shards (161 files of 64x64) spend most of its time in
    swscale set-up (a decoder LRU re-opens files). Fork-safe as the decoders are: swscale may run
    threads, so a forked child never uses (nor frees) the parent's context; it builds its own."""
    got = getattr(_THREAD, "reformatter", None)
    if got is None or got[0] != os.getpid():
        from av.video.reformatter import VideoReformatter

        if got is not None:
            _INHERITED_REFORMATTERS.append(got[1])  # the parent's: kept alive, never used or freed here
        got = _THREAD.reformatter = (os.getpid(), VideoReformatter())
    return got[1]


class _OpenVideo:
    """An open container + stream and the decoder's position (last presented frame index)."""

    def __init__(self, path: str, thread_count: int):
        import av

        try:
            self.container = av.open(open_input(path, short_reads=True))  # a streamed file: by byte range
        except (av.FFmpegError, OSError) as e:
            raise VideoError(f"{path}: cannot be opened ({e})") from None
        self.stream = self.container.streams.video[0]
        if thread_count > 0:
            self.stream.codec_context.thread_count = thread_count
        self.frames = None  # live decode generator
        self.position = -1  # index of the last frame the generator presented

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

    @staticmethod
    def to_rgb(frame) -> np.ndarray:
        return rgb_reformatter().reformat(frame, format="rgb24").to_ndarray()

    def close(self) -> None:
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - as below
            pass
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - closing a broken container must not mask the real error
            pass


class PyAVBackend(_PooledBackend):
    """Decode frames with PyAV.

    Args:
        thread_count: FFmpeg decoder threads per open file (0 = FFmpeg's default, one per core).
            The default 1 is measured fastest for random access (frame-threaded decoders such as dav1d
            buffer several frames before presenting one); loaders parallelise across files/GOPs instead.
        max_open: open files kept per thread (least recently used are closed).
        max_open_bytes: estimated bytes of open decoders kept per thread (see
            :func:`prf.decode._per_thread.decoder_bytes`; default 128 MiB).
    """

    name = "pyav"
    capabilities = BackendCapabilities(copy_only=False, direct_copy=False, device="cpu")

    def __init__(self, thread_count: int = 1, max_open: int = DEFAULT_MAX_OPEN,
                 max_open_bytes: int = DEFAULT_MAX_OPEN_BYTES):
        self.thread_count = int(thread_count)
        super().__init__(max_open=max_open, max_open_bytes=max_open_bytes)

    def index(self, path: str | Path) -> VideoIndex:
        """The file's packet index (pts and keyframes, from demuxing; see :func:`prf.decode.get_index`)."""
        return get_index(path)

    def decode_frames_list(self, path: str | Path, frames: np.ndarray) -> list[np.ndarray]:
        """Frames ``frames`` (ascending, unique indices) as a list of ``uint8 [H, W, 3]`` arrays, decoded
        in one forward pass that seeks only to skip whole GOPs.

        Raises:
            VideoError: a frame could not be decoded (corrupt or truncated file).
        """
        path = str(path)
        index = self.index(path)
        want = np.asarray(frames, dtype=np.int64)
        if want.size == 0:
            return []
        prefetch_frames(path, want)  # a streamed file: its GOPs fetched concurrently first (local: no-op)
        try:
            with self._decoders.use(path, lambda p: (_OpenVideo(p, self.thread_count),
                                                     decoder_bytes(index.width, index.height))) as v:
                return self._decode_sorted(path, index, want, v)
        except (VideoError, StreamError):
            self._decoders.drop(path)  # the decoder's state is unknown after an error: closed
            raise

    # ---- internals ------------------------------------------------------------------------------
    @staticmethod
    def _close_decoder(decoder: _OpenVideo) -> None:
        decoder.close()

    def _decode_sorted(self, path: str, index: VideoIndex, unique: np.ndarray, v: _OpenVideo):
        import av

        result: list[np.ndarray] = []
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
                    i = index.frame_of(frame.pts) if frame.pts is not None else None
                    if i is None:  # no pts, or a pts the index does not know: count forward
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
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoError(f"{path}: decoding failed near frame {v.position + 1} ({e})") from None
        return result
