"""Decoded-frame cache: every frame of a dataset's videos decoded once into memory-mapped uint8 files.

Later epochs read frames from the page cache instead of decoding them. One ``.npy`` file per video file
(``uint8 [num_frames, H, W, 3]``, frames in presentation order, optionally resized) is named by a hash
of the video's absolute path, size, modification time and the resize, so a changed video gets a new
entry (the old one is ignored; ``prf cache clean`` removes entries whose video is gone or changed).
Entries are written to a temporary file and renamed: an interrupted build leaves no partial entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm.auto import tqdm

from .decode import VideoIndex, get_index
from .errors import PrfError, VideoError

FORMAT_VERSION = 1


def _default_in_memory_bytes() -> int:
    """How much of the cache a process loads into RAM: ``$PRF_CACHE_IN_MEMORY_MB``, else a quarter of
    physical memory. Entries in RAM do not depend on the OS keeping the file's pages cached (on these
    VMs the kernel's proactive reclaim evicted them between epochs: 1854 vs 6080 samples/s run to run)."""
    if "PRF_CACHE_IN_MEMORY_MB" in os.environ:
        return int(float(os.environ["PRF_CACHE_IN_MEMORY_MB"]) * 2**20)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 2 * 2**30


def default_cache_dir() -> Path:
    """``$PRF_CACHE/frames``, else ``~/.cache/prf/frames``."""
    return Path(os.environ.get("PRF_CACHE", Path.home() / ".cache" / "prf")) / "frames"


def _entry_name(path: str, size: tuple[int, int] | None) -> str:
    st = os.stat(path)
    key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{size}|v{FORMAT_VERSION}"
    return hashlib.sha1(key.encode()).hexdigest()[:24]


class FrameCache:
    """A folder of decoded-frame entries.

    Args:
        cache_dir: where entries live (created on demand).
        size: ``(height, width)`` to store frames resized to (area interpolation), or ``None`` to keep
            the videos' resolution (frames then equal the decoded ones bit for bit).
    """

    def __init__(self, cache_dir: str | Path | None = None, size: tuple[int, int] | None = None,
                 in_memory_bytes: int | None = None):
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.in_memory_bytes = _default_in_memory_bytes() if in_memory_bytes is None else int(in_memory_bytes)
        self._in_memory_used = 0
        self._maps: dict[str, tuple] = {}  # video -> (fd, offset, shape, pid, in-memory entry or None)
        self._lock = threading.Lock()

    def __getstate__(self):  # picklable for process workers: open fds, loaded entries and the lock stay behind
        return {"dir": self.dir, "size": self.size, "in_memory_bytes": self.in_memory_bytes}

    def __setstate__(self, state):
        self.__init__(state["dir"], size=state["size"], in_memory_bytes=state.get("in_memory_bytes"))

    def entry(self, video: str | Path) -> Path:
        return self.dir / f"{_entry_name(str(video), self.size)}.npy"

    def has(self, video: str | Path) -> bool:
        return self.entry(video).is_file()

    def frames(self, video: str | Path) -> np.ndarray:
        """The entry of ``video`` as a read-only memory map ``uint8 [N, H, W, 3]``."""
        return np.load(self.entry(video), mmap_mode="r")

    def read(self, video: str | Path, frames: np.ndarray) -> "CachedFrames":
        """Frames ``frames`` of ``video``'s entry, read on demand with ``pread`` (see :class:`CachedFrames`)."""
        fd, offset, shape, loaded = self._open(str(video))
        return CachedFrames(str(self.entry(video)), fd, offset, shape, np.asarray(frames, dtype=np.int64), loaded)

    def _open(self, video: str) -> tuple[int, int, tuple[int, ...], np.ndarray | None]:
        """A read-only fd (shared by threads; pread keeps no position), the data offset, the frame shape,
        and the whole entry in memory when it fits the in-memory budget (else ``None``)."""
        got = self._maps.get(video)
        if got is None or got[3] != os.getpid():
            with self._lock:
                got = self._maps.get(video)
                if got is None or got[3] != os.getpid():
                    path = self.entry(video)
                    fd = os.open(path, os.O_RDONLY)
                    with open(path, "rb") as f:
                        major, _ = np.lib.format.read_magic(f)
                        read_header = (np.lib.format.read_array_header_1_0 if major == 1
                                       else np.lib.format.read_array_header_2_0)
                        shape, _, _ = read_header(f)
                        offset = f.tell()
                        nbytes = int(np.prod(shape))
                        loaded = None
                        if self._in_memory_used + nbytes <= self.in_memory_bytes:
                            loaded = np.fromfile(f, dtype=np.uint8, count=nbytes).reshape(shape)
                            self._in_memory_used += nbytes
                    got = (fd, offset, tuple(shape[1:]), os.getpid(), loaded)
                    self._maps[video] = got
        return got[0], got[1], got[2], got[4]

    def build(self, videos: Iterable[str | Path], *, progress: bool = True, thread_count: int = 0) -> list[Path]:
        """Decode every frame of each video not cached yet into its entry.

        Raises:
            VideoError: a video cannot be decoded (no entry is written for it).
        """
        import av
        from av.video.reformatter import VideoReformatter

        todo = [str(v) for v in dict.fromkeys(str(v) for v in videos) if not self.has(v)]
        if not todo:
            return []
        self.dir.mkdir(parents=True, exist_ok=True)
        total = sum(get_index(v).num_frames for v in todo)
        written = []
        with tqdm(total=total, unit="frame", desc="caching decoded frames", disable=not progress) as bar:
            for video in todo:
                index = get_index(video)
                h, w = self.size or (index.height, index.width)
                dst = self.entry(video)
                tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}-{threading.get_ident()}")
                try:
                    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(index.num_frames, h, w, 3))
                    reformatter = VideoReformatter()
                    n = 0
                    with av.open(video) as container:
                        stream = container.streams.video[0]
                        stream.codec_context.thread_count = thread_count
                        for frame in container.decode(stream):
                            i = index.frame_of_pts.get(frame.pts, n) if frame.pts is not None else n
                            if self.size is None:
                                mm[i] = reformatter.reformat(frame, format="rgb24").to_ndarray()
                            else:
                                mm[i] = reformatter.reformat(frame, format="rgb24", width=w, height=h,
                                                             interpolation="AREA").to_ndarray()
                            n += 1
                            bar.update(1)
                    if n != index.num_frames:
                        raise VideoError(f"{video}: decoded {n} frames, the packet index has {index.num_frames}")
                    mm.flush()
                    del mm
                    os.replace(tmp, dst)
                    meta = {"video": os.path.abspath(video), "frames": index.num_frames, "height": h, "width": w,
                            "resized": self.size is not None, "format": FORMAT_VERSION}
                    dst.with_suffix(".json").write_text(json.dumps(meta))
                    written.append(dst)
                except BaseException as e:
                    tmp.unlink(missing_ok=True)
                    if isinstance(e, (PrfError, KeyboardInterrupt)) or not isinstance(e, Exception):
                        raise
                    raise VideoError(f"{video}: caching failed ({type(e).__name__}: {e})") from e
        return written

    def clean(self) -> list[Path]:
        """Remove entries whose video is gone or has changed since it was cached."""
        removed = []
        for meta_path in self.dir.glob("*.json"):
            try:
                meta = json.loads(meta_path.read_text())
                video = meta["video"]
                stale = not os.path.isfile(video)
                if not stale:
                    for size in ([None] if not meta.get("resized") else []) + [(meta["height"], meta["width"])]:
                        if meta_path.stem == _entry_name(video, size):
                            break
                    else:
                        stale = True
            except (OSError, ValueError, KeyError):
                stale = True
            if stale:
                meta_path.with_suffix(".npy").unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
                removed.append(meta_path.with_suffix(".npy"))
        return removed


class CachedFrames:
    """Frames of one cache entry, copied straight into their destination (:meth:`copy_into`, used by
    batch assembly) or into a new array (``frames[k]``): from the entry loaded in memory when it fit the
    cache's in-memory budget, else read from the page cache with ``pread`` (no first-touch page faults,
    no per-frame buffer)."""

    def __init__(self, entry: str, fd: int, offset: int, shape: tuple[int, ...], frames: np.ndarray,
                 loaded: np.ndarray | None = None):
        self.entry, self.fd, self.offset, self.shape, self.frames = entry, fd, offset, shape, frames
        self.loaded = loaded
        self.size = int(np.prod(shape))

    def __len__(self) -> int:
        return int(self.frames.size)

    def copy_into(self, k: int, dest: np.ndarray) -> None:
        i = int(self.frames[k])
        if self.loaded is not None:
            dest[...] = self.loaded[i]
            return
        if os.preadv(self.fd, [memoryview(dest).cast("B")], self.offset + i * self.size) != self.size:
            raise VideoError(f"{self.entry}: cache entry is truncated (frame {i})")

    def __getitem__(self, k: int) -> np.ndarray:
        arr = np.empty(self.shape, dtype=np.uint8)
        self.copy_into(k, arr)
        return arr

    def __iter__(self):
        return (self[k] for k in range(len(self)))


class CachedBackend:
    """A decode backend that serves frames from a :class:`FrameCache` and falls back to ``inner`` for
    videos that are not cached."""

    #: loader hint: batches per worker planned together (no decode locality to gain; see Loader._windows)
    batches_per_window = 1

    def __init__(self, inner: Any, cache: FrameCache):
        self.inner = inner
        self.cache = cache
        self.name = f"cache({inner.name})"

    def index(self, path: str | Path) -> VideoIndex:
        idx = self.inner.index(path)
        if self.cache.size is not None and self.cache.has(path):
            h, w = self.cache.size
            idx = dataclasses.replace(idx, height=h, width=w)
        return idx

    def decode(self, path: str | Path, timestamps: np.ndarray, tolerance_s: float | None = None):
        idx = self.index(path)
        frames = idx.lookup(np.asarray(timestamps, dtype=np.float64), tolerance_s)
        return self.decode_frames(path, frames), idx.times[frames]

    def decode_frames(self, path: str | Path, frame_indices: np.ndarray) -> np.ndarray:
        if not self.cache.has(path):
            return self.inner.decode_frames(path, frame_indices)
        return np.stack(list(self.cache.read(path, np.asarray(frame_indices, dtype=np.int64))))

    def decode_frames_list(self, path: str | Path, frames: np.ndarray) -> "CachedFrames | list[np.ndarray]":
        if not self.cache.has(path):
            return self.inner.decode_frames_list(path, frames)
        return self.cache.read(path, frames)


def dataset_videos(dataset: Any) -> list[str]:
    """Every video file the dataset's selected episodes and cameras read."""
    return sorted({p for files in dataset._video_files.values() for p in files})
