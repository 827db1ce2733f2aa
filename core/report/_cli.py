"""``prf report``, ``prf view``, ``prf profile``: the argparse parsers and their handlers.

    prf report PATH [--episodes 0,3] [--out report.html] [--frames 8]
    prf view PATH [--episode E] [--out file.rrd] [--spawn]
    prf profile PATH [--batches N] [--batch-size B] [--num-workers W] [--output torch] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._argtypes import int_at_least, int_list


def _episodes_arg(text: str) -> list[int]:
    out = int_list(text)
    if not out:
        raise argparse.ArgumentTypeError("--episodes selects no episode")
    return out


def _missing_extra(cmd: str, e: ImportError) -> int:
    print(f"prf {cmd} needs the report extra: pip install 'prf[report]' ({e})", file=sys.stderr)
    return 1


def _cmd_report(args: argparse.Namespace) -> int:
    from .html import write_report

    try:
        out = write_report(args.path, args.out, episodes=args.episodes, frames=args.frames,
                           validate=not args.no_validate, scores=not args.no_scores)
    except ImportError as e:
        return _missing_extra("report", e)
    print(out)
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    from .recording import write_recording

    try:
        out = write_recording(args.path, args.out, episode=args.episode, spawn=args.spawn)
    except ImportError as e:
        return _missing_extra("view", e)
    if out is not None:
        print(out)
    return 0


def _cmd_profile(args: argparse.Namespace) -> int:
    from .._open import open_dataset
    from ..loading.profile import format_text

    dt: dict[str, Any] | None = None
    if args.window:
        ds0 = open_dataset(args.path, cameras=[])
        fps = ds0.fps
        dt = {k: [i / fps for i in range(args.window)] for k in ("action",) if k in ds0.meta.features}
    ds = open_dataset(args.path, delta_timestamps=dt, backend=args.backend)
    with ds.loader(args.batch_size, shuffle=args.shuffle, seed=0, num_workers=args.num_workers,
                   cache_dir=args.cache_dir, output=args.output) as loader:
        result = loader.profile(args.batches)
    result["dataset"] = str(args.path)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_text(result))
    return 0


def add_commands(sub: Any) -> None:
    """Add ``report``, ``view`` and ``profile`` to ``prf``'s sub-command parsers."""
    r = sub.add_parser("report", help="a self-contained HTML report of a dataset or converted log",
                       description="Write one HTML file that opens offline (no server, no network): the "
                       "summary of `prf info`, a sortable episode table (length, task, quality scores, "
                       "validation findings), and per episode the state/action plots per joint (named from "
                       "info.json) with timestamp gaps marked, and a strip of evenly spaced frames per camera. "
                       "A converted log (`prf convert` output): one plot per numeric topic column, image "
                       "topics as strips.")
    r.add_argument("path", help="dataset folder, or a folder written by `prf convert`")
    r.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    r.add_argument("--episodes", type=_episodes_arg, default=None,
                   help="comma-separated episode indices to detail (default: the first 5)")
    r.add_argument("--frames", type=int_at_least(1), default=8, help="frames per camera strip (default 8)")
    r.add_argument("--no-validate", action="store_true", help="skip prf validate's findings")
    r.add_argument("--no-scores", action="store_true", help="skip prf score's quality scores")
    r.set_defaults(func=_cmd_report)

    v = sub.add_parser("view", help="write a Rerun recording (.rrd) of an episode or a converted log",
                       description="Log an episode to a Rerun recording: cameras as images, state/action as "
                       "scalars per joint on the timelines frame_index and timestamp, the task as text. A "
                       "converted log: every topic on the log_time timeline. Needs prf[report] (rerun-sdk).")
    v.add_argument("path", help="dataset folder, or a folder written by `prf convert`")
    v.add_argument("--episode", type=int_at_least(0), default=None,
                   help="episode index (default: the first episode)")
    v.add_argument("--out", default=None, help="the .rrd file to write (default: <dataset name>_ep<E>.rrd)")
    v.add_argument("--spawn", action="store_true", help="also open the Rerun viewer (where one can run)")
    v.set_defaults(func=_cmd_view)

    p = sub.add_parser("profile", help="where the loader spends its time",
                       description="Run N batches through prf's loader with stage timers on and print time "
                       "per stage (parquet rows, planning, decode per camera, transforms, normalize, waiting "
                       "for workers), frames decoded vs delivered, decoder/cache hits and samples/s.")
    p.add_argument("path", help="dataset folder or Hub repo id")
    p.add_argument("--batches", type=int_at_least(1), default=20, help="batches to time (default 20)")
    p.add_argument("--batch-size", type=int_at_least(1), default=8)
    p.add_argument("--num-workers", type=int_at_least(0), default=2)
    p.add_argument("--window", type=int_at_least(0), default=0,
                   help="an action window of this many steps (delta_timestamps), default none")
    p.add_argument("--shuffle", action="store_true")
    p.add_argument("--backend", default="pyav")
    p.add_argument("--cache-dir", default=None, help="serve frames from a decoded-frame cache there")
    p.add_argument("--output", default=None, help="an adapter (torch, mlx, jax, keras): its conversion is timed "
                   "as stage 'convert'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_profile)
