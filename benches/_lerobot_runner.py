"""LeRobot's own loader, one configuration: ``LeRobotDataset`` + ``torch.utils.data.DataLoader``.
Runs with the Python of the LeRobot reference virtualenv (benches/setup_lerobot.sh)."""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _measure import emit, measure, runner_args  # noqa: E402


def main() -> None:
    ap = runner_args("torchcodec", ["torchcodec", "pyav"])
    a = ap.parse_args()
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    t0 = time.perf_counter()
    ds = LeRobotDataset("bench/" + os.path.basename(a.root.rstrip("/")), root=a.root,
                        episodes=json.loads(a.episodes) if a.episodes else None,
                        delta_timestamps=json.loads(a.delta_timestamps), video_backend=a.backend)
    open_s = time.perf_counter() - t0
    frames_per_sample = sum(len(json.loads(a.delta_timestamps).get(c, [0])) for c in ds.meta.camera_keys)
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers,
                                     generator=torch.Generator().manual_seed(a.seed))
    res = measure(lambda: iter(dl), a.batches, episodes_of=lambda b: b["episode_index"],
                  frames_per_sample=frames_per_sample)
    res.update(open_s=open_s, frames_per_sample=frames_per_sample)
    emit(res)


if __name__ == "__main__":
    main()
