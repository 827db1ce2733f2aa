"""The loader's view of a decode backend's lifecycle and capabilities, in one place.

The decode layer is gaining ``backend.close()`` (closes every decoder the backend opened, in every
thread), ``backend.stats()`` (``decoder_opens`` / ``decoders_open`` counters) and
``backend.capabilities.copy_only``. Until every backend has them, these functions fall back to what
the current backends offer; once they do, each becomes a one-line call (swap here only).
"""

from __future__ import annotations

from typing import Any


def _chain(backend: Any) -> list[Any]:
    """The backend and the backends it wraps (the frame cache's ``inner``)."""
    out = []
    while backend is not None and all(backend is not b for b in out):
        out.append(backend)
        backend = getattr(backend, "inner", None)
    return out


def copy_only(backend: Any) -> bool:
    """Whether the backend only copies stored frames (the frame cache): no decode locality to gain."""
    caps = getattr(backend, "capabilities", None)
    if caps is not None and hasattr(caps, "copy_only"):
        return bool(caps.copy_only)
    return getattr(backend, "batches_per_window", None) == 1


def close_thread_decoders(backend: Any) -> None:
    """Close the decoders the calling thread opened (run by each worker thread as it exits)."""
    for b in _chain(backend):
        table = getattr(b, "_decoders", None)
        current = getattr(table, "current", None)
        if current is None:
            continue
        opened = current()
        while opened:
            _, dec = opened.popitem(last=False)
            close = getattr(dec, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - a broken decoder must not stop the others closing
                    pass


def close(backend: Any) -> None:
    """Release what the backend holds open: ``backend.close()`` where it exists (every thread's
    decoders), else the calling thread's decoders (worker threads close theirs as they exit)."""
    fn = getattr(backend, "close", None)
    if callable(fn):
        fn()
        return
    close_thread_decoders(backend)


def stats(backend: Any) -> dict[str, int]:
    """The backend's counters (``decoder_opens``, ``decoders_open``, ...) where it keeps them, else ``{}``."""
    fn = getattr(backend, "stats", None)
    return dict(fn()) if callable(fn) else {}
