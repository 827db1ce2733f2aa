"""Read a LeRobot dataset with LeRobot itself and save samples, for prf's tests.

Run with an interpreter that has lerobot installed (the tests use $PRF_LEROBOT_PYTHON):

    python lerobot_readback.py DATASET_ROOT OUT.npz [INDEX ...]

Saves, for the given indices (default: every frame), each sample key as an array stacked over the
indices: numeric features as LeRobot returns them, camera frames as uint8 [N, H, W, C]
(round(255 * x) of LeRobot's float CHW output), plus "__len__", "__fps__", "__episodes__" and the
task strings as "task". Uses the pyav video backend (no torchcodec needed).
"""

import json
import sys

import numpy as np


def main() -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, out = sys.argv[1], sys.argv[2]
    ds = LeRobotDataset("prf-tests/readback", root=root, video_backend="pyav")
    idx = [int(i) for i in sys.argv[3:]] or list(range(len(ds)))
    cams = set(ds.meta.camera_keys)
    cols: dict = {}
    for i in idx:
        item = ds[i]
        for k, v in item.items():
            if k in cams:
                v = (v.numpy().transpose(1, 2, 0) * 255.0).round().clip(0, 255).astype(np.uint8)
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
