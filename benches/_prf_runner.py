"""One prf loader configuration (run by bench_loader.py in its own process)."""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _measure import emit, measure, runner_args  # noqa: E402


def main() -> None:
    ap = runner_args("pyav")
    ap.add_argument("--sampler", choices=["uniform", "pool"], default="uniform")
    ap.add_argument("--pool-size", type=int, default=4)
    ap.add_argument("--cache-dir", default=None)
    a = ap.parse_args()
    import prf

    t0 = time.perf_counter()
    ds = prf.open_dataset(a.root, delta_timestamps=json.loads(a.delta_timestamps),
                          episodes=json.loads(a.episodes) if a.episodes else None, backend=a.backend)
    if a.cache_dir:
        ds = ds.with_frame_cache(a.cache_dir, progress=False)  # built beforehand: a warm cache
    open_s = time.perf_counter() - t0
    if a.sampler == "pool":
        sampler = prf.EpisodePoolSampler(ds, pool_size=a.pool_size, seed=a.seed)
    else:
        sampler = prf.ShuffleSampler(len(ds), seed=a.seed)
    frames_per_sample = sum(len(ds.delta_timestamps.get(c, [0])) for c in ds.cameras)
    loader = ds.loader(a.batch_size, sampler=sampler, num_workers=a.workers)
    res = measure(lambda: iter(loader), a.batches, episodes_of=lambda b: b["episode_index"],
                  frames_per_sample=frames_per_sample)
    res.update(open_s=open_s, frames_per_sample=frames_per_sample)
    emit(res)


if __name__ == "__main__":
    main()
