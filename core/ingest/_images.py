"""Image messages (as converted columns) -> RGB frames.

Raw images (``sensor_msgs/Image``, ``foxglove.RawImage``: ``data`` + ``encoding`` + ``width`` +
``height`` [+ ``step``, ``is_bigendian``]) and compressed images (``sensor_msgs/CompressedImage``,
``foxglove.CompressedImage``: ``data`` + ``format``; JPEG and PNG, decoded with PyAV) and compressed
video (``foxglove.CompressedVideo``: ``data`` + ``format`` ``h264`` / ``h265`` / ``vp9`` / ``av1``, one frame
per message, no B-frames, as Foxglove specifies; decoded in order with one PyAV decoder per topic).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from ..errors import DataFrameError

#: raw encodings prf converts: name -> (channels, bytes per channel, channel order)
RAW_ENCODINGS = {
    "rgb8": (3, 1, "rgb"), "bgr8": (3, 1, "bgr"), "rgba8": (4, 1, "rgba"), "bgra8": (4, 1, "bgra"),
    "mono8": (1, 1, "mono"), "8uc1": (1, 1, "mono"), "8uc3": (3, 1, "bgr"), "8uc4": (4, 1, "bgra"),
    "mono16": (1, 2, "mono"), "16uc1": (1, 2, "mono"),
}


#: ``foxglove.CompressedVideo`` formats -> FFmpeg decoders (first available)
VIDEO_FORMATS = {"h264": ("h264",), "h265": ("hevc",), "hevc": ("hevc",), "vp9": ("libvpx-vp9", "vp9"),
                 "av1": ("libdav1d", "av1", "libaom-av1")}


def image_kind(table: pa.Table) -> str | None:
    """``"raw"``, ``"compressed"``, ``"video"`` or ``None`` (not an image topic) from a converted
    topic's columns."""
    cols = set(table.column_names)
    if "data" not in cols:
        return None
    if {"encoding", "width", "height"} <= cols:
        return "raw"
    if "format" in cols:
        fmt = next((f for f in table.column("format").to_pylist() if f), "")
        return "video" if str(fmt).strip().lower() in VIDEO_FORMATS else "compressed"
    return None


def image_reader(table: pa.Table, topic: str) -> Callable[[int], np.ndarray]:
    """A function ``row -> uint8 [H, W, 3]`` RGB for an image topic's table.

    Raises:
        DataFrameError: the topic is not an image topic; (from the function) an unsupported encoding or
            format, or data too short for its width/height/step.
    """
    kind = image_kind(table)
    if kind is None:
        raise DataFrameError(f"topic {topic!r} is not an image topic (it needs a 'data' column with "
                             f"'encoding'/'width'/'height' or 'format'; columns: {table.column_names[:10]})")
    data = table.column("data")
    if kind == "raw":
        enc = table.column("encoding")
        width, height = table.column("width"), table.column("height")
        step = table.column("step") if "step" in table.column_names else None
        big = table.column("is_bigendian") if "is_bigendian" in table.column_names else None

        def read_raw(i: int) -> np.ndarray:
            return decode_raw(
                _payload(data[i].as_py(), topic, i), str(enc[i].as_py()), int(width[i].as_py()), int(height[i].as_py()),
                None if step is None else int(step[i].as_py()), bool(big[i].as_py()) if big is not None else False,
                where=f"topic {topic!r} row {i}",
            )

        return read_raw
    fmt = table.column("format")
    if kind == "video":
        return _VideoTopic(data, str(next(f for f in fmt.to_pylist() if f)).strip().lower(), topic)
    decoders: dict[str, Any] = {}

    def read_compressed(i: int) -> np.ndarray:
        return decode_compressed(_payload(data[i].as_py(), topic, i), str(fmt[i].as_py()), decoders,
                                 where=f"topic {topic!r} row {i}")

    return read_compressed


def _payload(value: Any, topic: str, row: int) -> bytes:
    """An image message's ``data``: bytes, or base64 text (JSON logs carry bytes as base64, e.g.
    Foxglove's JSON ``CompressedImage``; a converted topic whose schema did not say
    ``contentEncoding: base64`` keeps the text)."""
    if isinstance(value, str):
        import base64
        import binascii

        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as e:
            raise DataFrameError(f"topic {topic!r} row {row}: 'data' is text that is not base64 ({e})") from None
    return b"" if value is None else value


def decode_raw(buf: bytes, encoding: str, width: int, height: int, step: int | None, bigendian: bool,
               *, where: str = "") -> np.ndarray:
    """A raw image buffer as ``uint8 [H, W, 3]`` RGB (16-bit mono keeps its high byte)."""
    spec = RAW_ENCODINGS.get(encoding.lower())
    if spec is None:
        raise DataFrameError(f"{where}: raw image encoding {encoding!r} is not supported "
                             f"(supported: {sorted(RAW_ENCODINGS)})")
    ch, nbytes, order = spec
    row_bytes = width * ch * nbytes
    step = step or row_bytes
    if step < row_bytes or len(buf) < step * (height - 1) + row_bytes:
        raise DataFrameError(f"{where}: {len(buf)} bytes of {encoding} data is too short for {width}x{height} "
                             f"(step {step})")
    a = np.frombuffer(buf, dtype=np.uint8, count=min(len(buf), step * height))
    if len(a) < step * height:
        a = np.concatenate([a, np.zeros(step * height - len(a), np.uint8)])
    a = a.reshape(height, step)[:, :row_bytes]
    if nbytes == 2:
        a16 = a.reshape(height, width * ch, 2)
        hi = a16[..., 0] if bigendian else a16[..., 1]
        a = np.ascontiguousarray(hi)
    a = a.reshape(height, width, ch)
    if order == "mono":
        return np.repeat(a, 3, axis=2)
    if order == "rgb":
        return np.ascontiguousarray(a)
    if order == "bgr":
        return np.ascontiguousarray(a[..., ::-1])
    if order == "rgba":
        return np.ascontiguousarray(a[..., :3])
    return np.ascontiguousarray(a[..., 2::-1])  # bgra


def decode_compressed(buf: bytes, fmt: str, decoders: dict[str, Any], *, where: str = "") -> np.ndarray:
    """A JPEG or PNG image (``format`` as ROS/Foxglove write it, e.g. ``"jpeg"``, ``"rgb8; jpeg compressed
    bgr8"``, ``"png"``) as ``uint8 [H, W, 3]`` RGB, decoded with PyAV."""
    import av

    f = fmt.lower()
    codec = "mjpeg" if ("jpeg" in f or "jpg" in f) else "png" if "png" in f else None
    if codec is None:
        raise DataFrameError(f"{where}: compressed image format {fmt!r} is not supported (JPEG and PNG are)")
    ctx = decoders.get(codec)
    if ctx is None:
        ctx = decoders[codec] = av.CodecContext.create(codec, "r")
    try:
        frames = list(ctx.decode(av.Packet(buf)))
        if not frames:
            frames = list(ctx.decode(None))
            decoders.pop(codec, None)  # a flushed context cannot decode more
    except av.error.FFmpegError as e:
        decoders.pop(codec, None)
        raise DataFrameError(f"{where}: the {codec} image cannot be decoded ({e})") from None
    if not frames:
        raise DataFrameError(f"{where}: the {codec} image decoded to no frame")
    return frames[-1].to_ndarray(format="rgb24")


class _VideoTopic:
    """``row -> uint8 [H, W, 3]`` for a compressed-video topic: rows are decoded in order by one
    decoder (asking for an earlier row than the last restarts from the first message). Each message's
    row number is its packet's pts, so a frame the decoder drops is an error, never a shifted frame."""

    def __init__(self, data: pa.ChunkedArray, fmt: str, topic: str):
        import av

        self._data, self._fmt, self._topic = data, fmt, topic
        for name in VIDEO_FORMATS[fmt]:
            try:
                av.codec.Codec(name, "r")
                self._codec = name
                break
            except (av.error.FFmpegError, ValueError):
                continue
        else:
            raise DataFrameError(f"topic {topic!r}: no decoder for {fmt!r} video in this FFmpeg build")
        self._reset()

    def _reset(self) -> None:
        import av

        self._ctx = av.CodecContext.create(self._codec, "r")
        self._ctx.thread_count = 1  # frames come out as their packets go in (no frame-thread delay)
        self._next = 0  # next message to feed
        self._pending: deque = deque()
        self._flushed = False
        self._row, self._frame = -1, None

    def _feed(self) -> None:
        import av

        try:
            if self._next < len(self._data):
                pkt = av.Packet(_payload(self._data[self._next].as_py(), self._topic, self._next))
                pkt.pts = pkt.dts = self._next
                self._next += 1
                self._pending.extend(self._ctx.decode(pkt))
            elif not self._flushed:
                self._flushed = True
                self._pending.extend(self._ctx.decode(None))
            else:
                raise DataFrameError(f"topic {self._topic!r}: the {self._fmt} stream ends before row "
                                     f"{self._row + 1} has a frame")
        except av.error.FFmpegError as e:
            raise DataFrameError(f"topic {self._topic!r} row {self._next - 1}: the {self._fmt} video "
                                 f"cannot be decoded ({e})") from None

    def __call__(self, i: int) -> np.ndarray:
        if i < self._row:
            self._reset()
        while self._row < i:
            while not self._pending:
                self._feed()
            frame = self._pending.popleft()
            if frame.pts is not None and frame.pts != self._row + 1:
                raise DataFrameError(
                    f"topic {self._topic!r}: the decoder gave the frame of row {frame.pts} where row "
                    f"{self._row + 1} was expected (a message without a decodable frame, e.g. a stream "
                    f"that does not start at a keyframe, or B-frames)")
            self._row, self._frame = self._row + 1, frame
        return self._frame.to_ndarray(format="rgb24")
