"""Samples/s per CPU of a Ray Data pipeline that reads windowed LeRobot samples: prf's
``prf.ray.read_dataset`` side by side, in one run, with LeRobot 0.4.4's ``LeRobotDataset`` mapped
through Ray Data (the ids ``0..n-1`` mapped with ``map_batches(...)`` calling ``LeRobotDataset.__getitem__`` in
actors that each open the dataset once). ``ray.data.read_lerobot`` needs lerobot >= 0.5, which does
not install here (PyPI has 0.4.4 at most for this machine), so this is the best Ray Data pipeline
without prf that runs here.

Each pipeline runs in its own Python process with its own local Ray (``ray.init(num_cpus=N)``), over
the same samples in the same (dataset) order, consumed with ``iter_batches(batch_size=64)``, for
``--epochs`` epochs (the pipeline run again, as training epochs do); samples/s per CPU is an epoch's
rows over its wall time (from building the pipeline to its last row), divided by N. Epoch 1 is cold:
it includes starting the worker processes (imports, dataset opens); Ray's own start is excluded.

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

    ray.init(num_cpus=a.cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    root = Path(a.root)
    t0 = time.perf_counter()
    return _consume(ray, lambda: prf.ray.read_dataset(root, episodes=a.episodes, delta_timestamps=_dts(root)), t0,
                    a.epochs)


def _consume(ray, make, t0: float, epochs: int) -> dict:
    """Epochs over every row (``make()`` builds the pipeline), batches of 64: wall time per epoch
    (epoch 1 includes starting the worker processes, their imports and dataset opens; later epochs
    run the same pipeline again on warm workers, as training epochs do)."""
    walls, steady, rows = [], [], 0
    for e in range(epochs):
        t = time.perf_counter() if e else t0
        rows, first, first_rows = 0, None, 0
        for b in make().iter_batches(batch_size=64, batch_format="numpy"):
            rows += len(b["index"])
            if first is None:
                first, first_rows = time.perf_counter(), rows
        end = time.perf_counter()
        walls.append(end - t)
        steady.append((rows - first_rows) / max(end - first, 1e-9))
    ray.shutdown()
    return {"rows": rows, "epoch_wall_s": walls, "after_first_batch_samples_per_s": steady}


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

    ray.init(num_cpus=a.cpus, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    root = Path(a.root)
    t0 = time.perf_counter()
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    n = LeRobotDataset("bench/" + root.name, root=str(root), episodes=a.episodes).num_frames
    # the ids as in-memory blocks (ray.data.range's read task would need a CPU the actors hold: a deadlock)
    ids = ray.data.from_items([{"id": i} for i in range(n)], override_num_blocks=max(a.cpus * 4, 8))
    return _consume(ray, lambda: ids.map_batches(_LeRobotMap, fn_constructor_args=(str(root), a.episodes, _dts(root)),
                                                 batch_size=64, concurrency=a.cpus, num_cpus=1), t0, a.epochs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="so101_wrist_v30")
    ap.add_argument("--episodes", default="0,1", help="comma-separated episodes (default 0,1); 'all' for all")
    ap.add_argument("--cpus", type=int, default=2, help="Ray CPUs of each pipeline (default 2)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of each pipeline (default 2; 1 is cold)")
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
               "--episodes", a.episodes, "--cpus", str(a.cpus), "--epochs", str(a.epochs)]
        p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"))
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        if p.returncode or not line:
            sys.exit(f"{name} failed ({p.returncode}):\n{p.stderr[-4000:]}")
        r = json.loads(line[-1][7:])
        r["samples_per_s_per_cpu"] = [r["rows"] / w / a.cpus for w in r["epoch_wall_s"]]
        r["after_first_batch_per_cpu"] = [v / a.cpus for v in r["after_first_batch_samples_per_s"]]
        results[name] = r
        print(f"{name:42s} rows {r['rows']:6d}  " + "  ".join(
            f"epoch {e + 1}: {w:6.1f} s, {v:6.1f} samples/s per CPU ({f:6.1f} after its first batch)"
            for e, (w, v, f) in enumerate(zip(r["epoch_wall_s"], r["samples_per_s_per_cpu"],
                                              r["after_first_batch_per_cpu"]))), flush=True)
    (p_, l_) = results.values()
    ratios = [x / y for x, y in zip(p_["samples_per_s_per_cpu"], l_["samples_per_s_per_cpu"])]
    after = [x / y for x, y in zip(p_["after_first_batch_per_cpu"], l_["after_first_batch_per_cpu"])]
    print(f"ratio prf / LeRobot per epoch: {', '.join(f'{r:.2f}x' for r in ratios)}; after each epoch's first "
          f"batch: {', '.join(f'{r:.2f}x' for r in after)}  ({a.dataset}, episodes "
          f"{a.episodes}, {a.cpus} Ray CPUs, windows: 2 frames per camera, 2 states, 16 actions)")
    if a.out:
        Path(a.out).write_text(json.dumps({"dataset": a.dataset, "episodes": a.episodes, "cpus": a.cpus,
                                           "results": results, "ratio_per_epoch": ratios,
                                           "ratio_after_first_batch": after}, indent=2))


if __name__ == "__main__":
    main()
