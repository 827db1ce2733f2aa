"""The packet table of a remote mp4 from its sample tables only, and the byte ranges of GOPs.

The file's top-level boxes are walked by their 8/16-byte headers (one small range each); FFmpeg's
mp4 demuxer (through PyAV) then reads the ``moov`` box (and any ``moof``) for real while every
``mdat`` payload reads as zeros without being fetched: pts, keyframe flags and each packet's byte
position and size come from the sample tables, never from the payload, so the table equals a demux
of the whole file (``tests/test_stream.py`` compares them) at the cost of the metadata boxes' bytes.

:func:`gop_ranges` turns the frames a decode needs into the byte ranges of their GOPs (keyframe to
the last packet before the next keyframe), to be fetched before decoding.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import StreamError, VideoError
from ._file import RemoteFile
from ._ranges import STORE
from ._source import Source


@dataclass(frozen=True)
class PacketTable:
    """Packets of a video stream in presentation order: ``pts``, ``keyframe``, and each packet's
    ``pos`` / ``size`` in bytes in the file (``int64 [N]``), plus the stream properties."""

    pts: np.ndarray
    keyframe: np.ndarray
    pos: np.ndarray
    size: np.ndarray
    time_base: Fraction
    codec: str
    width: int
    height: int
    pix_fmt: str
    average_fps: float
    declared_frames: int


def top_level_boxes(src: Source) -> list[tuple[str, int, int, int]]:
    """``(type, offset, size, header size)`` of each top-level box of the file.

    Raises:
        VideoError: a box header is malformed (not an ISO-BMFF / mp4 file)."""
    out = []
    off, end = 0, src.size
    while off + 8 <= end:
        head = STORE.read(src, off, min(off + 16, end))
        size, typ = struct.unpack(">I4s", head[:8])
        hdr = 8
        if size == 1:
            if len(head) < 16:
                raise VideoError(f"{src.url}: truncated box header at byte {off}")
            size, hdr = struct.unpack(">Q", head[8:16])[0], 16
        elif size == 0:
            size = end - off
        if size < hdr:
            raise VideoError(f"{src.url}: malformed mp4 box header at byte {off} (size {size}); not an mp4 file")
        out.append((typ.decode("latin-1"), off, size, hdr))
        off += size
    return out


def _build(src: Source) -> PacketTable:
    import av

    boxes = top_level_boxes(src)
    zero = [(o + h, o + s) for t, o, s, h in boxes if t == "mdat" and s > h]
    f = RemoteFile(src, short_reads=True, zero=zero)
    try:
        with av.open(f, mode="r") as c:
            if not c.streams.video:
                raise VideoError(f"{src.url}: no video stream")
            st = c.streams.video[0]
            rows = [(int(p.pts), bool(p.is_keyframe), int(p.pos), int(p.size)) for p in c.demux(st)
                    if p.pts is not None]
            cc = st.codec_context
            pix = cc.format.name if cc.format is not None else (cc.pix_fmt or "")
            tb = Fraction(st.time_base or Fraction(1, 1))
            rate = float(st.average_rate) if st.average_rate else 0.0
            table = (cc.name, int(cc.width), int(cc.height), pix, tb, rate, int(st.frames or 0))
    except (VideoError, StreamError):
        raise
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoError(f"{src.url}: cannot be demuxed as video ({e})") from None
    arr = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    order = np.argsort(arr[:, 0], kind="stable")
    arr = arr[order]
    codec, w, h, pix, tb, rate, declared = table
    return PacketTable(arr[:, 0].copy(), arr[:, 1].astype(bool), arr[:, 2].copy(), arr[:, 3].copy(), tb, codec, w, h,
                       pix, rate, declared)


_LOCK = threading.Lock()
_TABLES: OrderedDict[tuple, PacketTable] = OrderedDict()
_MAX_TABLES = 4096


def packet_table(src: Source) -> PacketTable:
    """The :class:`PacketTable` of ``src`` (built once per file version, kept in an LRU of 4,096).

    Raises:
        VideoError: not a demuxable mp4 video. StreamError: the file could not be fetched."""
    key = (src.url, src.size, src.etag)
    with _LOCK:
        t = _TABLES.get(key)
        if t is not None:
            _TABLES.move_to_end(key)
            return t
    t = _build(src)
    with _LOCK:
        _TABLES[key] = t
        while len(_TABLES) > _MAX_TABLES:
            _TABLES.popitem(last=False)
    return t


def gop_ranges(table: PacketTable, frames: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` byte ranges of the GOPs holding ``frames`` (presentation-order indices): for each
    GOP, from its first to its last packet in the file (every packet up to the next keyframe)."""
    frames = np.asarray(frames, dtype=np.int64)
    if frames.size == 0:
        return []
    keys = np.flatnonzero(table.keyframe)
    if keys.size == 0 or keys[0] != 0:
        keys = np.concatenate([[0], keys])
    g = np.unique(np.searchsorted(keys, frames, side="right") - 1)
    bounds = np.concatenate([keys, [table.pts.size]])
    out = []
    ends = table.pos + table.size
    for j in g.tolist():
        sl = slice(int(bounds[j]), int(bounds[j + 1]))
        out.append((int(table.pos[sl].min()), int(ends[sl].max())))
    return out
