"""Per-file packet index built by demuxing only (no decoding): every frame's pts and keyframe flag.

It maps a timestamp to the exact frame that a decoder will present for it (the frame whose pts is
nearest, as LeRobot's decoders pick it) and tells which GOP (keyframe) that frame's decode starts at.
Indexes are built once and cached twice: in an LRU of this process (bounded in count and bytes) and on
disk, one small file per video beside the frame cache (``~/.cache/prf/index``), so a new process or a
cold epoch over thousands of files reads them instead of demuxing again. Both are keyed by the file's
absolute path, size, mtime and ctime (and inode), so a changed file is re-indexed (:func:`get_index`).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import warnings
import zlib
import functools
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import TimestampError, VideoError
from ..stream import file_version, is_remote, packet_table


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

    @property
    def num_frames(self) -> int:
        return int(self.pts.shape[0])

    @functools.cached_property
    def times(self) -> np.ndarray:
        """``float64 [N]`` presentation time of each frame, seconds (computed once, read-only)."""
        t = self.pts.astype(np.float64) * float(self.time_base)
        t.flags.writeable = False
        return t

    @property
    def num_keyframes(self) -> int:
        return int(self.keyframe.sum())

    @property
    def nbytes(self) -> int:
        """Estimated memory of this index in bytes (its arrays, the ``times`` computed from them, plus
        1 KiB of object overhead)."""
        return int(2 * self.pts.nbytes + self.keyframe.nbytes + self.gop_start.nbytes + 1024)

    def frame_of(self, pts: int) -> int | None:
        """The index of the frame whose pts is ``pts`` (``time_base`` units), or ``None``."""
        i = int(np.searchsorted(self.pts, pts))
        return i if i < self.pts.size and int(self.pts[i]) == pts else None

    def same_as(self, other: "VideoIndex") -> bool:
        """Whether two indexes describe the same frames and stream (array contents compared)."""
        return (np.array_equal(self.pts, other.pts) and np.array_equal(self.keyframe, other.keyframe)
                and np.array_equal(self.gop_start, other.gop_start) and self.time_base == other.time_base
                and (self.codec, self.width, self.height, self.pix_fmt, self.average_fps)
                == (other.codec, other.width, other.height, other.pix_fmt, other.average_fps))

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
    if is_remote(path):
        return _remote_index(path)
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
    return _make_index(path, p, k, Fraction(tb), codec, width, height, pix_fmt, float(rate) if rate else 0.0)


def _remote_index(path: str) -> VideoIndex:
    """The index of a streamed video from its sample tables (:func:`prf.stream.packet_table`: the moov
    is fetched, the packet payload is not)."""
    t = packet_table(path)
    if t.pts.size == 0:
        raise VideoError(f"{path}: the video stream has no frames (empty or truncated file)")
    if t.declared_frames and t.pts.size < t.declared_frames:
        raise VideoError(f"{path}: the container declares {t.declared_frames} frames but only {t.pts.size} "
                         f"could be read; the file is truncated or corrupt")
    if np.any(np.diff(t.pts) == 0):
        raise VideoError(f"{path}: two frames share a pts; the file is malformed")
    return _make_index(path, t.pts, t.keyframe, t.time_base, t.codec, t.width, t.height, t.pix_fmt, t.average_fps)


def _make_index(path: str, pts: np.ndarray, keyframe: np.ndarray, time_base: Fraction, codec: str, width: int,
                height: int, pix_fmt: str, average_fps: float) -> VideoIndex:
    if not keyframe[0]:
        keyframe = keyframe.copy()
        keyframe[0] = True  # decoding from the file start is always possible
    positions = np.arange(pts.size)
    gop = np.maximum.accumulate(np.where(keyframe, positions, 0)).astype(np.int64)
    return VideoIndex(path=path, pts=pts, keyframe=keyframe, gop_start=gop, time_base=time_base, codec=codec,
                      width=int(width), height=int(height), pix_fmt=pix_fmt, average_fps=float(average_fps))


# ---- caches: an in-process LRU, and one small file per video on disk ------------------------------
#: in-process index cache bounds (defaults): a 10,000-file dataset of 1,000-frame videos needs about
#: 10,000 x 18 KiB = 176 MiB, so it stays whole in memory; beyond either bound the least recently used
#: indexes are dropped (and re-read from the on-disk store, not re-demuxed, when next needed).
DEFAULT_INDEX_CACHE_ENTRIES = 20_000
DEFAULT_INDEX_CACHE_BYTES = 256 * 2**20
#: version of the on-disk index file format (part of each file's key: another version is rebuilt)
INDEX_FORMAT_VERSION = 1
_MAGIC = b"PRFVIDX\n"
_UNSET: object = object()

_STATS_LOCK = threading.Lock()
_STATS = {"builds": 0, "memory_hits": 0, "disk_hits": 0, "disk_writes": 0, "disk_rejected": 0}


def _count(name: str) -> None:
    with _STATS_LOCK:
        _STATS[name] += 1


class _IndexLRU:
    """``key -> VideoIndex``, least recently used first, bounded in count and estimated bytes."""

    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries, self.max_bytes = int(max_entries), int(max_bytes)
        self._od: OrderedDict[tuple, VideoIndex] = OrderedDict()
        self.bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> VideoIndex | None:
        with self._lock:
            idx = self._od.get(key)
            if idx is not None:
                self._od.move_to_end(key)
            return idx

    def put(self, key: tuple, idx: VideoIndex) -> None:
        with self._lock:
            old = self._od.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._od[key] = idx
            self.bytes += idx.nbytes
            self._evict()

    def _evict(self) -> None:
        while len(self._od) > 1 and (len(self._od) > self.max_entries or self.bytes > self.max_bytes):
            _, old = self._od.popitem(last=False)
            self.bytes -= old.nbytes

    def configure(self, max_entries: int | None, max_bytes: int | None) -> None:
        with self._lock:
            if max_entries is not None:
                self.max_entries = int(max_entries)
            if max_bytes is not None:
                self.max_bytes = int(max_bytes)
            self._evict()

    def clear(self) -> None:
        with self._lock:
            self._od.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._od)


_MEMORY = _IndexLRU(DEFAULT_INDEX_CACHE_ENTRIES, DEFAULT_INDEX_CACHE_BYTES)
_DIR: object = _UNSET  # configure_index_cache(directory=...): a Path, None (off), or _UNSET (environment)
_WARNED: set[str] = set()


def default_index_dir() -> Path | None:
    """Where packet indexes persist: ``$PRF_INDEX_CACHE`` (a folder; ``0``/``off`` disables the store),
    else ``$PRF_CACHE/index``, else ``~/.cache/prf/index`` (beside the frame cache's ``frames``)."""
    env = os.environ.get("PRF_INDEX_CACHE")
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "false", "no") else Path(env).expanduser()
    return Path(os.environ.get("PRF_CACHE", Path.home() / ".cache" / "prf")).expanduser() / "index"


def configure_index_cache(directory: str | Path | None | object = _UNSET, *, max_entries: int | None = None,
                          max_bytes: int | None = None) -> None:
    """Set the packet-index caches of this process.

    Args:
        directory: the on-disk store's folder, ``None`` to disable it (indexes then live in memory
            only), or leave unset to follow the environment (:func:`default_index_dir`).
        max_entries: indexes kept in memory (default 20,000).
        max_bytes: estimated bytes of indexes kept in memory (default 256 MiB; ``VideoIndex.nbytes``:
            17 bytes per frame plus 1 KiB).
    """
    global _DIR
    if directory is not _UNSET:
        _DIR = None if directory is None else Path(directory).expanduser()
    _MEMORY.configure(max_entries, max_bytes)


def clear_index_cache() -> None:
    """Forget the in-memory indexes (the on-disk store is kept: see :func:`clean_index_cache`)."""
    _MEMORY.clear()


def index_cache_stats() -> dict[str, int]:
    """Counters of this process: ``builds`` (files demuxed), ``memory_hits``, ``disk_hits`` (indexes read
    from the store instead of demuxing), ``disk_writes``, ``disk_rejected`` (store files ignored as stale,
    corrupt or truncated), ``memory_entries``, ``memory_bytes``."""
    with _STATS_LOCK:
        out = dict(_STATS)
    out.update(memory_entries=len(_MEMORY), memory_bytes=_MEMORY.bytes)
    return out


def _index_dir(persist: bool | None) -> Path | None:
    if persist is False:
        return None
    d = default_index_dir() if _DIR is _UNSET else _DIR
    if d is None and persist:
        d = Path(os.environ.get("PRF_CACHE", Path.home() / ".cache" / "prf")).expanduser() / "index"
    return d  # type: ignore[return-value]


def _key(path: str, st: os.stat_result) -> tuple:
    # ctime and inode too: a file rewritten in place with its size and mtime restored (os.utime) still
    # gets a new ctime, and a file replaced by a rename a new inode.
    return (os.path.abspath(path), int(st.st_size), int(st.st_mtime_ns), int(st.st_ctime_ns), int(st.st_ino))


def _store_file(directory: Path, abspath: str) -> Path:
    return directory / f"{hashlib.sha1(abspath.encode()).hexdigest()[:32]}.idx"


def _store_header(key: tuple, idx: VideoIndex) -> bytes:
    return json.dumps({"format": INDEX_FORMAT_VERSION, "key": list(key), "frames": idx.num_frames,
                       "time_base": [idx.time_base.numerator, idx.time_base.denominator], "codec": idx.codec,
                       "width": idx.width, "height": idx.height, "pix_fmt": idx.pix_fmt,
                       "average_fps": idx.average_fps}).encode()


def _store_save(file: Path, key: tuple, idx: VideoIndex) -> None:
    """Write ``idx`` to ``file`` atomically (temporary file + rename); errors only warn (once)."""
    header = _store_header(key, idx)
    body = (_MAGIC + struct.pack("<I", len(header)) + header + idx.pts.astype("<i8").tobytes()
            + idx.keyframe.astype(np.uint8).tobytes())
    body += struct.pack("<I", zlib.crc32(body))
    tmp = file.with_name(f".{file.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, file)
        _count("disk_writes")
    except OSError as e:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if str(file.parent) not in _WARNED:
            _WARNED.add(str(file.parent))
            warnings.warn(f"prf: cannot store packet indexes in {file.parent} ({e}); they are rebuilt in every "
                          f"process (set PRF_INDEX_CACHE to a writable folder, or to 0 to silence this)",
                          RuntimeWarning, stacklevel=3)


def _store_read_header(data: bytes) -> tuple[dict, int] | None:
    if len(data) < len(_MAGIC) + 8 or data[: len(_MAGIC)] != _MAGIC:
        return None
    (hlen,) = struct.unpack_from("<I", data, len(_MAGIC))
    start = len(_MAGIC) + 4
    if start + hlen > len(data):
        return None
    header = json.loads(data[start : start + hlen])
    return (header, start + hlen) if isinstance(header, dict) else None


def _store_load(file: Path, key: tuple, path: str) -> VideoIndex | None:
    """The index stored in ``file`` if it is intact and its key is ``key``; ``None`` otherwise (missing,
    stale, another format version, truncated or corrupt: never wrong data)."""
    try:
        data = file.read_bytes()
    except OSError:
        return None
    try:
        got = _store_read_header(data)
        if got is None or len(data) < 4 or struct.unpack_from("<I", data, len(data) - 4)[0] != zlib.crc32(data[:-4]):
            raise ValueError("bad magic, header or checksum")
        header, off = got
        n = int(header["frames"])
        if header["format"] != INDEX_FORMAT_VERSION or tuple(header["key"]) != key:
            raise ValueError("another file version or format")
        if n <= 0 or off + 9 * n + 4 != len(data):
            raise ValueError("wrong length")
        pts = np.frombuffer(data, dtype="<i8", count=n, offset=off).astype(np.int64, copy=False)
        key_flags = np.frombuffer(data, dtype=np.uint8, count=n, offset=off + 8 * n).astype(bool)
        num, den = header["time_base"]
        idx = _make_index(path, pts, key_flags, Fraction(int(num), int(den)), str(header["codec"]),
                          int(header["width"]), int(header["height"]), str(header["pix_fmt"]),
                          float(header["average_fps"]))
    except (ValueError, KeyError, TypeError, struct.error, ZeroDivisionError):
        _count("disk_rejected")
        return None
    _count("disk_hits")
    return idx


def get_index(path: str | Path, *, persist: bool | None = None) -> VideoIndex:
    """The :class:`VideoIndex` of ``path``, demuxed once and then cached.

    Lookup order: the in-process LRU (bounded: :data:`DEFAULT_INDEX_CACHE_ENTRIES` indexes,
    :data:`DEFAULT_INDEX_CACHE_BYTES`), then the on-disk store (one small file per video in
    :func:`default_index_dir`, written atomically), then :func:`build_index` (which demuxes the file).
    Both caches are keyed by the file's absolute path, size, mtime_ns, ctime_ns and inode (plus
    :data:`INDEX_FORMAT_VERSION` on disk): a changed file is re-indexed, and a stored index that is
    stale, truncated or corrupt is ignored and rebuilt.

    Args:
        persist: ``False``: do not read or write the on-disk store; ``True``: use it even where the
            environment disabled it; ``None``: as configured (:func:`configure_index_cache`,
            ``$PRF_INDEX_CACHE``).

    Raises:
        VideoError: the file is missing or cannot be demuxed.
    """
    path = str(path)
    remote = file_version(path)  # a streamed file: keyed by its URL, size and ETag
    if remote is not None:
        key = ("stream",) + remote
    else:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise VideoError(f"{path}: video file is missing") from None
        key = _key(path, st)
    idx = _MEMORY.get(key)
    if idx is not None:
        _count("memory_hits")
        return idx
    directory = _index_dir(persist)
    file = _store_file(directory, key[0] if remote is None else key[1]) if directory is not None else None
    if file is not None:
        idx = _store_load(file, key, path)
    if idx is None:
        idx = build_index(path)
        _count("builds")
        if file is not None:
            try:  # not rewritten while it was demuxed (a streamed file's change raises StreamError)
                unchanged = remote is not None or _key(path, os.stat(path)) == key
            except OSError:
                unchanged = False
            if unchanged:
                _store_save(file, key, idx)
    _MEMORY.put(key, idx)
    return idx


def clean_index_cache(directory: str | Path | None = None) -> list[Path]:
    """Remove stored indexes whose video is gone or changed, unreadable ones, and temporary files left
    by killed writers, from ``directory`` (default: :func:`default_index_dir`). Returns the removed files."""
    d = Path(directory) if directory is not None else _index_dir(None)
    removed: list[Path] = []
    if d is None or not d.is_dir():
        return removed
    for f in d.iterdir():
        if f.name.startswith(".") and ".tmp-" in f.name:
            pid = f.name.rsplit(".tmp-", 1)[1].split("-")[0]
            if pid.isdigit() and _pid_alive(int(pid)):
                continue
            stale = True
        elif f.suffix != ".idx":
            continue
        else:
            try:
                with open(f, "rb") as fh:
                    got = _store_read_header(fh.read(1 << 16))
                video = got[0]["key"][0] if got else None
                stale = (got is None or got[0].get("format") != INDEX_FORMAT_VERSION
                         or tuple(got[0]["key"]) != _key(video, os.stat(video)))
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                stale = True
        if stale:
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
