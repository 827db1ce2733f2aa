"""prf.edit against LeRobot 0.4.4's own dataset_tools (delete_episodes, split_dataset, merge_datasets),
side by side in one run, on a generated v3.0 video dataset and on aloha_multicam_v30; then appending
10 episodes to a large dataset.

    python benches/bench_edit.py --lerobot-python ../.lerobot-ref-venv/bin/python [--append-frames 10000000]

The generated dataset (default 2,000 episodes x 150 frames = 300k frames, one 64x64 camera in several
mp4 shards, state/action 6-d) is written once with prf.write_lerobot_dataset into --cache-dir. Appending
10 episodes is timed on it and on a generated no-camera dataset of --append-frames frames with per-episode
stats (benches/_scale_data.py, cached under ~/.cache/prf/bench). Each operation runs --small-repeat times per tool on aloha (median reported), once on the generated dataset (wall-clock seconds); outputs go to a temporary
folder that is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benches"))

LEROBOT_SCRIPT = r"""
import json, sys, time, shutil
from pathlib import Path
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from lerobot.datasets.dataset_tools import delete_episodes, split_dataset, merge_datasets
root, out, drop, repeat = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ds = LeRobotDataset("bench/src", root=root)
res = {"delete": [], "split": [], "merge": []}
for r in range(repeat):
    o = out / str(r)
    t = time.perf_counter(); delete_episodes(ds, [drop], output_dir=o / "delete", repo_id="bench/del")
    res["delete"].append(time.perf_counter() - t)
    t = time.perf_counter(); parts = split_dataset(ds, {"train": 0.9, "val": 0.1}, output_dir=o / "split")
    res["split"].append(time.perf_counter() - t)
    t = time.perf_counter(); merge_datasets([parts["train"], parts["val"]], "bench/merged", output_dir=o / "merge")
    res["merge"].append(time.perf_counter() - t)
    shutil.rmtree(o)
print("RESULT " + json.dumps(res))
"""


def generate(root: Path, episodes: int, length: int, codec: str = "h264") -> Path:
    import prf

    if (root / "meta" / "info.json").is_file():
        return root
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    feats = {"observation.state": {"dtype": "float32", "shape": [6]}, "action": {"dtype": "float32", "shape": [6]},
             "observation.images.cam": {"dtype": "video", "shape": [64, 64, 3]}}

    def eps():
        for e in range(episodes):
            t = np.arange(length)[:, None, None]
            base = ((xx[None] * 3 + yy[None] * 2 + t * 5 + e * 17) % 256).astype(np.uint8)
            fr = np.stack([base, np.roll(base, e % 7, axis=1), 255 - base], axis=-1)
            yield {"observation.state": rng.normal(size=(length, 6)).astype(np.float32),
                   "action": rng.normal(size=(length, 6)).astype(np.float32),
                   "observation.images.cam": fr, "task": f"task {e % 3}"}

    # shard sizes chosen so that the 300k-frame dataset has several data and video files
    # H.264: SVT-AV1 deadlocked once here (every encoder thread on a futex) on a heavily loaded machine
    return prf.write_lerobot_dataset(root, feats, eps(), 30, data_files_size_in_mb=8, video_files_size_in_mb=12,
                                     video_codec=codec)


def _time_append(cache: Path, base: Path, ten: Path) -> dict:
    """Seconds to append ``ten`` to a hard-linked copy of ``base`` (the cached one stays as it is)."""
    import prf
    from prf.edit._common import link_tree

    target = cache / "append_target"
    if target.exists():
        shutil.rmtree(target)
    t = time.perf_counter()
    link_tree(base, target)
    t_copy = time.perf_counter() - t
    t = time.perf_counter()
    rec = prf.append_episodes(target, ten, progress=False)
    t_append = time.perf_counter() - t
    n = prf.DatasetMeta(target).total_frames
    shutil.rmtree(target)
    return {"frames_before": rec["frames"][0], "episodes_before": rec["episodes"][0],
            "appended_frames": rec["frames"][1] - rec["frames"][0], "frames_after": n, "seconds": t_append,
            "hardlink_copy_seconds": t_copy}


def run_prf(root: Path, out: Path, drop: int, repeat: int = 1) -> dict[str, list[float]]:
    import prf

    # warm-up outside the timing (LeRobot's imports are outside its timing too): the first edit of a
    # process pays lazy imports (pyarrow.dataset -> pandas, PyAV codecs), seconds on a loaded machine
    prf.delete_episodes(REPO / ".." / "shared" / "data" / "lerobot" / "pusht_sim_v30", out / "warmup", [0],
                        progress=False)
    res: dict[str, list[float]] = {"delete": [], "split": [], "merge": []}
    for r in range(repeat):
        o = out / str(r)
        t = time.perf_counter()
        prf.delete_episodes(root, o / "delete", [drop], progress=False)
        res["delete"].append(time.perf_counter() - t)
        t = time.perf_counter()
        prf.split_dataset(root, o / "split", {"train": 0.9, "val": 0.1}, progress=False)
        res["split"].append(time.perf_counter() - t)
        t = time.perf_counter()
        prf.merge_datasets([o / "split" / "train", o / "split" / "val"], o / "merge", progress=False)
        res["merge"].append(time.perf_counter() - t)
        shutil.rmtree(o)
    return res


def run_lerobot(python: str, root: Path, out: Path, drop: int, repeat: int = 1) -> dict[str, list[float]]:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    r = subprocess.run([python, "-c", LEROBOT_SCRIPT, str(root), str(out), str(drop), str(repeat)], capture_output=True,
                       text=True, env=env, timeout=7200)
    line = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    if r.returncode != 0 or not line:
        raise RuntimeError(f"LeRobot failed on {root}:\n{r.stderr[-3000:]}")
    return json.loads(line[0][7:])


def _compare(a, cache: Path, name: str, root: Path, drop: int, results: dict, repeat: int = 1) -> None:
    row = {}
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        row["prf"] = run_prf(root, Path(tmp) / "prf", drop, repeat)
        print(f"{name} prf: {row['prf']}", file=sys.stderr, flush=True)
        if a.lerobot_python:
            row["lerobot"] = run_lerobot(a.lerobot_python, root, Path(tmp) / "lerobot", drop, repeat)
            print(f"{name} lerobot: {row['lerobot']}", file=sys.stderr, flush=True)
    results["datasets"][name] = row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lerobot-python", default=None, help="a Python with lerobot 0.4.4 (skip LeRobot when absent)")
    p.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/prf/bench_edit"))
    p.add_argument("--episodes", type=int, default=2000)
    p.add_argument("--length", type=int, default=150)
    p.add_argument("--append-frames", type=int, default=10_000_000)
    p.add_argument("--codec", default="h264", help="codec of the generated dataset (h264 or av1)")
    p.add_argument("--small-repeat", type=int, default=3,
                   help="runs per tool and operation on aloha_multicam_v30 (median reported; the generated "
                        "dataset runs once: LeRobot takes minutes there)")
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args()
    import prf

    cache = Path(a.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    aloha = REPO / ".." / "shared" / "data" / "lerobot" / "aloha_multicam_v30"
    load = os.getloadavg()
    results: dict = {"load_average_at_start": load, "datasets": {}}
    _compare(a, cache, "aloha_multicam_v30", aloha, 5, results, a.small_repeat)
    gen = generate(cache / f"gen_{a.episodes}x{a.length}_{a.codec}", a.episodes, a.length, a.codec)
    meta = prf.DatasetMeta(gen)
    print(f"generated: {meta.total_episodes} episodes, {meta.total_frames} frames, "
          f"{len(list((gen / 'videos').rglob('*.mp4')))} mp4 shards, {len(list((gen / 'data').rglob('*.parquet')))} "
          f"data files", file=sys.stderr)
    _compare(a, cache, "generated", gen, meta.total_episodes // 2, results)
    # append 10 episodes: to the generated video dataset, and to a --append-frames no-camera dataset
    # (benches/_scale_data.py with per-episode stats; an append never reads or rewrites existing shards,
    # so its cost grows with episodes and files, not with the bytes of video already there)
    from _scale_data import bench_data_dir, generate_nocam

    big = generate_nocam(bench_data_dir() / f"nocam_{a.append_frames}_stats", a.append_frames, episode_stats=True)
    results["append"] = {}
    for name, base in (("generated", gen), (f"nocam_{a.append_frames}", big)):
        ten = cache / f"ten_episodes_{name}"
        if not ten.exists():
            prf.subset_dataset(base, ten, episodes=range(10), progress=False)
        results["append"][name] = _time_append(cache, base, ten)
        print(f"append to {name}: {results['append'][name]}", file=sys.stderr, flush=True)
    # how delete grows with dataset size: one episode out of the --append-frames dataset (prf only;
    # every data file after the cut is rewritten, its index re-based)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        t = time.perf_counter()
        prf.delete_episodes(big, Path(tmp) / "d", [prf.DatasetMeta(big).total_episodes // 2], progress=False)
        results["delete_large"] = {"frames": prf.DatasetMeta(big).total_frames,
                                   "episodes": prf.DatasetMeta(big).total_episodes,
                                   "seconds": time.perf_counter() - t}
    print(f"delete one episode of {big.name}: {results['delete_large']}", file=sys.stderr, flush=True)
    results["load_average_at_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    print("\n| dataset | operation | runs | prf s (median; all) | LeRobot s (median; all) | speed-up |\n"
          "|---|---|---|---|---|---|")
    for name, row in results["datasets"].items():
        for op in ("delete", "split", "merge"):
            ours = row["prf"][op]
            lr = row.get("lerobot", {}).get(op)
            cell = f"{np.median(ours):.3f} ({', '.join(f'{x:.3f}' for x in ours)})"
            if lr:
                lcell = f"{np.median(lr):.2f} ({', '.join(f'{x:.2f}' for x in lr)})"
                print(f"| {name} | {op} | {len(ours)} | {cell} | {lcell} | {np.median(lr) / np.median(ours):.0f}x |")
            else:
                print(f"| {name} | {op} | {len(ours)} | {cell} | - | - |")
    for name, ap in results["append"].items():
        print(f"append 10 episodes ({ap['appended_frames']} frames) to {name} ({ap['frames_before']} frames / "
              f"{ap['episodes_before']} episodes): {ap['seconds']:.2f} s")
    d = results["delete_large"]
    print(f"delete 1 episode of {d['frames']} frames / {d['episodes']} episodes: {d['seconds']:.1f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
