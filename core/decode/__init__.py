"""Decode backends behind one abstract base, the packet index they share, and the frame cache.

A backend turns (video file, timestamps) into RGB frames. All backends share the packet index of
:mod:`prf.decode._index` (pts + keyframes from demuxing, cached in memory and on disk) to map a
timestamp to the exact frame. Backends: :class:`PyAVBackend` (default, always available),
:class:`TorchCodecBackend` (optional; CUDA/NVDEC with ``device="cuda"``) and
:class:`~prf.decode.cache.CachedBackend` (frames copied from a :class:`~prf.decode.cache.FrameCache`).
:func:`resolve_backend` is the one place a name (``"auto"`` included) becomes a backend.

Memory bounds of the caches that grow with a dataset (defaults; all LRU):

- open decoders: 64 and 256 MiB (estimated) per thread and backend (:mod:`prf.decode._per_thread`);
- packet indexes in memory: 20,000 indexes and 256 MiB (:func:`configure_index_cache`); on disk one
  file of ~9 bytes per frame per video (``$PRF_INDEX_CACHE``, default ``~/.cache/prf/index``);
- frame-cache entries in RAM: ``in_memory_bytes`` (a quarter of physical memory, or
  ``$PRF_CACHE_IN_MEMORY_MB``), 256 open entry files (:class:`~prf.decode.cache.FrameCache`).

So a 10,000-file dataset read by 2 worker threads holds at most 512 MiB of decoders + 256 MiB of
indexes (176 MiB for 1,000-frame videos), plus the frame cache's RAM budget when one is used.
"""

from __future__ import annotations

from ._base import ArrayFrames, BackendCapabilities, DecodeBackend, FrameSource
from ._index import (
    VideoIndex,
    build_index,
    clean_index_cache,
    clear_index_cache,
    configure_index_cache,
    default_index_dir,
    get_index,
    index_cache_stats,
)
from .cache import CachedBackend, FrameCache
from .pyav import PyAVBackend
from .torchcodec import TorchCodecBackend, torchcodec_available

#: ``backend="auto"``: torchcodec for cameras up to this many pixels, PyAV above (measured on this
#: project's datasets with 2 workers: torchcodec 1.9x faster at 96x96, 1.2x at 320x240, PyAV 1.25x
#: faster at 640x360, equal at 640x480; BENCHMARKS.md).
AUTO_TORCHCODEC_MAX_PIXELS = 160_000


def resolve_backend(backend: str | DecodeBackend = "pyav", *, device: str = "cpu",
                    frame_pixels: int | None = None) -> DecodeBackend:
    """A backend instance for a name, or an instance passed through.

    Args:
        backend: ``"pyav"`` (default, always available), ``"torchcodec"`` (optional; ``device="cuda"``
            for NVDEC), ``"auto"``: torchcodec where it imports and the largest camera has at most
            :data:`AUTO_TORCHCODEC_MAX_PIXELS` pixels (or ``device`` is not the CPU), else PyAV; or a
            :class:`DecodeBackend` instance (returned as is).
        device: where to decode (``"cpu"``, ``"cuda"``, ``"cuda:N"``).
        frame_pixels: ``H * W`` of the largest camera frame to decode (``None``: unknown or no camera),
            for ``"auto"``.

    Raises:
        ValueError: the name is unknown, or ``device`` is not the CPU for PyAV.
        ImportError: ``"torchcodec"`` was asked for (or ``"auto"`` on a GPU) and is not importable.
        TypeError: ``backend`` is neither a name nor a :class:`DecodeBackend`.
    """
    if isinstance(backend, DecodeBackend):
        return backend
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a name or a prf.DecodeBackend, got {type(backend).__name__}")
    if backend == "auto":
        if device != "cpu":
            backend = "torchcodec"
        else:
            small = frame_pixels is None or frame_pixels <= AUTO_TORCHCODEC_MAX_PIXELS
            backend = "torchcodec" if small and torchcodec_available() else "pyav"
    if backend == "pyav":
        if device != "cpu":
            raise ValueError("the pyav backend decodes on the CPU; use backend='torchcodec' for device='cuda'")
        return PyAVBackend()
    if backend == "torchcodec":
        if not torchcodec_available():
            raise ImportError("backend='torchcodec' needs torchcodec: pip install torchcodec (and FFmpeg libraries)")
        return TorchCodecBackend(device=device)
    raise ValueError(f"unknown decode backend {backend!r}; available: 'pyav', 'torchcodec', 'auto'")


def get_backend(backend: str | DecodeBackend = "pyav", device: str = "cpu") -> DecodeBackend:
    """:func:`resolve_backend` without a frame size (kept for callers of the earlier name)."""
    return resolve_backend(backend, device=device)


__all__ = ["DecodeBackend", "BackendCapabilities", "FrameSource", "ArrayFrames", "PyAVBackend",
           "TorchCodecBackend", "CachedBackend", "FrameCache", "VideoIndex", "build_index", "get_index",
           "configure_index_cache", "clear_index_cache", "clean_index_cache", "index_cache_stats",
           "default_index_dir", "resolve_backend", "get_backend", "torchcodec_available",
           "AUTO_TORCHCODEC_MAX_PIXELS"]
