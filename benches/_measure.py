"""Timing of one loader run, shared by the prf and LeRobot runners (plain Python + NumPy only, so it
runs in LeRobot's own virtualenv too)."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def measure(make_iter, n_batches: int, episodes_of=None, frames_per_sample: int = 1, warmup: int = 1) -> dict:
    """Iterate ``make_iter()`` for ``warmup + n_batches`` batches.

    Returns samples/s and frames/s over the timed batches (after ``warmup``), time to first batch
    (from the iterator's creation), p50/p95/p99 batch latency (time between consecutive batches as
    the training loop sees it) and distinct episodes per batch.
    """
    t0 = time.perf_counter()
    it = make_iter()
    lat, distinct = [], []
    samples = 0
    first = None
    prev = t0
    t_start = None
    for k in range(warmup + n_batches):
        try:
            batch = next(it)
        except StopIteration:
            break
        now = time.perf_counter()
        if first is None:
            first = now - t0
        if k == warmup - 1 or (warmup == 0 and k == 0 and t_start is None):
            t_start = now
        if k >= warmup:
            lat.append(now - prev)
            bs = len(batch["index"])
            samples += bs
            if episodes_of is not None:
                distinct.append(len(set(np.asarray(episodes_of(batch)).reshape(-1).tolist())))
        prev = now
    elapsed = prev - t_start if t_start is not None else float("nan")
    lat_ms = np.array(lat) * 1e3
    return {
        "samples": samples,
        "seconds": elapsed,
        "samples_per_s": samples / elapsed if elapsed > 0 else float("nan"),
        "frames_per_s": samples * frames_per_sample / elapsed if elapsed > 0 else float("nan"),
        "first_batch_s": first,
        "p50_ms": float(np.percentile(lat_ms, 50)) if lat else float("nan"),
        "p95_ms": float(np.percentile(lat_ms, 95)) if lat else float("nan"),
        "p99_ms": float(np.percentile(lat_ms, 99)) if lat else float("nan"),
        "distinct_episodes_per_batch": float(np.mean(distinct)) if distinct else float("nan"),
    }


def emit(result: dict) -> None:
    sys.stdout.write("PRF_BENCH_RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


def runner_args(default_backend: str, backends: list[str] | None = None) -> argparse.ArgumentParser:
    """The options both runners (prf's and LeRobot's) take, so they measure the same setting."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--delta-timestamps", required=True, help="JSON")
    ap.add_argument("--episodes", default=None, help="JSON list")
    ap.add_argument("--backend", default=default_backend, choices=backends)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    return ap
