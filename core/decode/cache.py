"""Decoded-frame cache: every frame of a dataset's videos decoded once into memory-mapped uint8 files.

Later epochs read frames from the page cache (or from RAM) instead of decoding them. One entry per video
file and resize: ``<name>.npy`` (``uint8 [num_frames, H, W, 3]``, frames in presentation order,
optionally resized) and ``<name>.json``, its completed-entry manifest. ``<name>`` is a hash of the
video's absolute path, size, modification time, the resize and :data:`FORMAT_VERSION`, so a changed
video gets a new entry (``prf cache clean`` removes entries whose video is gone or changed).

Entries are verifiable: the ``.npy`` is written to a temporary file and renamed, then the manifest is
written last (also temporary file + rename) with the frame count, the frame shape, the ``.npy``'s byte
size and a content fingerprint of the video (:func:`video_fingerprint`: a hash of its size and first and
last 64 KiB). An entry is read only when its manifest exists, matches the ``.npy`` and matches the
video's current fingerprint: an entry left incomplete by a killed ``prf cache build`` is treated as
missing (decoded from the video, or rebuilt), and a video changed in place with its size and mtime
restored is detected and re-cached, never served stale.

Bounds (per :class:`FrameCache`, per process): entries read into RAM are an LRU of at most
``in_memory_bytes`` (default a quarter of physical memory, or ``$PRF_CACHE_IN_MEMORY_MB``); an entry
evicted from RAM is read with ``pread`` from then on (never loaded twice, so a dataset larger than the
budget does not thrash). At most ``max_open_files`` (default 256) entry files are kept open (LRU). The
record of verified entries is bounded to 100,000.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from tqdm.auto import tqdm

from ..errors import PrfError, StreamError, VideoError
from ..stream import is_remote
from ._base import ArrayFrames, BackendCapabilities, DecodeBackend, FrameSource
from ._index import VideoIndex, _pid_alive, get_index

#: entry format (part of each entry's name and manifest); 2: completed-entry manifests with fingerprints
FORMAT_VERSION = 2
#: entry files kept open per FrameCache (least recently used closed first)
DEFAULT_MAX_OPEN_FILES = 256
_MAX_VERIFIED = 100_000
_FINGERPRINT_SPAN = 64 * 2**10

_CACHES: "weakref.WeakSet[FrameCache]" = weakref.WeakSet()


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


def _refuse_streamed(path: str | Path) -> None:
    if is_remote(path):
        raise StreamError(f"{path}: the decoded-frame cache (cache_dir=) is not available for a streamed "
                          f"dataset (its videos are read by byte range); open without cache_dir, or download "
                          f"the dataset (open_dataset(url) without streaming=True) to cache its frames")


def _entry_name(path: str, size: tuple[int, int] | None, st: os.stat_result | None = None) -> str:
    if st is None:
        _refuse_streamed(path)
    st = os.stat(path) if st is None else st
    key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{size}|v{FORMAT_VERSION}"
    return hashlib.sha1(key.encode()).hexdigest()[:24]


def video_fingerprint(path: str | Path) -> str:
    """A cheap content fingerprint of a video file: BLAKE2b of its size and its first and last 64 KiB
    (the whole file when smaller). MP4's ``moov`` box (sample sizes and offsets of every frame) sits at
    one end of the file, so re-encoded content almost always changes it; an edit of frame bytes alone,
    in the middle of a large file, with size and mtime restored, is not detected.

    Raises:
        OSError: the file cannot be read.
    """
    _refuse_streamed(path)
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        h.update(str(size).encode())
        h.update(f.read(_FINGERPRINT_SPAN))
        if size > 2 * _FINGERPRINT_SPAN:
            f.seek(size - _FINGERPRINT_SPAN)
        h.update(f.read(_FINGERPRINT_SPAN))
    return h.hexdigest()


def _write_atomic(dst: Path, data: bytes) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_manifest(dst: Path, manifest: dict) -> None:
    """The last step of an entry's build: its manifest, written atomically."""
    _write_atomic(dst, json.dumps(manifest).encode())


class _EntryFile:
    """An open entry file (read with ``pread``, no position: shared by threads). Its descriptor is closed
    when the last :class:`CachedFrames` reading from it is released (reference counting), never while
    one still reads: an evicted descriptor closed early could be reused by another file."""

    __slots__ = ("fd", "offset", "shape")

    def __init__(self, path: Path, frames: int, shape: tuple[int, int, int]):
        self.fd = -1
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            got, _, dtype = read_header(f)
            self.offset = f.tell()
        if tuple(got) != (frames, *shape) or dtype != np.uint8:
            raise ValueError(f"{path}: entry holds {dtype} {tuple(got)}, its manifest says uint8 {(frames, *shape)}")
        self.shape = shape
        self.fd = os.open(path, os.O_RDONLY)

    def __del__(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FrameCache:
    """A folder of decoded-frame entries (see the module docstring for the layout and bounds).

    Args:
        cache_dir: where entries live (created on demand; default :func:`default_cache_dir`).
        size: ``(height, width)`` to store frames resized to (area interpolation), or ``None`` to keep
            the videos' resolution (frames then equal the decoded ones bit for bit).
        in_memory_bytes: entries read whole into RAM, at most this many bytes (LRU).
        max_open_files: entry files kept open (LRU).
    """

    def __init__(self, cache_dir: str | Path | None = None, size: tuple[int, int] | None = None,
                 in_memory_bytes: int | None = None, max_open_files: int = DEFAULT_MAX_OPEN_FILES):
        self.dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.in_memory_bytes = _default_in_memory_bytes() if in_memory_bytes is None else int(in_memory_bytes)
        self.max_open_files = max(1, int(max_open_files))
        self._reset()
        _CACHES.add(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._ram: OrderedDict[str, np.ndarray] = OrderedDict()  # entry name -> frames, LRU
        self._ram_bytes = 0
        self._was_in_ram: set[str] = set()  # never loaded twice (no thrash when the budget is too small)
        self._files: OrderedDict[str, _EntryFile] = OrderedDict()  # entry name -> open file, LRU
        self._verified: OrderedDict[tuple, dict] = OrderedDict()  # (name, ctime_ns, ino) -> manifest

    def __getstate__(self):  # picklable for process workers: open files, loaded entries and the lock stay behind
        return {"dir": self.dir, "size": self.size, "in_memory_bytes": self.in_memory_bytes,
                "max_open_files": self.max_open_files}

    def __setstate__(self, state):
        self.__init__(state["dir"], size=state["size"], in_memory_bytes=state.get("in_memory_bytes"),
                      max_open_files=state.get("max_open_files", DEFAULT_MAX_OPEN_FILES))

    # ---- entries ----------------------------------------------------------------------------------
    def entry(self, video: str | Path) -> Path:
        """The ``.npy`` of ``video``'s entry (which may not exist or be incomplete: see :meth:`has`)."""
        return self.dir / f"{_entry_name(str(video), self.size)}.npy"

    def manifest_path(self, video: str | Path) -> Path:
        return self.entry(video).with_suffix(".json")

    def verify(self, video: str | Path) -> dict | None:
        """The completed-entry manifest of ``video`` when its entry is complete and matches the video's
        current content fingerprint, else ``None`` (missing, incomplete, or the video changed). The
        result is remembered per (entry, video ctime, inode): the fingerprint is read once per process."""
        got = self._verify(str(video))
        return None if got is None else got[1]

    def _verify(self, video: str) -> tuple[str, dict] | None:
        try:
            st = os.stat(video)
        except OSError:
            return None
        name = _entry_name(video, self.size, st)
        vkey = (name, st.st_ctime_ns, st.st_ino)
        with self._lock:
            got = self._verified.get(vkey)
        if got is not None:
            return name, got
        npy = self.dir / f"{name}.npy"
        try:
            manifest = json.loads((self.dir / f"{name}.json").read_text())
            ok = (isinstance(manifest, dict) and manifest.get("format") == FORMAT_VERSION
                  and manifest.get("complete") is True and manifest.get("video") == os.path.abspath(video)
                  and manifest.get("npy_bytes") == os.path.getsize(npy)
                  and manifest.get("fingerprint") == video_fingerprint(video))
        except (OSError, ValueError):
            ok = False
        if not ok:
            return None
        with self._lock:
            self._verified[vkey] = manifest
            while len(self._verified) > _MAX_VERIFIED:
                self._verified.popitem(last=False)
        return name, manifest

    def has(self, video: str | Path) -> bool:
        """Whether ``video`` has a complete entry that matches it (see :meth:`verify`)."""
        return self.verify(video) is not None

    def frames(self, video: str | Path) -> np.ndarray:
        """The entry of ``video`` as a read-only memory map ``uint8 [N, H, W, 3]``.

        Raises:
            VideoError: ``video`` has no complete entry matching it.
        """
        if not self.has(video):
            raise VideoError(f"{video}: no complete frame-cache entry in {self.dir} (build it first)")
        return np.load(self.entry(video), mmap_mode="r")

    def read(self, video: str | Path, frames: np.ndarray) -> "CachedFrames | None":
        """Frames ``frames`` of ``video``'s entry, read on demand (see :class:`CachedFrames`), or ``None``
        when ``video`` has no complete entry matching it.

        Raises:
            VideoError: the entry file is unreadable or does not match its manifest.
        """
        got = self._verify(str(video))
        if got is None:
            return None
        name, manifest = got
        shape = (int(manifest["height"]), int(manifest["width"]), 3)
        want = np.asarray(frames, dtype=np.int64)
        key = f"{name}:{manifest['fingerprint']}"  # a rebuilt entry of the same name is another one
        with self._lock:
            loaded = self._ram.get(key)
            if loaded is not None:
                self._ram.move_to_end(key)
                return CachedFrames(name, want, loaded=loaded)
            f = self._files.get(key)
            if f is not None:
                self._files.move_to_end(key)
                return CachedFrames(name, want, file=f)
        return self._load(name, key, int(manifest["frames"]), shape, want)

    def _load(self, name: str, key: str, n: int, shape: tuple[int, int, int], want: np.ndarray) -> "CachedFrames":
        path = self.dir / f"{name}.npy"
        try:
            f = _EntryFile(path, n, shape)
        except (OSError, ValueError) as e:
            raise VideoError(f"{path}: frame-cache entry unreadable ({e}); run `prf cache clean` and rebuild") from None
        nbytes = n * int(np.prod(shape))
        with self._lock:
            admit = key not in self._was_in_ram and nbytes <= self.in_memory_bytes and key not in self._ram
        if admit:
            loaded = np.empty((n, *shape), dtype=np.uint8)
            got = os.preadv(f.fd, [memoryview(loaded).cast("B")], f.offset)
            del f
            if got != nbytes:
                raise VideoError(f"{path}: frame-cache entry is truncated ({got} of {nbytes} bytes)")
            loaded.flags.writeable = False
            with self._lock:
                if key in self._ram:  # another thread loaded it meanwhile
                    return CachedFrames(name, want, loaded=self._ram[key])
                self._ram[key] = loaded
                self._was_in_ram.add(key)
                self._ram_bytes += nbytes
                while self._ram_bytes > self.in_memory_bytes and len(self._ram) > 1:
                    _, old = self._ram.popitem(last=False)
                    self._ram_bytes -= old.nbytes
            return CachedFrames(name, want, loaded=loaded)
        with self._lock:
            f = self._files.setdefault(key, f)
            while len(self._files) > self.max_open_files:
                self._files.popitem(last=False)  # closed when no CachedFrames reads from it any more
        return CachedFrames(name, want, file=f)

    def _forget(self, name: str) -> None:
        """Drop what this process holds of entry ``name`` (it is being rebuilt)."""
        with self._lock:
            for key in [k for k in self._ram if k.startswith(name + ":")]:
                self._ram_bytes -= self._ram.pop(key).nbytes
            for key in [k for k in self._files if k.startswith(name + ":")]:
                del self._files[key]

    def close(self) -> None:
        """Release the entries read into RAM and the open entry files (a file still read by a batch in
        flight is closed when that batch is done)."""
        with self._lock:
            self._ram.clear()
            self._ram_bytes = 0
            self._was_in_ram.clear()
            self._files.clear()

    def stats(self) -> dict[str, int]:
        """``cache_ram_entries``, ``cache_ram_bytes`` (entries in RAM), ``cache_open_files``."""
        with self._lock:
            return {"cache_ram_entries": len(self._ram), "cache_ram_bytes": self._ram_bytes,
                    "cache_open_files": len(self._files)}

    # ---- building and cleaning --------------------------------------------------------------------
    def build(self, videos: Iterable[str | Path], *, progress: bool = True, thread_count: int = 0) -> list[Path]:
        """Decode every frame of each video without a complete, matching entry into its entry.

        Returns:
            the ``.npy`` paths written.

        Raises:
            VideoError: a video cannot be decoded (no entry is written for it).
        """
        import av
        from .pyav import rgb_reformatter

        reformatter = rgb_reformatter()  # one swscale context for every video (3-12 ms to set up each)

        todo = [v for v in dict.fromkeys(str(v) for v in videos) if not self.has(v)]
        if not todo:
            return []
        self.dir.mkdir(parents=True, exist_ok=True)
        total = sum(get_index(v).num_frames for v in todo)
        written = []
        with tqdm(total=total, unit="frame", desc="caching decoded frames", disable=not progress) as bar:
            for video in todo:
                index = get_index(video)
                fingerprint = video_fingerprint(video)
                h, w = self.size or (index.height, index.width)
                dst = self.entry(video)
                manifest_path = dst.with_suffix(".json")
                tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}-{threading.get_ident()}")
                self._forget(dst.stem)
                try:
                    manifest_path.unlink(missing_ok=True)  # an older entry of this name is no longer complete
                    mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(index.num_frames, h, w, 3))
                    n = 0
                    with av.open(video) as container:
                        stream = container.streams.video[0]
                        stream.codec_context.thread_count = thread_count
                        for frame in container.decode(stream):
                            i = index.frame_of(frame.pts) if frame.pts is not None else None
                            i = n if i is None else i
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
                    _write_manifest(manifest_path, {
                        "video": os.path.abspath(video), "frames": index.num_frames, "height": h, "width": w,
                        "resized": self.size is not None, "format": FORMAT_VERSION, "fingerprint": fingerprint,
                        "npy_bytes": os.path.getsize(dst), "complete": True})
                    written.append(dst)
                except BaseException as e:
                    tmp.unlink(missing_ok=True)
                    if isinstance(e, (PrfError, KeyboardInterrupt)) or not isinstance(e, Exception):
                        raise
                    raise VideoError(f"{video}: caching failed ({type(e).__name__}: {e})") from e
        return written

    def clean(self) -> list[Path]:
        """Remove entries whose video is gone or has changed since it was cached, entries without a
        manifest (left by a killed build) and temporary files of builds no longer running.

        Returns:
            the removed ``.npy`` (and temporary) paths.
        """
        removed = []
        if not self.dir.is_dir():
            return removed
        for meta_path in self.dir.glob("*.json"):
            try:
                meta = json.loads(meta_path.read_text())
                video = meta["video"]
                stale = not os.path.isfile(video)
                if not stale:
                    sizes = ([None] if not meta.get("resized") else []) + [(meta["height"], meta["width"])]
                    stale = not any(meta_path.stem == _entry_name(video, s) for s in sizes) or \
                        meta.get("fingerprint") != video_fingerprint(video)
            except (OSError, ValueError, KeyError, TypeError):
                stale = True
            if stale:
                meta_path.with_suffix(".npy").unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
                removed.append(meta_path.with_suffix(".npy"))
        for npy in self.dir.glob("*.npy"):
            if not npy.with_suffix(".json").exists():  # no manifest: never completed
                npy.unlink(missing_ok=True)
                removed.append(npy)
        for tmp in self.dir.glob(".*.tmp-*"):
            pid = tmp.name.rsplit(".tmp-", 1)[1].split("-")[0]
            if not (pid.isdigit() and _pid_alive(int(pid))):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
        return removed


class CachedFrames(FrameSource):
    """Frames ``frames`` of one cache entry, copied straight into their destination (:meth:`copy_into`,
    used by batch assembly) or into a new array (``src[k]``): from the entry loaded in RAM when it fit the
    cache's in-memory budget, else read from the page cache with ``pread`` (no first-touch page faults,
    no per-frame buffer)."""

    def __init__(self, entry: str, frames: np.ndarray, *, loaded: np.ndarray | None = None,
                 file: _EntryFile | None = None):
        self.entry, self.frames, self.loaded, self._file = entry, frames, loaded, file
        self.shape = tuple(loaded.shape[1:]) if loaded is not None else file.shape  # type: ignore[union-attr]
        self.size = int(np.prod(self.shape))

    def __len__(self) -> int:
        return int(self.frames.size)

    def copy_into(self, k: int, dest: np.ndarray) -> None:
        i = int(self.frames[k])
        if self.loaded is not None:
            dest[...] = self.loaded[i]
            return
        f = self._file
        if os.preadv(f.fd, [memoryview(dest).cast("B")], f.offset + i * self.size) != self.size:
            raise VideoError(f"frame-cache entry {self.entry}: truncated (frame {i})")

    def __getitem__(self, k: int) -> np.ndarray:
        arr = np.empty(self.shape, dtype=np.uint8)
        self.copy_into(k, arr)
        return arr

    def __iter__(self):
        return (self[k] for k in range(len(self)))


class CachedBackend(DecodeBackend):
    """A decode backend that serves frames from a :class:`FrameCache` (copied, not decoded) and falls back
    to ``inner`` for videos without a complete, matching entry."""

    capabilities = BackendCapabilities(copy_only=True, direct_copy=True, device="cpu")

    def __init__(self, inner: DecodeBackend, cache: FrameCache):
        self.inner = inner
        self.cache = cache
        self.name = f"cache({inner.name})"

    def index(self, path: str | Path) -> VideoIndex:
        idx = self.inner.index(path)
        if self.cache.size is not None and self.cache.has(path):
            h, w = self.cache.size
            idx = dataclasses.replace(idx, height=h, width=w)
        return idx

    def decode_frames_list(self, path: str | Path, frames: np.ndarray) -> FrameSource:
        got = self.cache.read(path, frames)
        if got is None:
            return ArrayFrames(self.inner.decode_frames_list(path, frames))
        return got

    def close(self) -> None:
        """Release the cache's RAM entries and open files, and close the inner backend's decoders."""
        self.cache.close()
        self.inner.close()

    def close_thread(self) -> None:
        self.inner.close_thread()

    def stats(self) -> dict[str, Any]:
        return {**self.inner.stats(), **self.cache.stats()}


def dataset_videos(dataset: Any) -> list[str]:
    """Every video file the dataset's selected episodes and cameras read."""
    return sorted({p for files in dataset._video_files.values() for p in files})


def _after_fork_in_child() -> None:  # a lock held by a parent thread at fork would never be released
    for c in list(_CACHES):
        c._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
