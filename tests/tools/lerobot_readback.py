"""Read a LeRobot dataset with LeRobot itself and save samples, for prf's tests.

Run with an interpreter that has lerobot installed (the tests use $PRF_LEROBOT_PYTHON):

    python lerobot_readback.py DATASET_ROOT OUT.npz [INDEX ...] [--delta-timestamps=JSON]

Saves, for the given indices (default: every frame), each sample key as an array stacked over the
indices: numeric features as LeRobot returns them, camera frames as uint8 [N, H, W, C]
(round(255 * x) of LeRobot's float CHW output; [N, T, H, W, C] with a window), plus "__len__", "__fps__", "__episodes__" and the
task strings as "task". Uses the pyav video backend (no torchcodec needed).
"""

import json
import sys

import numpy as np


def main() -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    args = [a for a in sys.argv[1:] if not a.startswith("--delta-timestamps=")]
    dts = [json.loads(a.split("=", 1)[1]) for a in sys.argv[1:] if a.startswith("--delta-timestamps=")]
    root, out = args[0], args[1]
    ds = LeRobotDataset("prf-tests/readback", root=root, video_backend="pyav",
                        delta_timestamps=dts[0] if dts else None)
    idx = [int(i) for i in args[2:]] or list(range(len(ds)))
    cams = set(ds.meta.camera_keys)
    cols: dict = {}
    for i in idx:
        item = ds[i]
        for k, v in item.items():
            if k in cams:
                v = v.numpy()
                v = v.transpose(0, 2, 3, 1) if v.ndim == 4 else v.transpose(1, 2, 0)
                v = (v * 255.0).round().clip(0, 255).astype(np.uint8)
            elif hasattr(v, "numpy"):
                v = v.numpy()
            cols.setdefault(k, []).append(v)
    arrays = {k: np.asarray(v) for k, v in cols.items()}
    arrays["__len__"] = np.array(len(ds))
    arrays["__fps__"] = np.array(ds.fps)
    arrays["__episodes__"] = np.array(ds.meta.total_episodes)
    arrays["__indices__"] = np.array(idx)
    np.savez(out, **arrays)
    print(json.dumps({"len": len(ds), "keys": sorted(arrays)}))


if __name__ == "__main__":
    main()
