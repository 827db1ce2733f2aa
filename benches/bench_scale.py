"""Scale benchmark: opening and reading large generated LeRobot v3.0 datasets, prf against LeRobot
0.4.4, side by side in one run, every measurement in a fresh process.

    python benches/bench_scale.py --lerobot-python ../.lerobot-ref-venv/bin/python \\
        --out bench-results/scale.json --markdown bench-results/scale.md

Datasets (generated once and cached under ``$PRF_BENCH_DATA``, default ``~/.cache/prf/bench``; see
``_scale_data.py``): ``nocam_1m`` and ``nocam_10m`` (1M / 10M frames, ~100 frames per episode,
``observation.state`` and ``action`` ``float32 [14]``, no cameras; parquet written with pyarrow in the
layout LeRobot 0.4.4 reads) and ``cam64_300k`` (300k frames, one 64x64 camera in many mp4 shards,
written by prf's writer).

Per dataset and library:
- cold open: the OS page cache dropped (``/proc/sys/vm/drop_caches``, needs root; else reported as
  "first open after clearing the library's cache") and the library's own cache removed (prf's Arrow
  cache in ``$PRF_CACHE``, LeRobot's Hugging Face ``datasets`` cache in ``$HF_DATASETS_CACHE``, both
  pointed at a folder of this run);
- warm open (the folder opened before, a new process), RSS after import and after open, random
  ``ds[i]`` items/s, loader samples/s and first-batch time (prf: ``ds.loader(32, shuffle=True,
  num_workers=2)``; LeRobot: ``DataLoader(batch_size=32, shuffle=True, num_workers=2)``); on the camera
  dataset with windows (camera ``[-0.1, 0]`` s, an action chunk of 16).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _scale_data import bench_data_dir, generate_camera, generate_nocam  # noqa: E402

CAM = "observation.images.cam"
DATASETS = {
    "nocam_1m": dict(kind="nocam", frames=1_000_000, dts={}, items=20000, batches=100),
    "nocam_10m": dict(kind="nocam", frames=10_000_000, dts={}, items=20000, batches=100),
    "cam64_300k": dict(kind="cam", frames=300_000, dts={CAM: [-0.1, 0.0], "action": [i / 30 for i in range(16)]},
                       items=1000, batches=60),
}


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def run(cmd: list[str], env: dict, timeout: float) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=HERE.parent)
    for line in p.stdout.splitlines():
        if line.startswith("PRF_BENCH_RESULT "):
            return json.loads(line[len("PRF_BENCH_RESULT "):])
    return {"error": (p.stderr or p.stdout)[-1500:]}


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def bench(name: str, root: Path, spec: dict, args, work: Path) -> dict:
    out: dict = {"dataset": name, "frames": spec["frames"], "delta_timestamps": spec["dts"], "runs": {}}
    impls = [("prf", sys.executable)] + ([("lerobot", args.lerobot_python)] if args.lerobot_python else [])
    impls = [(i, py) for i, py in impls if i in args.libs.split(",")]
    for impl, py in impls:
        cache = work / f"{impl}-{name}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PRF_CACHE": str(cache), "HF_DATASETS_CACHE": str(cache / "hf"),
               "HF_HUB_OFFLINE": "1", "SVT_LOG": "1"}
        base = [py, str(HERE / "_scale_runner.py"), "--impl", impl, "--root", str(root),
                "--delta-timestamps", json.dumps(spec["dts"])]
        if impl == "prf" and args.prf_backend:
            base += ["--backend", args.prf_backend]
        if impl == "lerobot" and args.lerobot_backend:
            base += ["--backend", args.lerobot_backend]
        shutil.rmtree(cache, ignore_errors=True)
        dropped = drop_caches() if not args.no_drop_caches else False
        cold = run(base + ["--open-only"], env, args.timeout)
        cold["page_cache_dropped"] = dropped
        cold["load"] = load()
        warm = run(base + ["--items", str(spec["items"]), "--batches", str(spec["batches"])], env, args.timeout)
        warm["load"] = load()
        out["runs"][impl] = {"cold": cold, "warm": warm}
        print(f"[{name}] {impl}: cold {cold.get('open_s', cold.get('error'))} warm {warm.get('open_s', warm.get('error'))}",
              file=sys.stderr)
        shutil.rmtree(cache, ignore_errors=True)
    return out


def markdown(results: list[dict]) -> str:
    def f(v, fmt="{:.2f}"):
        return "-" if v is None else fmt.format(v)

    lines = ["| dataset | library | cold open s | warm open s | RSS import MB | RSS after open MB (+ over import) | "
             "ds[i] items/s | loader samples/s | first batch s | load (1/5 min) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for impl, runs in r["runs"].items():
            c, w = runs["cold"], runs["warm"]
            if "error" in w:
                lines.append(f"| {r['dataset']} | {impl} | error: {w['error'][-200:]!r} |")
                continue
            lines.append(
                f"| {r['dataset']} | {impl} | {f(c.get('open_s'))} | {f(w.get('open_s'))} | {f(w.get('rss_import_mb'), '{:.0f}')} | "
                f"{f(w.get('rss_open_mb'), '{:.0f}')} (+{f(w['rss_open_mb'] - w['rss_import_mb'], '{:.0f}')}) | "
                f"{f(w.get('items_per_s'), '{:.0f}')} | {f(w.get('loader_samples_per_s'), '{:.0f}')} | "
                f"{f(w.get('first_batch_s'))} | {w.get('load')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lerobot-python", default=None, help="python of a LeRobot 0.4.4 venv (side by side)")
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--data-dir", default=None, help="where generated datasets are cached (default $PRF_BENCH_DATA)")
    ap.add_argument("--prf-backend", default=None, help="prf decode backend (default auto)")
    ap.add_argument("--lerobot-backend", default="pyav",
                    help="LeRobot's video_backend (default pyav: its torchcodec fails on these AV1 shards here)")
    ap.add_argument("--libs", default="prf,lerobot")
    ap.add_argument("--no-drop-caches", action="store_true")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    data = Path(args.data_dir) if args.data_dir else bench_data_dir()
    work = data / "_run"
    results = []
    for name in args.datasets.split(","):
        spec = DATASETS[name]
        t0 = time.perf_counter()
        root = (generate_nocam if spec["kind"] == "nocam" else generate_camera)(data / name, spec["frames"])
        print(f"[{name}] data ready in {time.perf_counter() - t0:.1f}s: {root}", file=sys.stderr)
        results.append(bench(name, root, spec, args, work))
    doc = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
           "results": results}
    md = markdown(results)
    print(md)
    for path, text in ((args.out, json.dumps(doc, indent=2)), (args.markdown, md)):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)


if __name__ == "__main__":
    main()
