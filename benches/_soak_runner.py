"""One memory-soak configuration in its own process: iterate epochs, report memory after each.

Runs with prf's Python (configs ``prf``, ``prf-torch``) or with the LeRobot reference virtualenv's
(config ``lerobot``: imports no prf). Prints one ``PRF_SOAK {json}`` line per epoch:
``{"epoch", "batches", "seconds", "rss_mb" (main process), "pss_mb" / "uss_mb" (main + DataLoader
worker processes, summed), "children"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def memory(proc) -> dict:
    """RSS of the main process; PSS and USS summed over it and its (worker) children."""
    procs = [proc] + proc.children(recursive=True)
    pss = uss = 0
    for p in procs:
        try:
            full = p.memory_full_info()
        except Exception:  # noqa: BLE001 - a worker that just exited
            continue
        pss += getattr(full, "pss", 0)
        uss += full.uss
    rss_all = 0
    for p in procs:
        try:
            rss_all += p.memory_info().rss
        except Exception:  # noqa: BLE001
            pass
    return {"rss_mb": proc.memory_info().rss / 2**20, "rss_all_mb": rss_all / 2**20, "pss_mb": pss / 2**20,
            "uss_mb": uss / 2**20, "children": len(procs) - 1}


def emit(row: dict) -> None:
    sys.stdout.write("PRF_SOAK " + json.dumps(row) + "\n")
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, choices=["prf", "prf-torch", "lerobot"])
    ap.add_argument("--root", required=True)
    ap.add_argument("--delta-timestamps", required=True, help="JSON")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--episodes", default=None, help="JSON list")
    ap.add_argument("--max-batches", type=int, default=0, help="stop each epoch after this many batches (0: all)")
    a = ap.parse_args()
    import psutil

    proc = psutil.Process()
    dt = json.loads(a.delta_timestamps)
    episodes = json.loads(a.episodes) if a.episodes else None
    t_open = time.perf_counter()
    if a.config == "prf":
        import prf

        ds = prf.open_dataset(a.root, delta_timestamps=dt, episodes=episodes)
        loader = ds.loader(a.batch_size, shuffle=True, seed=0, num_workers=a.workers)
        epochs = (loader for _ in range(a.epochs))
    else:
        import torch

        if a.config == "prf-torch":
            import prf.torch

            ds = prf.torch.Dataset(a.root, delta_timestamps=dt, episodes=episodes)
        else:
            from lerobot.datasets.lerobot_dataset import LeRobotDataset

            ds = LeRobotDataset("bench/" + os.path.basename(a.root.rstrip("/")), root=a.root, episodes=episodes,
                                delta_timestamps=dt)
        dl = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers,
                                         persistent_workers=a.workers > 0,
                                         generator=torch.Generator().manual_seed(0))
        epochs = (dl for _ in range(a.epochs))
    emit({"epoch": 0, "batches": 0, "seconds": time.perf_counter() - t_open, **memory(proc)})
    for e, it in enumerate(epochs, start=1):
        t0 = time.perf_counter()
        n = 0
        for _batch in it:
            n += 1
            if a.max_batches and n >= a.max_batches:
                break
        del _batch
        emit({"epoch": e, "batches": n, "seconds": time.perf_counter() - t0, **memory(proc)})


if __name__ == "__main__":
    main()
