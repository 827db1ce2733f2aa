"""Packet-index time of a cold epoch over many video files: demuxing every file (no store; what every new
process did before the on-disk store) against reading the stored indexes (issue 10, item 3).

Generates ``--files`` small mp4 files once (cached under ``--data-dir``), then runs each configuration in
a fresh process (so nothing is in prf's in-process cache) that calls ``prf.decode.get_index`` on every file:

- ``demux, no store``: ``PRF_INDEX_CACHE=0``, every file demuxed;
- ``demux + write store``: an empty store, every file demuxed and its index written (the first epoch);
- ``read store``: the store written by the previous run (every later process / cold epoch).

The videos are in the OS page cache in every run (they were just generated or read), so the numbers
compare CPU cost, not disk reads. Usage::

    python benches/bench_index.py --files 2000 --repeat 3 --out bench-results/index.json
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
from fractions import Fraction
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import prf.decode as d
paths = open(sys.argv[1]).read().split("\n")
t1 = time.perf_counter()
frames = sum(d.get_index(p).num_frames for p in paths)
t2 = time.perf_counter()
print(json.dumps({"index_s": t2 - t1, "import_s": t1 - t0, "frames": frames, "stats": d.index_cache_stats()}))
"""


def generate(folder: Path, n: int, frames: int, size: int) -> list[str]:
    import av

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (frames, size, size, 3), dtype=np.uint8)
    for i in range(n):
        p = folder / f"episode_{i:06d}.mp4"
        paths.append(str(p))
        if p.exists():
            continue
        tmp = p.with_suffix(".tmp.mp4")
        with av.open(str(tmp), "w") as c:
            s = c.add_stream("mpeg4", rate=30)
            s.width = s.height = size
            s.pix_fmt = "yuv420p"
            s.options = {"g": "2"}  # LeRobot's GOP
            for k in range(frames):
                vf = av.VideoFrame.from_ndarray(np.roll(base[k], i, axis=1), format="rgb24")
                vf.pts, vf.time_base = k, Fraction(1, 30)
                for pk in s.encode(vf):
                    c.mux(pk)
            for pk in s.encode():
                c.mux(pk)
        os.replace(tmp, p)
    return paths


def run(list_file: Path, store: str) -> dict:
    env = {**os.environ, "PRF_INDEX_CACHE": store}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(list_file)], capture_output=True, text=True, env=env,
                         check=True)
    res = json.loads(out.stdout)
    res["process_s"] = time.perf_counter() - t0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--frames", type=int, default=30, help="frames per file")
    ap.add_argument("--size", type=int, default=64, help="frame height and width")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data-dir", default=None, help="where the generated videos are kept "
                    "(default: $PRF_CACHE/bench/index-videos-FILESxFRAMES)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    base = Path(os.environ.get("PRF_CACHE", Path.home() / ".cache" / "prf")) / "bench"
    folder = Path(a.data_dir) if a.data_dir else base / f"index-videos-{a.files}x{a.frames}-{a.size}"
    t0 = time.perf_counter()
    paths = generate(folder, a.files, a.frames, a.size)
    gen_s = time.perf_counter() - t0
    work = Path(tempfile.mkdtemp(prefix="prf-bench-index-"))
    try:
        list_file = work / "paths.txt"
        list_file.write_text("\n".join(paths))
        rows: dict[str, list[dict]] = {"demux, no store": [], "demux + write store": [], "read store": []}
        for r in range(a.repeat):
            store = work / f"store-{r}"
            rows["demux, no store"].append(run(list_file, "0"))
            rows["demux + write store"].append(run(list_file, str(store)))
            rows["read store"].append(run(list_file, str(store)))
            store_bytes = sum(f.stat().st_size for f in store.iterdir())
        result = {"files": a.files, "frames_per_file": a.frames, "size": a.size, "generate_s": gen_s,
                  "store_bytes": store_bytes, "runs": rows}
        print(f"{a.files} files x {a.frames} frames ({a.size}x{a.size} mpeg4), median of {a.repeat} runs, "
              f"each a fresh process; store on disk {store_bytes / 2**20:.1f} MiB")
        print("| configuration | index time, all files (s) | files/s | demuxed | read from store | in-memory indexes (MiB) |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, rs in rows.items():
            s = float(np.median([x["index_s"] for x in rs]))
            st = rs[-1]["stats"]
            print(f"| {name} | {s:.2f} | {a.files / s:,.0f} | {st['builds']} | {st['disk_hits']} | "
                  f"{st['memory_bytes'] / 2**20:.1f} |")
        if a.out:
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
