"""Memory soak (issue #18): memory after every epoch over many epochs, prf's loader and prf.torch in a
torch DataLoader beside LeRobot 0.4.4's own DataLoader, each configuration in its own process; and
the many-files bench: one epoch over a generated dataset of thousands of small mp4 files.

Soak setting: batch 32, shuffled, 2 workers, ``delta_timestamps`` a window ``[-0.1, 0.0]`` s on one
camera (``observation.images.top`` for aloha, ``observation.images.wrist`` for so101) and a 16-step
action chunk at ``1/fps``; every camera of the dataset decoded. Configurations:

- ``prf``: ``ds.loader(32, shuffle=True, num_workers=2)`` (worker threads; persistent across epochs).
- ``prf-torch``: ``prf.torch.Dataset`` in ``DataLoader(batch_size=32, shuffle=True, num_workers=2,
  persistent_workers=True)``.
- ``lerobot``: LeRobot's ``LeRobotDataset`` in the same ``DataLoader`` (run with ``--lerobot-python``).

Memory: ``rss`` of the main process, and ``pss`` / ``uss`` summed over the main process and its
DataLoader worker processes (psutil). The goal (issue #18): memory after the last epoch within 10% of
memory after epoch 5 (RSS for ``prf``, summed PSS for the DataLoader configurations).

Many files (``--many-files N``): generates (and caches under ``--cache``) a v3.0 dataset of N episodes,
one 32x32 mp4 of a few frames each, iterates one epoch with 2 workers and reports the peak of open
decoders (backend counters where the backend keeps them, else counted), packet-index entries held,
open file descriptors and RSS.

    python benches/bench_soak.py --epochs 100 --lerobot-python ../.lerobot-ref-venv/bin/python \\
        --lerobot-epochs 20 --out bench-results/soak.json
    python benches/bench_soak.py --many-files 10000 --out bench-results/many_files.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = (HERE.parent / ".." / "shared" / "data" / "lerobot").resolve()
WINDOW_CAMERA = {"aloha_multicam_v30": "observation.images.top", "so101_wrist_v30": "observation.images.wrist"}
CONFIGS = ["prf", "prf-torch", "lerobot"]


def delta_timestamps(root: Path, camera: str) -> dict:
    fps = json.loads((root / "meta" / "info.json").read_text())["fps"]
    return {camera: [-0.1, 0.0], "action": [i / fps for i in range(16)]}


def run_config(python: str, config: str, root: Path, epochs: int, args: argparse.Namespace,
               on_row=None) -> list[dict]:
    dt = delta_timestamps(root, WINDOW_CAMERA.get(root.name, "observation.images.top"))
    cmd = [python, str(HERE / "_soak_runner.py"), "--config", config, "--root", str(root),
           "--delta-timestamps", json.dumps(dt), "--epochs", str(epochs), "--workers", str(args.workers),
           "--batch-size", str(args.batch_size)]
    if args.max_batches:
        cmd += ["--max-batches", str(args.max_batches)]
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    rows: list[dict] = []
    t0 = time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as p:
        for line in p.stdout:
            if line.startswith("PRF_SOAK "):
                row = json.loads(line[len("PRF_SOAK "):])
                rows.append(row)
                if on_row is not None:  # results so far reach --out after every epoch (a long run may be cut)
                    on_row(rows)
                if args.verbose:
                    print(f"  {root.name} {config} epoch {row['epoch']}: rss {row['rss_mb']:.0f} MB, "
                          f"pss {row['pss_mb']:.0f} MB, {row['seconds']:.1f} s", flush=True)
        err = p.stderr.read()
    if p.returncode != 0:
        print(f"{config} on {root.name} failed ({p.returncode}):\n{err[-3000:]}", file=sys.stderr)
    print(f"{root.name} {config}: {len(rows) - 1} epochs in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def summarize(rows: list[dict], config: str) -> dict:
    ep = {r["epoch"]: r for r in rows}
    last = max(ep) if ep else 0
    key = "rss_mb" if config == "prf" else "pss_mb"
    at5 = ep.get(5)
    out = {"epochs": last, "metric": "rss" if config == "prf" else "pss (main + workers)"}
    for name in ("rss_mb", "pss_mb", "rss_all_mb"):
        out[f"{name}_1"] = ep[1][name] if 1 in ep else None
        out[f"{name}_5"] = at5[name] if at5 else None
        out[f"{name}_last"] = ep[last][name] if last else None
    if at5 and last >= 5:
        out["growth_5_to_last"] = ep[last][key] / at5[key] - 1.0
        out["within_10pct"] = abs(out["growth_5_to_last"]) <= 0.10
    # single epochs are noisy (what is in flight or not yet collected when measured): medians too
    early = [ep[e][key] for e in range(3, 8) if e in ep]
    late = [ep[e][key] for e in range(max(1, last - 4), last + 1) if e in ep]
    if early and late and last >= 10:
        out["median_e3_7"] = statistics.median(early)
        out["median_last5"] = statistics.median(late)
        out["growth_median"] = out["median_last5"] / out["median_e3_7"] - 1.0
    out["max_after_e5"] = max((ep[e][key] for e in ep if e >= 5), default=None)
    secs = [r["seconds"] for r in rows if r["epoch"] > 0]
    out["s_per_epoch"] = sum(secs) / len(secs) if secs else None
    return out


def soak(args: argparse.Namespace) -> dict:
    results: dict = {"setting": {"batch_size": args.batch_size, "workers": args.workers, "epochs": args.epochs,
                                 "lerobot_epochs": args.lerobot_epochs or args.epochs,
                                 "max_batches": args.max_batches}, "runs": {}}
    for name in args.datasets:
        root = DATA / name
        for config in args.configs:
            key = f"{name}/{config}"

            def on_row(rows, key=key, config=config):
                results["runs"][key] = {"rows": rows, "summary": summarize(rows, config), "partial": True}
                if args.out:
                    _write(args.out, results)
            if config == "lerobot":
                if not args.lerobot_python:
                    print("lerobot: skipped (give --lerobot-python)")
                    continue
                rows = run_config(args.lerobot_python, config, root, args.lerobot_epochs or args.epochs, args,
                                  on_row)
            else:
                rows = run_config(sys.executable, config, root, args.epochs, args, on_row)
            results["runs"][f"{name}/{config}"] = {"rows": rows, "summary": summarize(rows, config)}
            if args.out:
                _write(args.out, results)
    print_table(results)
    return results


def print_table(results: dict) -> None:
    print()
    print("| dataset | config | epochs | s/epoch | RSS main e1 / e5 / last (MB) | PSS all e5 / last (MB) | "
          "metric | growth e5 -> last | median e3-7 -> last 5 | max after e5 (MB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key, run in results["runs"].items():
        s = summarize(run["rows"], key.split("/")[1])
        ds, config = key.split("/")

        def f(v):
            return "-" if v is None else f"{v:.0f}"

        def pct(v):
            return "-" if v is None else f"{v:+.1%}"

        print(f"| {ds} | {config} | {s['epochs']} | {s['s_per_epoch'] or float('nan'):.1f} | "
              f"{f(s['rss_mb_1'])} / {f(s['rss_mb_5'])} / {f(s['rss_mb_last'])} | {f(s['pss_mb_5'])} / "
              f"{f(s['pss_mb_last'])} | {s['metric']} | {pct(s.get('growth_5_to_last'))} | "
              f"{f(s.get('median_e3_7'))} -> {f(s.get('median_last5'))} ({pct(s.get('growth_median'))}) | "
              f"{f(s.get('max_after_e5'))} |")


# ---- many files ---------------------------------------------------------------------------------------------
def make_many_files(root: Path, n_files: int, frames: int = 6, size: int = 32) -> None:
    """A v3.0 dataset of ``n_files`` episodes, one ``size x size`` mp4 of ``frames`` frames each."""
    if (root / "meta" / "info.json").is_file():
        return
    import numpy as np

    import prf

    rng = np.random.default_rng(0)

    def episodes():
        for e in range(n_files):
            base = rng.integers(0, 255, size=(1, 1, 1, 3), dtype=np.uint8)
            img = np.broadcast_to(base, (frames, size, size, 3)).copy()
            img[:, :, :, 0] = (np.arange(frames, dtype=np.uint8) * 20)[:, None, None]
            yield {"observation.state": rng.standard_normal((frames, 2)).astype(np.float32),
                   "action": rng.standard_normal((frames, 2)).astype(np.float32),
                   "observation.image": img, "task": "reach"}

    features = {"observation.state": {"dtype": "float32", "shape": [2]}, "action": {"dtype": "float32", "shape": [2]},
                "observation.image": {"dtype": "video", "shape": [size, size, 3]}}
    # a video shard per episode: the writer starts a new mp4 once the current one passed this size
    prf.write_lerobot_dataset(root, features, episodes(), fps=10, video_codec="h264", video_files_size_in_mb=1e-6,
                              progress=True)


def many_files(args: argparse.Namespace) -> dict:
    cache = Path(args.cache).expanduser()
    root = cache / f"many_files_{args.many_files}"
    t0 = time.perf_counter()
    make_many_files(root, args.many_files)
    gen_s = time.perf_counter() - t0
    cmd = [sys.executable, "-c", _MANY_FILES_CHILD, str(root), str(args.workers), str(args.batch_size)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(out.returncode)
    res = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
    res["generate_s"] = gen_s
    res["files"] = args.many_files
    print(json.dumps(res, indent=2))
    return res


_MANY_FILES_CHILD = r'''
import json, os, sys, threading, time
import psutil, prf
from prf.decode import _index
from prf.loading import _backend
root, workers, bs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
proc = psutil.Process()
t0 = time.perf_counter()
ds = prf.open_dataset(root)
open_s = time.perf_counter() - t0
backend = ds.backend
peak = {"decoders_open": 0, "index_entries": 0, "fds": 0, "rss_mb": 0.0}
def sample():
    n_dec = _backend.stats(backend)["decoders_open"]
    peak["decoders_open"] = max(peak["decoders_open"], n_dec)
    peak["index_entries"] = max(peak["index_entries"], _index.index_cache_stats()["memory_entries"])
    peak["fds"] = max(peak["fds"], proc.num_fds())
    peak["rss_mb"] = max(peak["rss_mb"], proc.memory_info().rss / 2**20)
rss_open = proc.memory_info().rss / 2**20
t0 = time.perf_counter()
n = 0
with ds.loader(bs, shuffle=True, num_workers=workers) as loader:
    for b in loader:
        n += 1
        if n % 20 == 0:
            sample()
    sample()
epoch_s = time.perf_counter() - t0
after = {"fds_after_close": proc.num_fds(), "rss_after_close_mb": proc.memory_info().rss / 2**20,
         "prf_threads_after_close": [t.name for t in threading.enumerate() if t.name.startswith("prf-")]}
print(json.dumps({"open_s": open_s, "rss_after_open_mb": rss_open, "epoch_s": epoch_s, "batches": n,
                  "frames": len(ds), "backend": backend.name, "max_open_per_thread": getattr(backend, "max_open", None),
                  "backend_stats": _backend.stats(backend), "peak": peak, **after}))
'''


def _write(path: str, results: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--lerobot-epochs", type=int, default=0, help="epochs for LeRobot (default: --epochs)")
    ap.add_argument("--datasets", nargs="+", default=list(WINDOW_CAMERA))
    ap.add_argument("--configs", nargs="+", default=CONFIGS, choices=CONFIGS)
    ap.add_argument("--lerobot-python", default=os.environ.get("PRF_LEROBOT_PYTHON"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-batches", type=int, default=0, help="batches per epoch (0: the whole epoch)")
    ap.add_argument("--many-files", type=int, default=0, help="run the many-files bench with this many mp4 files")
    ap.add_argument("--cache", default="~/.cache/prf/bench", help="where generated datasets are kept")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--summarize", nargs="+", default=None, help="print the table of earlier --out JSON files")
    args = ap.parse_args()
    if args.summarize:
        runs: dict = {}
        for path in args.summarize:
            runs.update(json.loads(Path(path).read_text())["runs"])
        print_table({"runs": runs})
        return
    if args.many_files:
        res = many_files(args)
        if args.out:
            _write(args.out, res)
        return
    soak(args)


if __name__ == "__main__":
    main()
