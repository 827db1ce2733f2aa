"""The ``prf`` command line.

    prf info DATASET [--json] [--strict]   describe a dataset (metadata + what the video files hold)
    prf demo [--dataset PATH] [--steps N]   train a small behaviour-cloning policy (needs prf[torch])
    prf cache build DATASET [--json] [--cache-dir D] [--size HxW] | prf cache clean [--json]
    prf convert LOG OUT [--topics T ...] [--start NS] [--end NS] [--json]
                                      robot log (MCAP, ROS 1/2 bag) -> per-topic Parquet (needs prf[ingest])

Exit codes: 0 success, 1 a prf error (bad dataset, decode failure, not a log; the message names the
file), 2 bad usage, 3 an inconsistent dataset (``prf info --strict`` with mismatches), 4 a log
converted only in part (topics or messages skipped for an error, or the file was cut short; the report
says which and why), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .errors import PrfError


def _cmd_info(args: argparse.Namespace) -> int:
    from .info import describe_path, format_text, is_consistent

    d = describe_path(args.dataset)
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        print(format_text(d))
    if args.strict and not is_consistent(d):
        return 3
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        from prf.torch.demo import run_demo
    except ImportError as e:
        print(f"prf demo needs PyTorch: pip install 'prf[torch]' ({e})", file=sys.stderr)
        return 1
    result = run_demo(
        dataset=args.dataset, steps=args.steps, batch_size=args.batch_size, num_workers=args.num_workers,
        seed=args.seed, progress=not args.json,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .ingest import convert_log

    try:
        report = convert_log(args.log, args.out, topics=args.topics, start=args.start, end=args.end,
                             overwrite=args.overwrite, progress=not (args.json or args.quiet))
    except FileNotFoundError as e:
        print(f"prf: error: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"prf convert needs the ingest extra: pip install 'prf[ingest]' ({e})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif not args.quiet:
        print(report.format_text())
    return 0 if report.complete else 4


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low`` (else a usage error, exit 2, naming the value)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must be HxW, e.g. 96x128, got {text!r}") from None
    return h, w


def _cmd_cache(args: argparse.Namespace) -> int:
    from ._open import resolve_source
    from .cache import FrameCache, dataset_videos
    from .dataset import Dataset
    from .errors import MissingFilesError
    from .format import DatasetMeta

    cache = FrameCache(args.cache_dir, size=_parse_size(args.size))
    if args.action == "clean":
        removed = cache.clean()
        print(json.dumps({"removed": [str(p) for p in removed]}) if args.json else f"removed {len(removed)} stale entries")
        return 0
    meta = DatasetMeta(resolve_source(args.dataset))
    try:
        ds = Dataset(meta)
    except MissingFilesError as e:
        if not e.present_episodes:
            raise
        ds = Dataset(meta, episodes=e.present_episodes)
    videos = dataset_videos(ds)
    written = cache.build(videos, progress=not args.json)
    summary = {"dataset": str(meta.root), "cache_dir": str(cache.dir), "videos": len(videos),
               "built": [str(p) for p in written], "entries": [str(cache.entry(v)) for v in videos]}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{len(videos)} video(s) cached in {cache.dir} ({len(written)} built now)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prf", description="Fast, frame-exact LeRobot dataset loading.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"prf {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    info = sub.add_parser("info", help="describe a LeRobot dataset", description="Describe a LeRobot dataset: "
                          "version, robot, fps, episodes, frames, tasks, features, and per camera what the "
                          "video files hold (codec, resolution, pixel format, frames), flagging mismatches "
                          "with info.json.")
    info.add_argument("dataset", help="dataset folder or Hub repo id")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--strict", action="store_true", help="exit with 3 when the files disagree with info.json "
                      "or no episode has all its files")
    info.set_defaults(func=_cmd_info)

    demo = sub.add_parser("demo", help="train a small policy on a dataset (prf's main job)",
                          description="Train a tiny CNN+MLP behaviour-cloning policy (camera + state -> action) "
                          "with prf's loader. Without --dataset, first writes a small synthetic LeRobot v3.0 "
                          "dataset with prf's writer.")
    demo.add_argument("--dataset", default=None, help="dataset folder or Hub repo id (default: synthetic)")
    demo.add_argument("--steps", type=_int_at_least(1), default=200, help="training steps (default 200)")
    demo.add_argument("--batch-size", type=_int_at_least(1), default=32)
    demo.add_argument("--num-workers", type=_int_at_least(0), default=2, help="decode threads (default 2)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", action="store_true", help="print a JSON summary instead of a progress bar")
    demo.set_defaults(func=_cmd_demo)

    conv = sub.add_parser("convert", help="convert a robot log to per-topic Parquet",
                          description="Convert an MCAP file, a ROS 1 .bag or a ROS 2 bag (folder with "
                          "metadata.yaml, or a .db3/.mcap file) to one Parquet file per topic (log_time, "
                          "publish_time in int64 ns, message fields flattened to dotted columns) plus "
                          "metadata.json and stats.json. Topics that cannot be decoded are skipped and "
                          "reported; exit code 4 when anything was skipped for an error.")
    conv.add_argument("log", help="log file or rosbag2 folder")
    conv.add_argument("out", help="output folder (must not exist unless --overwrite)")
    conv.add_argument("--topics", nargs="+", default=None, metavar="TOPIC", help="convert only these topics")
    conv.add_argument("--start", type=int, default=None, help="keep messages with log_time >= START (ns)")
    conv.add_argument("--end", type=int, default=None, help="keep messages with log_time < END (ns)")
    conv.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    conv.add_argument("--json", action="store_true", help="print the conversion report as JSON")
    conv.add_argument("--quiet", action="store_true", help="no progress bar and no report")
    conv.set_defaults(func=_cmd_convert)
    cache = sub.add_parser("cache", help="decoded-frame cache: build or clean",
                           description="Decode every frame of a dataset's videos once into memory-mapped files; "
                           "loaders given cache_dir= then read frames at memory speed. Entries are keyed by each "
                           "video's path, size and mtime, so changed videos are re-cached.")
    # build and clean are sub-commands of their own, so options may come before or after DATASET
    cache_sub = cache.add_subparsers(dest="action", metavar="ACTION")
    cache_sub.required = True
    build = cache_sub.add_parser("build", help="cache a dataset's decoded frames",
                                 description="Decode every frame of a dataset's videos into the cache.")
    build.add_argument("dataset", help="dataset folder or Hub repo id")
    clean = cache_sub.add_parser("clean", help="drop stale entries", description="Remove cache entries whose "
                                 "video changed or is gone.")
    for sp in (build, clean):
        sp.add_argument("--cache-dir", default=None, help="default: $PRF_CACHE/frames or ~/.cache/prf/frames")
        sp.add_argument("--json", action="store_true", help="machine-readable output")
    build.add_argument("--size", default=None, help="store frames resized to HxW (default: as decoded)")
    clean.set_defaults(size=None, dataset=None)
    cache.set_defaults(func=_cmd_cache)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except PrfError as e:
        print(f"prf: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("prf: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
