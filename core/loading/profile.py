"""Where a loader spends its time: :meth:`prf.Loader.profile` (and ``prf profile PATH --json``).

The loader's code has stage timers (:mod:`prf._profile`) that cost one thread-local lookup each when
no profile runs. :func:`profile_loader` turns them on for one pass of ``batches`` batches, timed in
the calling thread, and returns a JSON-ready dict:

``wall_s``
    ``time.perf_counter`` from before ``iter(loader)`` to after the last batch was delivered (and
    converted), in the calling ("main") thread.
``main``
    ``{stage: {"s": seconds, "calls": n}}``, *exclusive* times of the calling thread: ``"order"``
    (building the epoch's batch order: ``iter(loader)``), ``"planning"`` (a decode window's batch plans,
    decode tasks by file and GOP, frame shapes, and submitting its jobs to the workers), ``"parquet rows"`` (gathering the non-camera columns
    from the Arrow tables, inside planning), ``"waiting for workers"`` (blocked on the next batch),
    ``"convert"`` (the framework conversion, when given), ``"release memory"`` (malloc trim). With
    ``num_workers=0`` the worker stages below run in this thread and are listed here too.
    ``main_s`` is their sum and ``unaccounted_s = wall_s - main_s`` (the loop itself; small).
``workers``
    ``{stage: {"s", "calls"}}`` summed over the worker threads (each thread's own exclusive
    times): ``"decode <camera>"`` (decoding one task's frames of that camera), ``"assemble"``
    (copying decoded frames into the batch arrays), ``"waiting for decode"`` (a batch's finishing
    job waiting for decode tasks other workers run), ``"transforms"`` (image transforms),
    ``"normalize"``, ``"get_batch"`` (datasets without plans). ``workers_busy_s``: their total;
    ``worker_threads``: how many threads ran a job.
``frames_delivered`` / ``frames_decoded``
    camera frame slots in the delivered batches (``B * T`` per camera) vs unique frames asked of the
    decoder (after merging the window: overlapping windows and neighbouring samples share frames;
    windows prefetched past the last timed batch count too, as in ``frames_assembled``, the slots of
    every batch assembled). ``decode_tasks``: decoder calls.
``cache``
    ``decoder_opens`` during the run and ``decoder_reuse`` (decode tasks that found their file's
    decoder already open: ``decode_tasks - decoder_opens``); ``frame_cache`` true when the frames
    came from the decoded-frame cache (``prf cache build``, ``cache_dir=``), then every decoded frame
    is a cache hit (``frame_cache_hits``).
``samples``, ``batches``, ``samples_per_s``, ``first_batch_s`` (latency of the first batch).

Stages still running when the last batch arrives (decodes of the windows prefetched beyond it) are
not counted; the iterator is closed at the end (they are cancelled).
"""

from __future__ import annotations

import time
from typing import Any

from . import _backend
from .. import _profile


def _stages(per: dict[str, list]) -> dict[str, dict[str, float]]:
    return {k: {"s": round(v[0], 6), "calls": int(v[1])} for k, v in sorted(per.items(), key=lambda kv: -kv[1][0])}


def profile_loader(loader: Any, batches: int = 20, *, convert: Any = None) -> dict[str, Any]:
    """See the module docstring. ``loader`` is a :class:`prf.Loader`; its position does not move.

    Raises:
        ValueError: ``batches`` < 1.
    """
    batches = int(batches)
    if batches < 1:
        raise ValueError(f"batches must be >= 1, got {batches}")
    backend = getattr(loader.dataset, "backend", None)
    before = _backend.stats(backend)
    rec = _profile.Recorder()
    saved_progress = getattr(loader, "_progress", None)  # loader.state_dict() is the latest iterator's
    samples = n = delivered = 0
    cams = list(getattr(loader.dataset, "cameras", None) or [])
    first = None
    with rec.active():
        t0 = time.perf_counter()
        with _profile.stage("order"):
            it = iter(loader)
        limit = min(batches, len(it))  # never past the last batch: a finished pass would move the loader
        try:
            while n < limit:
                batch = next(it)
                delivered += _camera_slots(batch, cams)
                if convert is not None:
                    with _profile.stage("convert"):
                        batch = convert(batch)
                n += 1
                samples += _batch_len(batch)
                if first is None:
                    first = time.perf_counter() - t0
            wall = time.perf_counter() - t0
            snap = rec.snapshot()
        finally:
            it.close()
            loader._progress = saved_progress
    after = _backend.stats(backend)
    main = _stages(snap["main"])
    merged: dict[str, list] = {}
    for per in snap["workers"].values():
        for k, (s, c) in per.items():
            m = merged.setdefault(k, [0.0, 0])
            m[0] += s
            m[1] += c
    main_s = sum(v[0] for v in snap["main"].values())
    counts = snap["counts"]
    tasks = int(counts.get("decode_tasks", 0))
    opens = int(after.get("decoder_opens", 0)) - int(before.get("decoder_opens", 0))
    copy_only = _backend.copy_only(backend)
    return {
        "batches": n,
        "samples": samples,
        "batch_size": loader.batch_size,
        "num_workers": loader.num_workers,
        "wall_s": round(wall, 6),
        "first_batch_s": None if first is None else round(first, 6),
        "samples_per_s": round(samples / wall, 3) if wall > 0 else None,
        "main": main,
        "main_s": round(main_s, 6),
        "unaccounted_s": round(wall - main_s, 6),
        "workers": _stages(merged),
        "workers_busy_s": round(sum(v[0] for v in merged.values()), 6),
        "worker_threads": len(snap["workers"]),
        "frames_delivered": delivered,
        "frames_assembled": int(counts.get("frames_assembled", 0)),
        "frames_decoded": int(counts.get("frames_decoded", 0)),
        "decode_tasks": tasks,
        "cache": {
            "decoder_opens": opens,
            "decoder_reuse": max(0, tasks - opens) if not copy_only else 0,
            "frame_cache": copy_only,
            "frame_cache_hits": int(counts.get("frames_decoded", 0)) if copy_only else 0,
        },
    }


def _camera_slots(batch: dict[str, Any], cams: list[str]) -> int:
    """Camera frames in a delivered NumPy batch: ``B`` per camera, ``B * T`` with a window."""
    n = 0
    for key in cams:
        shape = getattr(batch.get(key), "shape", None)
        if shape is not None and len(shape) >= 4:
            n += int(shape[0]) * (int(shape[1]) if len(shape) == 5 else 1)
    return n


def _batch_len(batch: Any) -> int:
    """Samples in a batch (a dict of arrays / framework tensors, or a framework's own structure)."""
    if isinstance(batch, dict):
        for v in batch.values():
            shape = getattr(v, "shape", None)
            if shape is not None and len(shape):
                return int(shape[0])
            if isinstance(v, list):
                return len(v)
    if isinstance(batch, (tuple, list)) and batch:
        return _batch_len(batch[0]) if isinstance(batch[0], dict) else len(batch[0]) if hasattr(batch[0], "__len__") else 1
    return 0


def format_text(p: dict[str, Any]) -> str:
    """The human-readable form of :func:`profile_loader`'s dict."""
    lines = [
        f"batches {p['batches']} x {p['batch_size']} ({p['samples']} samples), num_workers {p['num_workers']}",
        f"wall {p['wall_s']:.3f} s, first batch {p['first_batch_s'] or 0:.3f} s, {p['samples_per_s'] or 0:.1f} samples/s",
        f"frames delivered {p['frames_delivered']}, decoded {p['frames_decoded']} in {p['decode_tasks']} tasks; "
        f"decoder opens {p['cache']['decoder_opens']}, reuse {p['cache']['decoder_reuse']}"
        + (f", frame-cache hits {p['cache']['frame_cache_hits']}" if p["cache"]["frame_cache"] else ""),
        "main thread (exclusive, adds up to wall):",
    ]
    for k, v in p["main"].items():
        lines.append(f"  {k:<36} {v['s']:9.4f} s  {100 * v['s'] / max(p['wall_s'], 1e-12):5.1f}%  ({v['calls']} calls)")
    lines.append(f"  {'(unaccounted)':<36} {p['unaccounted_s']:9.4f} s")
    if p["workers"]:
        lines.append(f"workers ({p['worker_threads']} threads, busy {p['workers_busy_s']:.3f} s in total):")
        for k, v in p["workers"].items():
            lines.append(f"  {k:<36} {v['s']:9.4f} s  ({v['calls']} calls)")
    return "\n".join(lines)
