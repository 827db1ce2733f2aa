"""One scale measurement in a fresh process (run by bench_scale.py): open a dataset with prf or with
LeRobot, then RSS, random ``ds[i]`` items/s and loader samples/s. Plain Python + NumPy (runs in
LeRobot's virtualenv too)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _measure import emit, measure  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["prf", "lerobot"], required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--delta-timestamps", default="{}")
    ap.add_argument("--open-only", action="store_true")
    ap.add_argument("--items", type=int, default=20000)
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--backend", default=None)
    a = ap.parse_args()
    import numpy as np

    dts = json.loads(a.delta_timestamps) or None
    res: dict = {}
    t0 = time.perf_counter()
    if a.impl == "prf":
        import prf

        res["import_s"] = time.perf_counter() - t0
        res["rss_import_mb"] = rss_mb()
        t0 = time.perf_counter()
        ds = prf.open_dataset(a.root, delta_timestamps=dts, **({"backend": a.backend} if a.backend else {}))
    else:
        import torch
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        res["import_s"] = time.perf_counter() - t0
        res["rss_import_mb"] = rss_mb()
        t0 = time.perf_counter()
        ds = LeRobotDataset("bench/" + os.path.basename(a.root.rstrip("/")), root=a.root, delta_timestamps=dts,
                            video_backend=a.backend)
    res["open_s"] = time.perf_counter() - t0
    res["rss_open_mb"] = rss_mb()
    res["frames"] = len(ds)
    if a.open_only:
        emit(res)
        return
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(ds), a.items).tolist()
    ds[idx[0]]
    t0 = time.perf_counter()
    for i in idx:
        ds[i]
    res["items_per_s"] = len(idx) / (time.perf_counter() - t0)
    res["rss_items_mb"] = rss_mb()
    if a.impl == "prf":
        loader = ds.loader(32, shuffle=True, seed=0, num_workers=a.workers)
        make = lambda: iter(loader)  # noqa: E731
    else:
        dl = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, num_workers=a.workers,
                                         generator=torch.Generator().manual_seed(0))
        make = lambda: iter(dl)  # noqa: E731
    m = measure(make, a.batches)
    res.update(loader_samples_per_s=m["samples_per_s"], first_batch_s=m["first_batch_s"], loader_p50_ms=m["p50_ms"])
    res["rss_end_mb"] = rss_mb()
    emit(res)


if __name__ == "__main__":
    main()
