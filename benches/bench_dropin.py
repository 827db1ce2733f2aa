"""The drop-in side by side with LeRobot: ``prf.torch.LeRobotDataset`` and LeRobot 0.4.4's own
``LeRobotDataset`` in the same loop, ``torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True,
num_workers=2)``, one run, the same machine (only the import differs).

    python benches/bench_dropin.py --lerobot-python ../.lerobot-ref-venv/bin/python \\
        --out bench-results/dropin.json --markdown bench-results/dropin.md

Every configuration runs in its own process with the oracle's ``delta_timestamps`` (every camera
[-0.1, 0] s, observation.state [-0.1, 0] s, action 16 steps); a monitor samples the RSS and PSS of
its process tree (the DataLoader's workers included). Reported: samples/s, time to first batch,
p50/p95/p99 batch latency, peak RSS/PSS, and the drop-in's samples/s as a multiple of LeRobot's with
the same video backend. ``--runner`` is the per-configuration process (internal).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "lerobot"
DATASETS = ["so101_wrist_v30", "aloha_multicam_v30"]


def _runner(argv: list[str]) -> None:
    """One configuration: the LeRobot-style loop with ``--runner prf`` or ``--runner lerobot``."""
    sys.path.insert(0, str(HERE))
    from _measure import emit, measure, runner_args

    ap = runner_args("pyav", ["pyav", "torchcodec"])
    ap.add_argument("--runner", choices=["prf", "lerobot"], required=True)
    a = ap.parse_args(argv)
    import torch

    if a.runner == "prf":
        from prf.torch import LeRobotDataset
    else:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    dts = json.loads(a.delta_timestamps)
    t0 = time.perf_counter()
    ds = LeRobotDataset("bench/" + os.path.basename(a.root.rstrip("/")), root=a.root,
                        episodes=json.loads(a.episodes) if a.episodes else None, delta_timestamps=dts,
                        video_backend=a.backend)
    open_s = time.perf_counter() - t0
    frames_per_sample = sum(len(dts.get(c, [0])) for c in ds.meta.camera_keys)
    dl = torch.utils.data.DataLoader(ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers,
                                     generator=torch.Generator().manual_seed(a.seed))
    res = measure(lambda: iter(dl), a.batches, episodes_of=lambda b: b["episode_index"],
                  frames_per_sample=frames_per_sample)
    res.update(open_s=open_s, frames_per_sample=frames_per_sample)
    emit(res)


def _median(runs: list[dict]) -> dict:
    ok = sorted((r for r in runs if "error" not in r), key=lambda r: r["samples_per_s"])
    if not ok:
        return runs[-1]
    res = dict(ok[len(ok) // 2])
    res["samples_per_s_all"] = [r["samples_per_s"] for r in ok]
    return res


def bench_dataset(name: str, args, backends: list[str]) -> dict:
    from bench_loader import run_config

    root = Path(args.data_root) / name
    oj = json.loads((root / "oracle.json").read_text())
    common = ["--root", str(root), "--delta-timestamps", json.dumps(oj["delta_timestamps"]),
              "--batches", str(args.batches), "--workers", "2", "--batch-size", "32"]
    if oj.get("episodes_filter"):
        common += ["--episodes", json.dumps(oj["episodes_filter"])]
    out = {"dataset": name, "delta_timestamps": oj["delta_timestamps"], "runs": {}}
    for be in backends:
        for who, python in (("LeRobot 0.4.4", args.lerobot_python), ("prf drop-in", sys.executable)):
            if python is None:
                continue
            cmd = [python, str(Path(__file__).resolve()), "--runner", "lerobot" if python == args.lerobot_python
                   else "prf", *common, "--backend", be]
            res = _median([run_config(cmd, args.timeout) for _ in range(args.repeat)])
            out["runs"][f"{who} {be}"] = res
            print(f"[{name}] {who} {be}: {res.get('error') or '%.0f samples/s' % res['samples_per_s']}",
                  file=sys.stderr)
        base = out["runs"].get(f"LeRobot 0.4.4 {be}", {}).get("samples_per_s")
        mine = out["runs"].get(f"prf drop-in {be}", {})
        if base and "samples_per_s" in mine:
            mine["x_lerobot_same_backend"] = mine["samples_per_s"] / base
    return out


def markdown(results: list[dict], meta: dict) -> str:
    from bench_loader import _exception_line

    lines = [f"Machine: {meta['machine']}. Command: `{meta['command']}`", ""]
    for res in results:
        lines += [f"### {res['dataset']}", "",
                  "| loop (DataLoader, 2 workers, batch 32, shuffle) | samples/s | x LeRobot (same backend) | "
                  "first batch s | p50 / p95 / p99 ms | peak RSS MB | peak PSS MB |", "|---|---|---|---|---|---|---|"]
        for label, r in res["runs"].items():
            if "error" in r:
                lines.append(f"| {label} | fails: `{_exception_line(r['error'])[:90]}` ||||||")
                continue
            x = r.get("x_lerobot_same_backend")
            lines.append(f"| {label} | {r['samples_per_s']:.0f} | {'%.1f' % x if x else '-'} | "
                         f"{r['first_batch_s']:.2f} | {r['p50_ms']:.0f} / {r['p95_ms']:.0f} / {r['p99_ms']:.0f} | "
                         f"{r.get('peak_rss_mb', 0):.0f} | {r.get('peak_pss_mb', 0):.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--runner" in argv:
        _runner(argv)
        return 0
    sys.path.insert(0, str(HERE))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="*", default=DATASETS)
    ap.add_argument("--data-root", default=str(DEFAULT_DATA))
    ap.add_argument("--lerobot-python", default=os.environ.get("PRF_LEROBOT_PYTHON"),
                    help="python of the LeRobot 0.4.4 venv (default: $PRF_LEROBOT_PYTHON)")
    ap.add_argument("--backends", nargs="+", default=None, choices=["pyav", "torchcodec"],
                    help="video backends, each run by both (default: pyav, and torchcodec where installed)")
    ap.add_argument("--batches", type=int, default=20, help="timed batches per configuration (after one warm-up)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per configuration; the median is reported")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--out", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args(argv)
    if args.backends is None:
        from prf.decode import torchcodec_available

        args.backends = ["pyav"] + (["torchcodec"] if torchcodec_available() else [])
    meta = {"machine": f"{platform.node()}: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
            "command": "python " + " ".join([os.path.relpath(__file__, REPO)] + argv)}
    results = [bench_dataset(n, args, args.backends) for n in args.datasets]
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
