"""Side-by-side loader benchmark: prf (each backend, 0 and 2 workers, uniform and episode-pool shuffle,
with and without the decoded-frame cache) against LeRobot's own ``LeRobotDataset`` + ``DataLoader``
(torchcodec and pyav backends), and the sequential decode limit, in one run on the same machine.

    pip install -e ".[all,bench]"
    bash benches/setup_lerobot.sh                       # LeRobot 0.4.4 reference venv (once)
    python benches/bench_loader.py --lerobot-python ../.lerobot-ref-venv/bin/python \\
        --out bench-results/loader.json --markdown bench-results/loader.md

Every configuration runs in its own process (batch size 32, 2 workers unless said, the oracle's
``delta_timestamps``: every camera [-0.1, 0] s, observation.state [-0.1, 0] s, action 16 steps), and a
monitor samples the RSS and PSS of its whole process tree. Reported per configuration: samples/s,
camera frames delivered/s, time to first batch, p50/p95/p99 batch latency, peak RSS and PSS, distinct
episodes per batch; and ratios against LeRobot (torchcodec, 2 workers) and against the decode limit
(one sequential pass decoding every frame of the dataset's videos, PyAV, one process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "lerobot"
CAMERA_DATASETS = ["pusht_sim_v30", "pusht_sim_v21", "so101_wrist_v30", "aloha_multicam_v30", "g1_cam_high_v21_subset"]


def _tree_memory(pid: int, stop: threading.Event, out: dict) -> None:
    import psutil

    peak_rss = peak_pss = 0
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    k = 0
    while not stop.is_set():
        procs = [root]
        try:
            procs += root.children(recursive=True)
        except psutil.Error:
            pass
        rss = pss = 0
        for p in procs:
            try:
                if k % 5 == 0:
                    mi = p.memory_full_info()
                    rss += mi.rss
                    pss += mi.pss
                else:
                    rss += p.memory_info().rss
            except psutil.Error:
                pass
        peak_rss = max(peak_rss, rss)
        if k % 5 == 0:
            peak_pss = max(peak_pss, pss)
        k += 1
        stop.wait(0.05)
    out["peak_rss_mb"] = peak_rss / 2**20
    out["peak_pss_mb"] = peak_pss / 2**20


def run_config(cmd: list[str], timeout: float) -> dict:
    """Run one configuration's process, watch its memory, return its result line (or the error)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "SVT_LOG": "1"})
    mem: dict = {}
    stop = threading.Event()
    mon = threading.Thread(target=_tree_memory, args=(proc.pid, stop, mem), daemon=True)
    mon.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        stop.set()
        return {"error": f"timed out after {timeout}s"}
    stop.set()
    mon.join()
    for line in out.splitlines():
        if line.startswith("PRF_BENCH_RESULT "):
            res = json.loads(line[len("PRF_BENCH_RESULT "):])
            res.update(mem)
            return res
    return {"error": (err or out)[-1500:]}


def decode_limit(root: Path, episodes, max_frames: int = 4000) -> dict:
    """Frames/s of one sequential pass decoding every frame of the dataset's videos to RGB (PyAV, FFmpeg's
    default decoder threads, one process); at most ``max_frames`` frames per camera are timed."""
    import av
    from av.video.reformatter import VideoReformatter

    import prf
    from prf.decode._malloc import tune_malloc

    tune_malloc()  # the same allocator settings as prf's loader, so the limit is not understated
    ds = prf.open_dataset(root, episodes=episodes)
    frames = 0
    t0 = time.perf_counter()
    for cam in ds.cameras:
        n_cam = 0
        for path in ds._video_files[cam]:
            with av.open(path) as c:
                s = c.streams.video[0]
                r = VideoReformatter()
                for f in c.decode(s):
                    r.reformat(f, format="rgb24").to_ndarray()
                    n_cam += 1
                    if n_cam >= max_frames:
                        break
            if n_cam >= max_frames:
                break
        frames += n_cam
    el = time.perf_counter() - t0
    return {"frames": frames, "seconds": el, "frames_per_s": frames / el}


def configs(args, torchcodec_ok: bool, lerobot_python: str | None, lerobot_version: str = "") -> list[tuple[str, str, list[str]]]:
    out = []
    backends = ["pyav"] + (["torchcodec"] if torchcodec_ok else [])
    for be in backends:
        for w in (0, 2):
            for sampler in ("uniform", "pool"):
                out.append(("prf", f"prf {be} w{w} {sampler}", ["--backend", be, "--workers", str(w), "--sampler", sampler]))
    best = "torchcodec" if torchcodec_ok else "pyav"
    for sampler in ("uniform", "pool"):
        out.append(("prf-cache", f"prf cache(warm) w2 {sampler}", ["--backend", best, "--workers", "2", "--sampler", sampler]))
    if lerobot_python:
        for be in ("torchcodec", "pyav"):
            out.append(("lerobot", f"LeRobot{lerobot_version} {be} w2", ["--backend", be, "--workers", "2"]))
    return out


def bench_dataset(name: str, args, lerobot_python: str | None, torchcodec_ok: bool) -> dict:
    root = Path(args.data_root) / name
    oj = json.loads((root / "oracle.json").read_text())
    version = json.loads((root / "meta" / "info.json").read_text())["codebase_version"]
    lerobot_version = ""
    if version.startswith("v2"):  # LeRobot 0.4.x reads only v3.0; v2.x needs LeRobot 0.3.3
        lerobot_python, lerobot_version = args.lerobot_v21_python, " 0.3.3"
    dts = json.dumps(oj["delta_timestamps"])
    episodes = oj.get("episodes_filter")
    common = ["--root", str(root), "--delta-timestamps", dts, "--batches", str(args.batches)]
    if episodes:
        common += ["--episodes", json.dumps(episodes)]
    result = {"dataset": name, "delta_timestamps": oj["delta_timestamps"], "episodes": episodes, "runs": {}}
    result["decode_limit"] = decode_limit(root, episodes)
    print(f"[{name}] decode limit {result['decode_limit']['frames_per_s']:.0f} frames/s", file=sys.stderr)
    cache_dir = tempfile.mkdtemp(prefix="prf-bench-cache-")
    import prf

    t0 = time.perf_counter()
    cached = prf.open_dataset(root, episodes=episodes).with_frame_cache(cache_dir, progress=False)
    result["cache_build_s"] = time.perf_counter() - t0
    # "warm": the entries are written back and in the OS page cache before any timed run
    os.sync()
    for video in cached.backend.cache.dir.glob("*.npy"):
        with open(video, "rb") as f:
            while f.read(1 << 24):
                pass
    for kind, label, extra in configs(args, torchcodec_ok, lerobot_python, lerobot_version):
        runs = []
        for _ in range(args.repeat):
            if kind == "lerobot":
                cmd = [lerobot_python, str(HERE / "_lerobot_runner.py"), *common, *extra]
            else:
                cmd = [sys.executable, str(HERE / "_prf_runner.py"), *common, *extra, "--pool-size", str(args.pool_size)]
                if kind == "prf-cache":  # fast: time more batches so the run is not a fraction of a second
                    cmd += ["--cache-dir", cache_dir]
                    cmd[cmd.index("--batches") + 1] = str(args.batches * 4)
            runs.append(run_config(cmd, args.timeout))
        ok = [r for r in runs if "error" not in r]
        if ok:
            ok.sort(key=lambda r: r["samples_per_s"])
            res = dict(ok[len(ok) // 2])  # the median run
            res["samples_per_s_all"] = [r["samples_per_s"] for r in ok]
        else:
            res = runs[-1]
        result["runs"][label] = res
        msg = res.get("error") or f"{res['samples_per_s']:.0f} samples/s"
        print(f"[{name}] {label}: {msg}", file=sys.stderr)
    base = result["runs"].get(f"LeRobot{lerobot_version} torchcodec w2", {}).get("samples_per_s")
    limit = result["decode_limit"]["frames_per_s"]
    for label, r in result["runs"].items():
        if "error" in r:
            continue
        if base:
            r["x_lerobot_torchcodec_w2"] = r["samples_per_s"] / base
        r["frames_vs_decode_limit"] = r["frames_per_s"] / limit
    return result


def _exception_line(stderr: str) -> str:
    """The last ``SomeError: message`` line of a traceback (warnings printed after it are skipped)."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", ln)]
    return (raised or lines or ["?"])[-1]


def markdown(results: list[dict], meta: dict) -> str:
    lines = [f"Machine: {meta['machine']}. Command: `{meta['command']}`", ""]
    for res in results:
        lines += [f"### {res['dataset']}", "",
                  f"Decode limit (sequential PyAV pass, one process): {res['decode_limit']['frames_per_s']:.0f} "
                  f"frames/s. Cache build (every frame once): {res['cache_build_s']:.1f} s.", "",
                  "| configuration | samples/s | x LeRobot tc w2 | frames/s | x decode limit | first batch s | "
                  "p50 / p95 / p99 ms | peak RSS MB | peak PSS MB | episodes/batch |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for label, r in res["runs"].items():
            if "error" in r:
                lines.append(f"| {label} | fails: `{_exception_line(r['error'])[:90]}` |||||||||")
                continue
            x = r.get("x_lerobot_torchcodec_w2")
            lines.append(
                f"| {label} | {r['samples_per_s']:.0f} | {'%.1f' % x if x else '-'} | {r['frames_per_s']:.0f} | "
                f"{r['frames_vs_decode_limit']:.2f} | {r['first_batch_s']:.2f} | "
                f"{r['p50_ms']:.0f} / {r['p95_ms']:.0f} / {r['p99_ms']:.0f} | {r.get('peak_rss_mb', 0):.0f} | "
                f"{r.get('peak_pss_mb', 0):.0f} | {r['distinct_episodes_per_batch']:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="*", default=CAMERA_DATASETS)
    ap.add_argument("--data-root", default=str(DEFAULT_DATA))
    ap.add_argument("--lerobot-python", default=None, help="python of the LeRobot 0.4.4 venv (benches/setup_lerobot.sh)")
    ap.add_argument("--lerobot-v21-python", default=None,
                    help="python of a LeRobot 0.3.3 venv for the v2.1 datasets (V21=1 benches/setup_lerobot.sh DIR)")
    ap.add_argument("--batches", type=int, default=40, help="timed batches per configuration (after one warm-up)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration; the median is reported")
    ap.add_argument("--pool-size", type=int, default=4, help="episodes per pool of the episode-pool shuffle")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--markdown", default=None, help="write the tables as Markdown here")
    args = ap.parse_args(argv)
    from prf.decode import torchcodec_available

    meta = {"machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
            "command": "python " + " ".join([os.path.relpath(__file__, REPO)] + (argv if argv is not None else sys.argv[1:]))}
    results = [bench_dataset(n, args, args.lerobot_python, torchcodec_available()) for n in args.datasets]
    md = markdown(results, meta)
    print(md)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
