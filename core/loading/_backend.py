"""The loader's view of a decode backend's lifecycle and capabilities, in one place.

Backends are :class:`prf.DecodeBackend` subclasses that declare :class:`prf.decode.BackendCapabilities`
and own their decoders (``close()``: every thread's; ``close_thread()``: the calling thread's;
``stats()``: counters). A dataset without a backend (any object with ``get_batch``) has nothing to close.
"""

from __future__ import annotations

from typing import Any

from ..decode import DecodeBackend


def _backend(backend: Any) -> DecodeBackend | None:
    return backend if isinstance(backend, DecodeBackend) else None


def copy_only(backend: Any) -> bool:
    """Whether the backend only copies stored frames (the frame cache): no decode locality to gain."""
    b = _backend(backend)
    return b is not None and b.capabilities.copy_only


def close_thread_decoders(backend: Any) -> None:
    """Close the decoders the calling thread opened (run by each worker thread as it exits)."""
    b = _backend(backend)
    if b is not None:
        b.close_thread()


def close(backend: Any) -> None:
    """Release every decoder the backend holds open, in every thread of this process."""
    b = _backend(backend)
    if b is not None:
        b.close()


def stats(backend: Any) -> dict[str, int]:
    """The backend's counters (``decoder_opens``, ``decoders_open``, ...), ``{}`` without a backend."""
    b = _backend(backend)
    return dict(b.stats()) if b is not None else {}
