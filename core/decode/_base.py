"""The abstract decode backend, its declared capabilities, and the frame sources it returns.

A backend turns (video file, frame indices or timestamps) into RGB frames. Subclasses implement two
methods, :meth:`DecodeBackend.index` (the file's packet index) and
:meth:`DecodeBackend.decode_frames_list` (frames for ascending unique indices, one forward pass); the
base builds :meth:`~DecodeBackend.decode` and :meth:`~DecodeBackend.decode_frames` on them once. What
a caller may rely on beyond that is declared in :class:`BackendCapabilities`, never found by probing
attributes.
"""

from __future__ import annotations

import abc
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import VideoError
from ._index import VideoIndex
from ._per_thread import DecoderPool


@dataclass(frozen=True, slots=True)
class BackendCapabilities:
    """What a decode backend declares about itself (read by the loader and the decode plan).

    Attributes:
        copy_only: frames are copied from storage (the decoded-frame cache), not decoded: there is no
            decode locality to gain by planning many batches together, so the loader plans one batch
            per worker and allocates batch memory in its own thread.
        direct_copy: :meth:`DecodeBackend.decode_frames_list` returns a :class:`FrameSource` that
            copies each frame straight from storage into its slot of the batch (no per-frame array).
        device: where frames are decoded: ``"cpu"``, or ``"cuda"`` / ``"cuda:N"`` (NVDEC); frames
            always come back in host memory.
    """

    copy_only: bool = False
    direct_copy: bool = False
    device: str = "cpu"


class FrameSource(abc.ABC):
    """Frames of one decode task, in the task's order: ``len(src)`` frames, ``src[k]`` a
    ``uint8 [H, W, 3]`` array and ``src.copy_into(k, dest)`` writing frame ``k`` into ``dest``."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    @abc.abstractmethod
    def __getitem__(self, k: int) -> np.ndarray: ...

    @abc.abstractmethod
    def copy_into(self, k: int, dest: np.ndarray) -> None:
        """Write frame ``k`` (``uint8 [H, W, 3]``) into ``dest`` (same shape, writable)."""

    @staticmethod
    def of(frames: "FrameSource | Sequence[np.ndarray]") -> "FrameSource":
        """``frames`` as a :class:`FrameSource` (a list of decoded arrays is wrapped, not copied)."""
        return frames if isinstance(frames, FrameSource) else ArrayFrames(frames)


class ArrayFrames(list, FrameSource):
    """Decoded frames held as a list of ``uint8 [H, W, 3]`` arrays (what decoding backends return)."""

    def copy_into(self, k: int, dest: np.ndarray) -> None:
        dest[...] = list.__getitem__(self, k)


class DecodeBackend(abc.ABC):
    """One decode backend: PyAV (:class:`prf.PyAVBackend`), torchcodec (:class:`prf.TorchCodecBackend`)
    or the decoded-frame cache (:class:`prf.decode.cache.CachedBackend`).

    Backends must be picklable (pickling drops open decoders; the copy opens its own lazily) and safe
    to use from several threads (each thread gets its own decoders) and after a fork (a child never
    uses or closes the parent's decoders).

    Lifecycle: decoders are opened on demand and kept per thread (LRU-bounded, see each backend);
    :meth:`close` closes every decoder this instance opened in every thread of this process,
    :meth:`close_thread` those of the calling thread (for a worker thread about to exit). A closed
    backend stays usable: decoders reopen on demand. :meth:`stats` reports opens for tests and benches.
    """

    #: the backend's name (``"pyav"``, ``"torchcodec"``, ``"cache(pyav)"``, ...)
    name: str = "backend"
    #: what the backend declares (an instance attribute where it depends on arguments, e.g. device)
    capabilities: BackendCapabilities = BackendCapabilities()

    @abc.abstractmethod
    def index(self, path: str | Path) -> VideoIndex:
        """The packet index of the file's first video stream (pts, keyframes; from demuxing).

        Raises:
            VideoError: the file is missing or cannot be demuxed.
        """

    @abc.abstractmethod
    def decode_frames_list(self, path: str | Path, frames: np.ndarray) -> FrameSource | list[np.ndarray]:
        """Frames ``frames`` (int64, ascending, unique indices in presentation order) of ``path``,
        decoded in one pass: a list of ``uint8 [H, W, 3]`` arrays, or a :class:`FrameSource` (always
        one where ``capabilities.direct_copy``).

        Raises:
            VideoError: a frame could not be decoded (corrupt or truncated file).
        """

    def decode_frames(self, path: str | Path, frame_indices: np.ndarray) -> np.ndarray:
        """Frames by index in presentation order (any order, repeats allowed): ``uint8 [N, H, W, 3]``.

        Raises:
            VideoError: an index is out of range, or a frame could not be decoded.
        """
        index = self.index(path)
        want = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        if want.size and (want.min() < 0 or want.max() >= index.num_frames):
            raise VideoError(f"{path}: frame index out of range 0..{index.num_frames - 1}")
        out = np.empty((want.size, index.height, index.width, 3), dtype=np.uint8)
        if want.size == 0:
            return out
        unique, inverse = np.unique(want, return_inverse=True)
        src = FrameSource.of(self.decode_frames_list(path, unique))
        for j, slot in enumerate(inverse.reshape(-1).tolist()):
            src.copy_into(slot, out[j])
        return out

    def decode(
        self, path: str | Path, timestamps: np.ndarray, tolerance_s: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Frames presented nearest ``timestamps`` (seconds of the file's timeline).

        Returns:
            ``(frames uint8 [N, H, W, 3] RGB, pts float64 [N] seconds)``.

        Raises:
            TimestampError: a timestamp has no frame within ``tolerance_s`` (``None``: no check).
            VideoError: the file is missing, corrupt or truncated.
        """
        idx = self.index(path)
        frames_idx = idx.lookup(np.asarray(timestamps, dtype=np.float64), tolerance_s)
        return self.decode_frames(path, frames_idx), idx.times[frames_idx]

    # ---- lifecycle (a backend that holds no decoders need not override these) ---------------------
    def close(self) -> None:
        """Close every decoder (and open cache file) this instance opened, in every thread of this
        process. Call it when no decode of this backend is in flight in another thread; it waits for
        one that is. Idempotent."""

    def close_thread(self) -> None:
        """Close the decoders the calling thread opened (call it from a worker thread about to exit)."""

    def stats(self) -> dict[str, Any]:
        """Counters for tests and benches (this process only): ``decoder_opens`` (decoders opened in
        total), ``decoders_open`` (open now), ``decoder_bytes`` (estimated memory of the open ones),
        ``opens_per_path`` (``{path: opens}``), ``threads`` (threads holding decoders)."""
        return {"decoder_opens": 0, "decoders_open": 0, "decoder_bytes": 0, "opens_per_path": {}, "threads": 0}

    def __enter__(self) -> "DecodeBackend":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.capabilities}>"


class _PooledBackend(DecodeBackend):
    """A backend whose decoders live in a :class:`~prf.decode._per_thread.DecoderPool` (per thread, LRU
    bounded by ``max_open`` decoders and ``max_open_bytes`` estimated bytes per thread).

    A backend dropped without :meth:`close` closes its decoders when it is freed (a ``weakref.finalize``
    on the backend, which holds no reference cycle, so CPython frees it as soon as the last reference
    goes): PyAV containers hold reference cycles and would otherwise keep their files open until the
    garbage collector runs."""

    def __init__(self, *, max_open: int, max_open_bytes: int):
        self.max_open = int(max_open)
        self.max_open_bytes = int(max_open_bytes)
        self._new_pool()

    def _new_pool(self) -> None:
        self._decoders = DecoderPool(self._close_decoder, self.max_open, self.max_open_bytes)
        self._finalizer = weakref.finalize(self, self._decoders.close_all)
        self._finalizer.atexit = False

    @staticmethod
    @abc.abstractmethod
    def _close_decoder(decoder: Any) -> None:
        """Release one decoder (called once per opened decoder, by the pool). A staticmethod: the pool
        holds it, and a bound method would make backend and pool a reference cycle."""

    # Backends travel to loader workers: pickling drops the open decoders (the copy opens its own).
    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_decoders", "_finalizer")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._new_pool()

    def close(self) -> None:
        self._decoders.close_all()

    def close_thread(self) -> None:
        self._decoders.close_thread()

    def stats(self) -> dict[str, Any]:
        return self._decoders.stats()
