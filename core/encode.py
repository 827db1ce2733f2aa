"""Video encoding with PyAV, with LeRobot's defaults (yuv420p, a keyframe every 2 frames, CRF 30)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import WriteError

#: encoder names tried for each codec family, in order of preference. HEVC is deliberately absent:
#: libx265 in PyAV's wheel corrupts the heap (glibc abort) on frames smaller than its 64-pixel CTU.
#: HEVC videos still decode.
ENCODERS = {"av1": ("libsvtav1", "libaom-av1"), "h264": ("libx264", "h264")}


def pick_encoder(codec: str = "auto") -> str:
    """The FFmpeg encoder for ``codec`` (``"av1"``, ``"h264"``, ``"auto"`` = AV1 where the PyAV build
    has an AV1 encoder, else H.264), or one of :data:`ENCODERS`' encoder names passed through.

    Raises:
        WriteError: no encoder of that family is available in this PyAV build.
    """
    import av

    available = av.codecs_available
    families = ["av1", "h264"] if codec == "auto" else [codec]
    if codec not in ENCODERS and codec in {name for names in ENCODERS.values() for name in names}:
        if codec in available:
            return codec  # an encoder name (as picked before) passes through
        raise WriteError(f"encoder {codec!r} is not in this PyAV build")
    unknown = [f for f in families if f not in ENCODERS]
    if unknown:
        raise WriteError(f"video codec {codec!r} is not written by prf; use 'av1', 'h264' or 'auto'")
    for fam in families:
        for name in ENCODERS[fam]:
            if name in available:
                return name
    raise WriteError(f"no encoder for codec {codec!r} in this PyAV build (tried {families})")


def encoder_options(encoder: str, *, gop: int = 2, crf: int = 30) -> dict[str, str]:
    """FFmpeg options prf encodes with: a keyframe every ``gop`` frames, ``crf``, and a fast preset
    (SVT-AV1 preset 10, x264 veryfast); used by :class:`VideoEncoder` and by the editors when they
    re-encode a GOP that straddles a cut (:mod:`prf.edit`)."""
    options = {"g": str(gop), "crf": str(crf)}
    if encoder == "libsvtav1":
        options["preset"] = "10"
    elif encoder == "libx264":
        options["preset"] = "veryfast"
    return options


class VideoEncoder:
    """Append ``uint8 [N, H, W, 3]`` RGB frames to an mp4 at a constant ``fps``.

    Frame ``k`` (counting from 0 over all :meth:`add` calls) gets pts ``k / fps`` seconds.

    Args:
        path: output file (``.mp4``).
        fps: frame rate.
        width, height: frame size (even numbers, as yuv420p requires).
        codec: see :func:`pick_encoder`.
        gop: keyframe interval (LeRobot: 2).
        crf: constant rate factor (LeRobot: 30).
    """

    def __init__(self, path: str | Path, fps: int, width: int, height: int, *, codec: str = "auto",
                 gop: int = 2, crf: int = 30):
        import av

        if width % 2 or height % 2:
            raise WriteError(f"{path}: yuv420p video needs even width and height, got {width}x{height}")
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner at info level otherwise
        self.path = str(path)
        self.encoder = pick_encoder(codec)
        self.count = 0
        #: bytes of encoded video muxed so far (the encoder may still hold a few frames)
        self.bytes_written = 0
        self._container = av.open(self.path, "w")
        stream = self._container.add_stream(self.encoder, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = int(width), int(height), "yuv420p"
        stream.options = encoder_options(self.encoder, gop=gop, crf=crf)
        stream.time_base = Fraction(1, int(round(fps))) if float(fps).is_integer() else stream.time_base
        self._stream = stream
        self._fps = fps

    def add(self, frames: np.ndarray) -> None:
        import av

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise WriteError(f"{self.path}: frames must be uint8 [N, H, W, 3], got {frames.dtype} {frames.shape}")
        if frames.shape[1:3] != (self._stream.height, self._stream.width):
            raise WriteError(
                f"{self.path}: frames are {frames.shape[2]}x{frames.shape[1]}, the video is "
                f"{self._stream.width}x{self._stream.height}"
            )
        for f in frames:
            # rgb24 goes to the encoder as is: its codec context converts to yuv420p with one persistent
            # swscale context (a VideoFrame.reformat per frame builds a new one each time: 4 ms a frame)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts = self.count
            vf.time_base = Fraction(1, 1) / Fraction(self._fps).limit_denominator(1001)
            for packet in self._stream.encode(vf):
                self.bytes_written += packet.size
                self._container.mux(packet)
            self.count += 1

    def close(self) -> None:
        for packet in self._stream.encode():
            self.bytes_written += packet.size
            self._container.mux(packet)
        self._container.close()

    def abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # noqa: BLE001 - the caller removes the partial file anyway
            pass
