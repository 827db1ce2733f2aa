"""The ``prf`` command line.

    prf info DATASET [--json] [--strict]   describe a dataset (metadata + what the video files hold)
    prf demo [--dataset PATH] [--steps N]   train a small behaviour-cloning policy (needs prf[torch])
    prf cache build DATASET [--json] [--cache-dir D] [--size HxW] | prf cache clean [--json]
    prf convert LOG OUT [--topics T ...] [--start NS] [--end NS] [--json]
                                      robot log (MCAP, ROS 1/2 bag) -> per-topic Parquet (needs prf[ingest])
    prf convert LOG [LOG ...] OUT --ray ADDRESS | prf score PATH [PATH ...] --ray ADDRESS   as Ray jobs
    prf query PATH "SQL" [--json | --csv]   SQL over frames/episodes/tasks/scores (needs prf[query])
    prf validate PATH [--json]        integrity checks before training (exit 1 when an error is found)
    prf score PATH [--json]           per-episode quality scores
    prf similar PATH --episode E --frame F [-k 10] [--json]   nearest frames by state/action
    prf edit delete|split|merge|subset|append ...   edit datasets, videos remuxed (see prf edit -h)
    prf upgrade SRC OUT               v2.0/v2.1 -> v3.0
    prf export SRC --episode E OUT    episodes as mp4 per camera + npz + metadata.json
    prf report PATH [--episodes 0,3] [--out F.html] | prf view PATH [--episode E] [--out F.rrd] | prf profile PATH [--json]
    prf record mqtt://HOST:PORT --topic T [--camera KEY=TOPIC] [--fps N] OUT   record MQTT (needs prf[record])

Exit codes: 0 success, 1 a prf error (bad dataset, decode failure, not a log; the message names the
file), 2 bad usage, 3 an inconsistent dataset (``prf info --strict``: ``prf validate`` found an error), 4 a log
converted only in part (topics or messages skipped for an error, or the file was cut short; the report
says which and why), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from ._argtypes import int_at_least as _int_at_least, int_list as _int_list
from .errors import PrfError
from .record._cli import add_commands as _add_record_commands
from .report._cli import add_commands as _add_report_commands


def _cmd_info(args: argparse.Namespace) -> int:
    from ._open import resolve_source
    from .format import DatasetMeta
    from .info import describe, format_strict, format_text, is_consistent, strict_report

    root = resolve_source(args.dataset)
    try:
        d = describe(DatasetMeta(root))
    except PrfError:
        if not (args.strict and root.is_dir()):
            raise
        d = None  # unreadable metadata: --strict reports validate's meta.readable error below
    verdict = None
    if args.strict:
        try:
            verdict = strict_report(root)
        except ImportError as e:  # no DuckDB: info's own checks decide, and say so
            print(f"prf info --strict: {e}; only info's own checks ran (pip install 'prf[query]' for prf "
                  f"validate's)", file=sys.stderr)
    if args.json:
        out = dict(d or {"root": str(root)})
        if verdict is not None:
            out["strict"] = verdict
        print(json.dumps(_json_ready(out), indent=2))
    else:
        if d is not None:
            print(format_text(d))
        if verdict is not None:
            print(format_strict(verdict))
    if not args.strict:
        return 0
    if verdict is not None:
        return 0 if verdict["ok"] else 3
    return 0 if d is not None and is_consistent(d) else 3


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._plugins import load_command  # the torch adapter's command (entry-point group prf.commands)

    try:
        run_demo = load_command("demo")
    except ImportError as e:  # PluginError: not installed, or PyTorch missing; names what to install
        print(f"prf demo: {e}", file=sys.stderr)
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

    if args.ray:
        from .ray import _cli

        try:
            reports = _cli.convert(args)
        except (FileNotFoundError, ImportError) as e:
            print(f"prf: error: {e}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps([r.to_dict() for r in reports], indent=2))
        elif not args.quiet:
            print("\n\n".join(r.format_text() for r in reports))
        return 0 if all(r.complete for r in reports) else 4
    if len(args.log) > 1:
        print("prf convert: several logs need --ray ADDRESS (or convert them one at a time)", file=sys.stderr)
        return 2
    try:
        report = convert_log(args.log[0], args.out, topics=args.topics, start=args.start, end=args.end,
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
    from .decode.cache import FrameCache, dataset_videos
    from .dataset import Dataset
    from .errors import MissingFilesError
    from .format import DatasetMeta

    cache = FrameCache(args.cache_dir, size=_parse_size(args.size))
    if args.action == "clean":
        from .decode import clean_index_cache

        removed, indexes = cache.clean(), clean_index_cache()
        print(json.dumps({"removed": [str(p) for p in removed], "removed_indexes": [str(p) for p in indexes]})
              if args.json else f"removed {len(removed)} stale entries and {len(indexes)} stale packet indexes")
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


# ---- query, validate, score, similar (prf.query) ------------------------------------------------------
def _json_ready(value):
    """Arrow rows -> JSON values: NaN/inf become null, bytes become their length's placeholder."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)  # dates, times, decimals


def _print_table(table, fmt: str) -> None:
    """Print a pyarrow.Table as a JSON array of row objects, CSV, or aligned text."""
    rows = [_json_ready(r) for r in table.to_pylist()]
    if fmt == "json":
        print(json.dumps(rows, indent=1))
    elif fmt == "csv":
        import csv

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(table.column_names)
        for r in rows:
            w.writerow([json.dumps(v) if isinstance(v, (list, dict)) else ("" if v is None else v) for v in r.values()])
    else:
        names = table.column_names
        cells = [[("" if r[n] is None else str(r[n]))[:60] for n in names] for r in rows]
        widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
        print("  ".join(n.ljust(w) for n, w in zip(names, widths)))
        for c in cells:
            print("  ".join(v.ljust(w) for v, w in zip(c, widths)))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _out_format(args: argparse.Namespace) -> str:
    return "json" if args.json else "csv" if getattr(args, "csv", False) else "text"


def _cmd_query(args: argparse.Namespace) -> int:
    from .query import sql

    try:
        table = sql(args.path, args.sql)
    except ImportError as e:
        print(f"prf query: {e}", file=sys.stderr)
        return 1
    _print_table(table, _out_format(args))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .query import validate

    if not Path(args.path).is_dir():
        print(f"prf validate: {args.path}: no such dataset folder", file=sys.stderr)
        return 2
    report = validate(args.path, tolerance_s=args.tolerance_s, videos=not args.no_videos)
    if args.json:
        print(json.dumps(_json_ready(report.to_dict()), indent=1))
    else:
        print(report.format_text())
    return 0 if report.ok else 1


def _cmd_score(args: argparse.Namespace) -> int:
    from .query import score_episodes

    if args.ray:
        from .ray import _cli

        try:
            table = _cli.score(args)
        except ImportError as e:
            print(f"prf: error: {e}", file=sys.stderr)
            return 1
        _print_table(table, _out_format(args))
        return 0
    if len(args.path) > 1:
        print("prf score: several datasets need --ray ADDRESS", file=sys.stderr)
        return 2
    table = score_episodes(args.path[0], cameras=None if not args.no_cameras else [], samples=args.samples)
    _print_table(table, _out_format(args))
    return 0


def _cmd_similar(args: argparse.Namespace) -> int:
    from .query import SimilarityIndex

    index = SimilarityIndex(args.path, by=tuple(args.by), exact=args.exact, threads=args.threads)
    table = index.query(args.episode, args.frame, args.k)
    _print_table(table, _out_format(args))
    return 0


def _add_query_commands(sub) -> None:
    q = sub.add_parser("query", help="SQL over a dataset's frames, episodes, tasks, scores (DuckDB)",
                       description="Run one SQL query (DuckDB's dialect) over views of a LeRobot dataset read in "
                       "place: frames (every non-camera column), episodes (length, tasks, video spans, stats/*), "
                       "tasks, scores; or over a converted log (one view per topic, and topics). Needs prf[query].")
    q.add_argument("path", help="dataset folder or converted-log folder")
    q.add_argument("sql", help='the query, e.g. "SELECT episode_index, count(*) FROM frames GROUP BY 1"')
    fmt = q.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print a JSON array of row objects")
    fmt.add_argument("--csv", action="store_true", help="print CSV with a header row")
    q.set_defaults(func=_cmd_query)

    v = sub.add_parser("validate", help="integrity checks a dataset needs before training",
                       description="Check a LeRobot dataset: info.json totals, declared features vs parquet schema, "
                       "fps vs video streams, index/frame_index continuity, timestamps on the fps grid, a video "
                       "frame for every row, missing and orphan files, stats present and consistent. Exit 0 when "
                       "no error is found, 1 when one is, 2 on bad usage.")
    v.add_argument("path", help="dataset folder")
    v.add_argument("--json", action="store_true", help='print {"ok": bool, "findings": [...]}')
    v.add_argument("--tolerance-s", type=float, default=1e-4, help="timestamp tolerance in seconds (default 1e-4)")
    v.add_argument("--no-videos", action="store_true", help="skip the checks that read the video files")
    v.set_defaults(func=_cmd_validate)

    s = sub.add_parser("score", help="per-episode quality scores",
                       description="One row per episode: state_variance, action_magnitude, motion_smoothness (jerk), "
                       "idle_fraction, dropped/duplicated frames, gripper events, diversity, and per camera "
                       "sharpness and frozen fraction (sampled frames). See prf.score_episodes for formulas.")
    s.add_argument("path", nargs="+", help="dataset folder (several with --ray)")
    _ray_argument(s, "the scoring (one task per dataset)")
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print a JSON array of row objects")
    fmt.add_argument("--csv", action="store_true", help="print CSV with a header row")
    s.add_argument("--no-cameras", action="store_true", help="skip the camera scores (no video decoding)")
    s.add_argument("--samples", type=int, default=8, help="camera frames sampled per episode (default 8)")
    s.set_defaults(func=_cmd_score)

    m = sub.add_parser("similar", help="nearest frames by normalized state/action",
                       description="The k frames nearest to (episode, frame) by z-normalized features, from an "
                       "approximate nearest-neighbour index (usearch) cached under $PRF_CACHE/similar; --exact "
                       "searches exhaustively.")
    m.add_argument("path", help="dataset folder")
    m.add_argument("--episode", type=int, required=True)
    m.add_argument("--frame", type=int, required=True, help="frame_index within the episode")
    m.add_argument("-k", type=int, default=10, help="neighbours (default 10)")
    m.add_argument("--by", nargs="+", default=["observation.state"], help="features (default observation.state)")
    m.add_argument("--exact", action="store_true", help="exhaustive search instead of the index")
    m.add_argument("--threads", type=int, default=1, help="threads building the index when it is not cached "
                   "(default 1: the same graph every build; 0: all cores)")
    m.add_argument("--json", action="store_true", help="print a JSON array of row objects")
    m.set_defaults(func=_cmd_similar)


# ---- editing: prf edit delete/split/merge/subset/append, prf upgrade, prf export -------------------
def _fractions(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME=FRACTION,..., got {text!r}") from None
    return out


def _edit_result(args: argparse.Namespace, summary: dict) -> int:
    if args.json:
        print(json.dumps(_json_ready(summary), indent=2))
    else:
        print(f"wrote {summary.get('output', '')}", file=sys.stderr)
    return 0


def _cmd_edit(args: argparse.Namespace) -> int:
    from . import edit

    progress = not args.quiet
    kw = {"progress": progress}
    if args.edit == "delete":
        eps = args.query if args.query is not None else args.episodes
        if eps is None:
            print("prf edit delete: error: give --episodes or --query", file=sys.stderr)
            return 2
        s = edit.delete_episodes(args.src, args.out, eps, overwrite=args.overwrite, compact=args.compact, **kw)
    elif args.edit == "split":
        splits = args.fractions if args.fractions is not None else {
            name: _int_list(v) for name, _, v in (p.partition("=") for p in args.episodes)}
        s = edit.split_dataset(args.src, args.out_dir, splits, seed=args.seed, overwrite=args.overwrite,
                               compact=args.compact, **kw)
    elif args.edit == "merge":
        s = edit.merge_datasets(args.sources, args.out, overwrite=args.overwrite, compact=args.compact, **kw)
    elif args.edit == "subset":
        s = edit.subset_dataset(args.src, args.out, episodes=args.episodes, features=args.features,
                                drop_features=args.drop, overwrite=args.overwrite, compact=args.compact, **kw)
    elif args.edit == "append":
        s = edit.append_episodes(args.dst, args.src, episodes=args.episodes, compact=args.compact, **kw)
    else:  # pragma: no cover - argparse restricts the choices
        raise SystemExit(2)
    return _edit_result(args, s)


def _cmd_upgrade(args: argparse.Namespace) -> int:
    from . import edit

    s = edit.upgrade_dataset(args.src, args.out, episodes=args.episodes, overwrite=args.overwrite,
                             compact=args.compact, progress=not args.quiet)
    return _edit_result(args, s)


def _cmd_export(args: argparse.Namespace) -> int:
    from . import edit

    s = edit.export_episodes(args.src, args.out, args.episode, stop_on_error=args.stop_on_error,
                             overwrite=args.overwrite, progress=not args.quiet)
    _edit_result(args, s)
    return 1 if s["failed"] else 0


def _add_edit_commands(sub) -> None:
    def common(p, compact: bool = True) -> None:
        p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        if compact:
            p.add_argument("--compact", action="store_true",
                           help="float columns with BYTE_STREAM_SPLIT + zstd (smaller parquet, LeRobot reads it)")

    ed = sub.add_parser("edit", help="delete / split / merge / subset / append datasets (videos remuxed)",
                        description="Edit LeRobot datasets without re-encoding videos. Every output is LeRobot "
                        "v3.0, built in a temporary folder beside it and renamed at the end.")
    es = ed.add_subparsers(dest="edit", metavar="OPERATION")
    es.required = True
    d = es.add_parser("delete", help="a copy without some episodes")
    d.add_argument("src")
    d.add_argument("out")
    d.add_argument("--episodes", type=_int_list, default=None, help="comma-separated episode indices, e.g. 1,5")
    d.add_argument("--query", default=None, help='SQL selecting the episodes to delete ("SELECT episode_index '
                   'FROM episodes WHERE ...", needs prf[query])')
    d.add_argument("--overwrite", action="store_true")
    common(d)
    sp = es.add_parser("split", help="one dataset per split under OUT_DIR")
    sp.add_argument("src")
    sp.add_argument("out_dir")
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--fractions", type=_fractions, default=None, help="e.g. train=0.9,val=0.1")
    g.add_argument("--episodes", nargs="+", default=None, metavar="NAME=E,E,...", help="e.g. train=0,1,2 val=3")
    sp.add_argument("--seed", type=int, default=None, help="shuffle episodes before taking fractions")
    sp.add_argument("--overwrite", action="store_true")
    common(sp)
    m = es.add_parser("merge", help="concatenate datasets with the same features and fps")
    m.add_argument("out")
    m.add_argument("sources", nargs="+")
    m.add_argument("--overwrite", action="store_true")
    common(m)
    su = es.add_parser("subset", help="keep some episodes and/or features (cameras)")
    su.add_argument("src")
    su.add_argument("out")
    su.add_argument("--episodes", type=_int_list, default=None)
    fg = su.add_mutually_exclusive_group()
    fg.add_argument("--features", type=lambda t: [v for v in t.split(",") if v], default=None,
                    help="comma-separated features to keep")
    fg.add_argument("--drop", type=lambda t: [v for v in t.split(",") if v], default=None,
                    help="comma-separated features to drop")
    su.add_argument("--overwrite", action="store_true")
    common(su)
    a = es.add_parser("append", help="append SRC's episodes to DST in place (one revision, locked)")
    a.add_argument("dst")
    a.add_argument("src")
    a.add_argument("--episodes", type=_int_list, default=None, help="only these episodes of SRC")
    common(a)
    ed.set_defaults(func=_cmd_edit)

    up = sub.add_parser("upgrade", help="convert a v2.0/v2.1 dataset to v3.0",
                        description="LeRobot's v2.1 -> v3.0 conversion: episodes concatenated into shards, "
                        "from_timestamp offsets, episodes_stats flattened into stats/* columns; videos remuxed.")
    up.add_argument("src")
    up.add_argument("out")
    up.add_argument("--episodes", type=_int_list, default=None, help="convert only these (e.g. a partial download)")
    up.add_argument("--overwrite", action="store_true")
    common(up)
    up.set_defaults(func=_cmd_upgrade)

    ex = sub.add_parser("export", help="episodes as mp4 per camera + npz + metadata.json",
                        description="Export episodes to OUT/episode_XXXXXX/: a trimmed mp4 per camera (remuxed), "
                        "sensors.npz / actions.npz / other.npz with timestamps_ns, metadata.json. Exit 1 when an "
                        "episode failed (the others are still exported unless --stop-on-error).")
    ex.add_argument("src")
    ex.add_argument("--episode", type=_int_list, required=True, help="episode index or comma-separated indices")
    ex.add_argument("out")
    ex.add_argument("--stop-on-error", action="store_true")
    ex.add_argument("--overwrite", action="store_true")
    common(ex, compact=False)
    ex.set_defaults(func=_cmd_export)


def _ray_argument(parser: argparse.ArgumentParser, what: str) -> None:
    from .ray._cli import add_ray_argument  # imports no Ray

    add_ray_argument(parser, what)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prf", description="Fast, frame-exact LeRobot dataset loading.")
    from ._version import __version__

    p.add_argument("--version", action="version", version=f"prf {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    info = sub.add_parser("info", help="describe a LeRobot dataset", description="Describe a LeRobot dataset: "
                          "version, robot, fps, episodes, frames, tasks, features, and per camera what the "
                          "video files hold (codec, resolution, pixel format, frames), flagging mismatches "
                          "with info.json.")
    info.add_argument("dataset", help="dataset folder or Hub repo id")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--strict", action="store_true", help="also run prf validate's checks (video ones "
                      "included) and exit with 3 exactly when they find an error (listed under 'strict'); "
                      "needs prf[query]")
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
    conv.add_argument("log", nargs="+", help="log file or rosbag2 folder (several with --ray)")
    conv.add_argument("out", help="output folder (must not exist unless --overwrite)")
    conv.add_argument("--topics", nargs="+", default=None, metavar="TOPIC", help="convert only these topics")
    conv.add_argument("--start", type=int, default=None, help="keep messages with log_time >= START (ns)")
    conv.add_argument("--end", type=int, default=None, help="keep messages with log_time < END (ns)")
    conv.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    conv.add_argument("--json", action="store_true", help="print the conversion report as JSON")
    conv.add_argument("--quiet", action="store_true", help="no progress bar and no report")
    _ray_argument(conv, "the conversion (one task per log, into OUT/<log name>)")
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
    clean = cache_sub.add_parser("clean", help="drop stale entries (and stale stored packet indexes)",
                                 description="Remove cache entries and stored packet indexes whose video changed or is gone.")
    for sp in (build, clean):
        sp.add_argument("--cache-dir", default=None, help="default: $PRF_CACHE/frames or ~/.cache/prf/frames")
        sp.add_argument("--json", action="store_true", help="machine-readable output")
    build.add_argument("--size", default=None, help="store frames resized to HxW (default: as decoded)")
    clean.set_defaults(size=None, dataset=None)
    cache.set_defaults(func=_cmd_cache)
    _add_query_commands(sub)
    _add_edit_commands(sub)
    _add_report_commands(sub)  # report, view, profile (prf.report._cli)
    _add_record_commands(sub)  # record (prf.record._cli)
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
