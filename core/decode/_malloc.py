"""glibc malloc tuning for decoding: keep freed frame buffers instead of returning them to the OS.

Decoding allocates and frees several large buffers per frame (the RGB conversion's output, the NumPy
copy, batch arrays). With glibc's defaults, buffers above the (dynamic) mmap threshold are mmapped
and unmapped each time, and the heap top is trimmed back to the OS, so every frame page-faults its
memory in again, and page faults of threads of one process serialise in the kernel. Measured here
(2 cores, 640x360 AV1, random access, 2 decode threads): 900 frames/s with the defaults, 2357 frames/s
with ``M_MMAP_THRESHOLD`` = 64 MiB and ``M_TRIM_THRESHOLD`` = 256 MiB (the same settings as the
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` environment variables).

Applied once per process by the loader, on glibc only (this module sits in the decode layer so that the
loader and the dataset's own batch path share it); not when the user set either variable, or when
``PRF_MALLOC_TUNING=0``. The cost: up to the trim threshold of freed memory stays mapped per arena.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 * 2**20
TRIM_THRESHOLD = 256 * 2**20

_done = False


def tune_malloc() -> bool:
    """Apply the tuning (idempotent). Returns whether it is in effect."""
    global _done
    if _done:
        return True
    if os.environ.get("PRF_MALLOC_TUNING", "1") == "0":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok


#: a long pass also releases free memory every this many delivered batches (besides at each epoch end)
TRIM_EVERY_BATCHES = 256


def release_free_memory() -> bool:
    """Return the free pages of every malloc arena to the OS (glibc ``malloc_trim(0)``).

    Why: with several decode threads, glibc's per-thread arenas fragment (frames of ~1 MB and batch
    arrays of tens of MB freed in other orders than allocated); the free memory they keep grows epoch
    after epoch (measured on aloha_multicam_v30, 2 workers: in-use memory flat at ~40-100 MB while the
    arenas' free memory grew from 250 to 760 MB over 12 epochs, and RSS with it). The loader calls this at
    the end of every epoch and every :data:`TRIM_EVERY_BATCHES` batches: RSS after an epoch then stays
    flat (measured 211-320 MB over the same 12 epochs), for ~15-250 ms per call. Free memory is kept in
    between, so the tuning above still avoids page faults within an epoch.

    Same switch as :func:`tune_malloc` (``PRF_MALLOC_TUNING=0`` disables it); glibc only. Returns whether
    memory was released.
    """
    if os.environ.get("PRF_MALLOC_TUNING", "1") == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        return bool(ctypes.CDLL(None).malloc_trim(0))
    except (OSError, AttributeError):
        return False


#: decoding outside prf's Loader (``Dataset.get_batch``: the torch/JAX/Keras adapters' worker processes,
#: ``ds[i]``) releases free memory every this many decoded camera frames; the Loader does its own
TRIM_EVERY_FRAMES = 8192
_frames_since_trim = 0


def note_decoded(n_frames: int) -> bool:
    """Count ``n_frames`` decoded camera frames; every :data:`TRIM_EVERY_FRAMES` of them
    :func:`release_free_memory` runs (for the same reason as the Loader's epoch-end trim: a DataLoader's
    persistent worker processes otherwise drift up by the arenas' fragmentation, measured +0.4 MB per
    epoch on so101_wrist_v30). Returns whether it released now. Not locked: a lost count under threads
    only shifts the next trim."""
    global _frames_since_trim
    _frames_since_trim += int(n_frames)
    if _frames_since_trim < TRIM_EVERY_FRAMES:
        return False
    _frames_since_trim = 0
    return release_free_memory()
