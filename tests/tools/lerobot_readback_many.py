"""Read several LeRobot datasets with LeRobot itself and save samples at given indices, for prf's
tests (one interpreter start for many datasets).

    python lerobot_readback_many.py SPEC.json

SPEC.json: ``[{"root": ..., "out": OUT.npz, "indices": [...]}, ...]``. Each OUT.npz holds every sample
key stacked over the indices (numeric features as LeRobot returns them, camera frames uint8
[N, H, W, C] = round(255 * x) of LeRobot's float CHW output, task strings as "task"), plus
"__len__", "__episodes__", "__indices__". A dataset LeRobot cannot open gets OUT.npz.err with the
traceback instead. Uses the pyav video backend.
"""

import json
import sys
import traceback

import numpy as np


def read(root, out, idx):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("prf-tests/edit", root=root, video_backend="pyav")
    cams = set(ds.meta.camera_keys)
    cols = {}
    for i in idx:
        item = ds[int(i)]
        for k, v in item.items():
            if k in cams:
                v = v.numpy().transpose(1, 2, 0)
                v = (v * 255.0).round().clip(0, 255).astype(np.uint8)
            elif hasattr(v, "numpy"):
                v = v.numpy()
            cols.setdefault(k, []).append(v)
    arrays = {k: np.asarray(v) for k, v in cols.items()}
    arrays["__len__"] = np.array(len(ds))
    arrays["__episodes__"] = np.array(ds.meta.total_episodes)
    arrays["__indices__"] = np.array(idx)
    np.savez(out, **arrays)


def main():
    for job in json.load(open(sys.argv[1])):
        try:
            read(job["root"], job["out"], job["indices"])
        except Exception:  # noqa: BLE001 - reported to the test, which fails with it
            with open(job["out"] + ".err", "w") as f:
                f.write(traceback.format_exc())


if __name__ == "__main__":
    main()
