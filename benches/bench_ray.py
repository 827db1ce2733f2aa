"""Samples/s per CPU of a Ray Data pipeline that reads windowed LeRobot samples: prf's
``prf.ray.read_dataset`` side by side, in one run, with LeRobot 0.4.4's ``LeRobotDataset`` mapped
through Ray Data (the ids ``0..n-1`` mapped with ``map_batches(...)`` calling ``LeRobotDataset.__getitem__`` in
actors that each open the dataset once). ``ray.data.read_lerobot`` needs lerobot >= 0.5, which does
not install here (PyPI has 0.4.4 at most for this machine), so this is the best Ray Data pipeline
without prf that runs here.

Each pipeline runs in its own Python process with its own local Ray (``ray.init(num_cpus=N)``), over
the same samples in the same (dataset) order, consumed with ``iter_batches``; samples/s is rows over
the wall time from building the pipeline to the last row (Ray's start excluded), divided by N.

The LeRobot side needs a Python with LeRobot 0.4.4 and Ray: a virtualenv over the LeRobot reference
venv's packages plus Ray (the reference venv itself is shared and left unchanged)::

    bash benches/setup_lerobot.sh ../.lerobot-ref-venv
    python3.11 -m venv ../.ray-lerobot-venv
    echo "$(realpath ../.lerobot-ref-venv)/lib/python3.11/site-packages" > ../.ray-lerobot-venv/lib/python3.11/site-packages/lerobot-ref.pth
    ../.ray-lerobot-venv/bin/pip install "ray[data]==2.60.0"

Run::

    python benches/bench_ray.py --lerobot-python ../.ray-lerobot-venv/bin/python [--cpus 2] [--dataset so101_wrist_v30] [--episodes 0,1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = (HERE / ".." / ".." / "shared" / "data" / "lerobot").resolve()


def _dts(root: Path) -> dict:
    info = json.loads((root / "meta" / "info.json").read_text())
    cams = [k for k, f in info["features"].items() if f["dtype"] in ("video", "image")]
    fps = info["fps"]
    out = {c: [-0.1, 0.0] for c in cams}
    out["observation.state"] = [-0.1, 0.0]
    out["action"] = [k / fps for k in range(16)]
    return out


def _run_prf(a) -> dict:
    import ray

    import prf.ray

    ray.init(num_cpus=a.cpus, include_dashboard=False, log_to_driver=False)
    root = Path(a.root)
    t0 = time.perf_counter()
    rds = prf.ray.read_dataset(root, episodes=a.episodes, delta_timestamps=_dts(root))
    rows, first = 0, None
    for b in rds.iter_batches(batch_size=64, batch_format="numpy"):
        rows += len(b["index"])
        first = first or time.perf_counter()
    t = time.perf_counter() - t0
    ray.shutdown()
    return {"rows": rows, "wall_s": t, "first_batch_s": first - t0}


class _LeRobotMap:
    """A Ray Data actor: ``LeRobotDataset`` opened once, ``__getitem__`` per id of a batch."""

    def __init__(self, root: str, episodes, dts):
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        self.ds = LeRobotDataset("bench/" + os.path.basename(root), root=root, episodes=episodes,
                                 delta_timestamps=dts)

    def __call__(self, batch):
        import numpy as np

        items = [self.ds[int(i)] for i in batch["id"]]
        out = {}
        for k, v in items[0].items():
            if hasattr(v, "numpy"):
                out[k] = np.stack([it[k].numpy() for it in items])
            elif isinstance(v, str):
                out[k] = np.array([it[k] for it in items], dtype=object)
        return out


def _run_lerobot(a) -> dict:
    import ray
    import ray.data

    ray.init(num_cpus=a.cpus, include_dashboard=False, log_to_driver=False)
    root = Path(a.root)
    t0 = time.perf_counter()
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    n = LeRobotDataset("bench/" + root.name, root=str(root), episodes=a.episodes).num_frames
    # the ids as in-memory blocks (ray.data.range's read task would need a CPU the actors hold: a deadlock)
    rds = ray.data.from_items([{"id": i} for i in range(n)], override_num_blocks=max(a.cpus * 4, 8)).map_batches(
        _LeRobotMap, fn_constructor_args=(str(root), a.episodes, _dts(root)), batch_size=64, concurrency=a.cpus,
        num_cpus=1)
    rows, first = 0, None
    for b in rds.iter_batches(batch_size=64, batch_format="numpy"):
        rows += len(b["index"])
        first = first or time.perf_counter()
    t = time.perf_counter() - t0
    ray.shutdown()
    return {"rows": rows, "wall_s": t, "first_batch_s": first - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="so101_wrist_v30")
    ap.add_argument("--episodes", default="0,1", help="comma-separated episodes (default 0,1); 'all' for all")
    ap.add_argument("--cpus", type=int, default=2, help="Ray CPUs of each pipeline (default 2)")
    ap.add_argument("--lerobot-python", default=str(HERE / ".." / ".." / ".ray-lerobot-venv" / "bin" / "python"))
    ap.add_argument("--run", choices=["prf", "lerobot"], help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args()
    if a.run:
        a.episodes = None if a.episodes == "all" else [int(e) for e in a.episodes.split(",")]
        res = (_run_prf if a.run == "prf" else _run_lerobot)(a)
        print("RESULT " + json.dumps(res), flush=True)
        return
    root = DATA / a.dataset
    results = {}
    for name, py in (("prf.ray.read_dataset", sys.executable), ("LeRobotDataset via ray.data map_batches", a.lerobot_python)):
        cmd = [py, __file__, "--run", "prf" if name.startswith("prf") else "lerobot", "--root", str(root),
               "--episodes", a.episodes, "--cpus", str(a.cpus)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        if p.returncode or not line:
            sys.exit(f"{name} failed ({p.returncode}):\n{p.stderr[-4000:]}")
        r = json.loads(line[-1][7:])
        r["samples_per_s_per_cpu"] = r["rows"] / r["wall_s"] / a.cpus
        results[name] = r
        print(f"{name:42s} rows {r['rows']:6d}  wall {r['wall_s']:7.1f} s  first batch {r['first_batch_s']:6.1f} s  "
              f"{r['samples_per_s_per_cpu']:7.1f} samples/s per CPU", flush=True)
    (p_, l_) = results.values()
    ratio = p_["samples_per_s_per_cpu"] / l_["samples_per_s_per_cpu"]
    print(f"ratio prf / LeRobot: {ratio:.2f}x  ({a.dataset}, episodes {a.episodes}, {a.cpus} Ray CPUs, "
          f"windows: 2 frames per camera, 2 states, 16 actions)")
    if a.out:
        Path(a.out).write_text(json.dumps({"dataset": a.dataset, "episodes": a.episodes, "cpus": a.cpus,
                                           "results": results, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
