"""``prf.validate``: the integrity checks a LeRobot dataset needs before training.

Each finding carries a check id (:data:`CHECKS`), a severity (``"error"``: training on it gives wrong
or failing samples; ``"warning"``: suspicious but usable), the file and episode concerned, and a
message. Frame-level checks run in DuckDB over the data files in place (``prf.sql``'s ``frames``
view); statistics are compared per data file with NumPy (memory bounded by one record batch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from ..errors import MetadataError, PrfError, StatsError, VideoError
from ..format import DatasetMeta

#: check id -> what it checks.
CHECKS: dict[str, str] = {
    "meta.readable": "meta/info.json and the episodes/tasks tables parse (prf.DatasetMeta)",
    "info.totals": "info.json total_episodes / total_frames / total_tasks equal the episodes and tasks tables "
                   "and the frame rows of the data files",
    "files.missing": "every episode's data parquet and camera videos exist",
    "files.orphan": "no data parquet or video under data/ and videos/ that no episode refers to (warning)",
    "schema.features": "each declared non-video feature is a column of every data file, with the declared dtype "
                       "and shape; undeclared columns are a warning",
    "video.fps": "each video stream's average frame rate equals info.json fps (within 0.01 frames/s)",
    "video.shape": "each video stream's width and height equal the camera feature's declared shape",
    "index.continuity": "per episode: rows == length, frame_index is 0..length-1, index is "
                        "dataset_from_index..dataset_to_index-1 in file order, episodes' index ranges are "
                        "contiguous, every row's episode_index and task_index exist in the tables",
    "timestamps.grid": "every timestamp is within tolerance_s of frame_index / fps",
    "video.frames": "every row has a video frame within tolerance_s of from_timestamp + timestamp (packet "
                    "index, by demuxing), and the episode's span holds at least length frames",
    "stats.present": "meta/stats.json (v2.1: episodes_stats.jsonl) has min/max/mean/std of every numeric "
                     "feature (warning)",
    "stats.consistent": "stats.json min/max/mean match the data (equal when every episode is present, data "
                        "within [min, max] otherwise); per-episode stats (v3.0 stats/* columns, v2.1 "
                        "episodes_stats.jsonl) min/max/mean/std/count match each episode's rows",
}


@dataclass(frozen=True)
class Finding:
    """One problem: ``check`` id (a key of :data:`CHECKS`), ``severity`` ("error" | "warning"),
    ``message``, and the ``file`` (relative to the root) and ``episode`` it concerns (or ``None``)."""

    check: str
    severity: str
    message: str
    file: str | None = None
    episode: int | None = None


@dataclass
class ValidationReport:
    """The result of :func:`validate`: ``ok`` is ``True`` when no finding is an error."""

    root: str
    findings: list[Finding] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    def to_dict(self) -> dict[str, Any]:
        """``{"ok", "root", "checks", "findings": [{check, severity, file, episode, message}, ...]}``."""
        return {"ok": self.ok, "root": self.root, "checks": self.checks,
                "findings": [asdict(f) for f in self.findings]}

    def format_text(self) -> str:
        head = f"{self.root}: {'ok' if self.ok else 'ERRORS'} ({len(self.errors)} error(s), " \
               f"{len(self.findings) - len(self.errors)} warning(s); {len(self.checks)} checks)"
        lines = [head]
        for f in self.findings:
            where = ", ".join(x for x in (f.file, None if f.episode is None else f"episode {f.episode}") if x)
            lines.append(f"  {f.severity:<7} {f.check:<17} {where + ': ' if where else ''}{f.message}")
        return "\n".join(lines)


class _Ctx:
    def __init__(self, meta: DatasetMeta, tolerance_s: float):
        self.meta = meta
        self.tol = tolerance_s
        self.findings: list[Finding] = []

    def add(self, check: str, severity: str, message: str, file: Any = None, episode: int | None = None) -> None:
        if file is not None:
            p = Path(file)
            try:
                file = p.relative_to(self.meta.root).as_posix()
            except ValueError:
                file = str(p)
        self.findings.append(Finding(check, severity, message, file, None if episode is None else int(episode)))


def validate(path: str | Path | DatasetMeta, *, tolerance_s: float = 1e-4, videos: bool = True) -> ValidationReport:
    """Run every check of :data:`CHECKS` on the dataset at ``path``.

    Args:
        path: dataset root (or its :class:`prf.DatasetMeta`).
        tolerance_s: how far (seconds) a timestamp may be off the fps grid and a video frame from the
            time a row asks for, as LeRobot's ``tolerance_s``.
        videos: run the checks that demux the video files (``video.*``).

    Returns:
        A :class:`ValidationReport` (never raises for a defect of the dataset: unreadable metadata is
        a ``meta.readable`` error finding).

    Raises:
        MetadataError: ``path`` is not a directory.
        ImportError: DuckDB is not installed (``pip install 'prf[query]'``).
    """
    if isinstance(path, DatasetMeta):
        meta = path
    else:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise MetadataError(f"{root}: not a directory (expected a LeRobot dataset root)")
        try:
            meta = DatasetMeta(root)
        except PrfError as e:
            rep = ValidationReport(str(root), checks=["meta.readable"])
            rep.findings.append(Finding("meta.readable", "error", str(e), "meta"))
            return rep
    ctx = _Ctx(meta, tolerance_s)
    checks = ["meta.readable", "files.missing", "files.orphan", "info.totals", "schema.features",
              "index.continuity", "timestamps.grid", "stats.present", "stats.consistent"]
    _check_files(ctx)
    from ._sql import connect

    try:
        con = connect(meta)
    except MetadataError as e:  # a table DatasetMeta reads lazily (v2.1 episodes_stats.jsonl) is malformed
        ctx.add("meta.readable", "error", str(e), "meta")
        return ValidationReport(str(meta.root), ctx.findings, checks)
    try:
        _check_totals(ctx, con)
        _check_schema(ctx)
        _check_index(ctx, con)
        _check_timestamps(ctx, con)
        if videos and meta.video_keys:
            checks += ["video.fps", "video.shape", "video.frames"]
            _check_videos(ctx, con)
    finally:
        con.close()
    _check_stats(ctx)
    return ValidationReport(str(meta.root), ctx.findings, checks)


# ---- checks -----------------------------------------------------------------------------------------
def _check_files(ctx: _Ctx) -> None:
    meta = ctx.meta
    referenced: set[Path] = set()
    for e in meta.episodes:
        files = meta.episode_files(e)
        referenced.update(files)
        missing = [p for p in files if not p.is_file()]
        if missing:
            shown = ", ".join(p.relative_to(meta.root).as_posix() for p in missing)
            ctx.add("files.missing", "error", f"{len(missing)} of the episode's {len(files)} files are missing: {shown}",
                    missing[0], e)
    for sub, pattern in (("data", "*.parquet"), ("videos", "*.mp4")):
        d = meta.root / sub
        if d.is_dir():
            for p in sorted(d.rglob(pattern)):
                if p not in referenced:
                    ctx.add("files.orphan", "warning", "no episode of the episodes table refers to this file", p)


def _check_totals(ctx: _Ctx, con) -> None:
    meta, info = ctx.meta, ctx.meta.info
    rows = con.execute("SELECT count(*) FROM frames").fetchall()[0][0]
    present = [e for e in meta.episodes if all(p.is_file() for p in meta.episode_files(e))]
    expect = {"total_episodes": len(meta.episodes), "total_frames": meta.total_frames, "total_tasks": len(meta.tasks)}
    for k, want in expect.items():
        if k in info and int(info[k]) != want:
            ctx.add("info.totals", "error", f"info.json {k} is {info[k]}, the {'tasks' if k == 'total_tasks' else 'episodes'} "
                    f"table gives {want}", meta.root / "meta" / "info.json")
    if len(present) == len(meta.episodes) and rows != meta.total_frames:
        ctx.add("info.totals", "error", f"the data files hold {rows} frame rows, the episodes table {meta.total_frames}",
                meta.root / "data")


_DTYPES = {"float32": "float", "float64": "double", "int64": "int64", "int32": "int32", "int16": "int16",
           "int8": "int8", "uint8": "uint8", "bool": "bool", "string": "string"}


def _check_schema(ctx: _Ctx) -> None:
    meta = ctx.meta
    files = _present_files(meta)
    declared = {k: f for k, f in meta.features.items() if not f.is_video}
    for f in files:
        try:
            schema = pq.read_schema(f)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the finding
            ctx.add("schema.features", "error", f"cannot read the parquet schema ({e})", f)
            continue
        eps = _episodes_of_file(meta, f)
        ep = eps[0] if len(eps) == 1 else None
        for key, feat in declared.items():
            if key not in schema.names:
                ctx.add("schema.features", "error", f"declared feature {key!r} is not a column "
                        f"(columns: {schema.names})", f, ep)
                continue
            t = schema.field(key).type
            if feat.dtype == "image":
                continue  # struct {bytes, path} or binary; read by the image decoder
            elem, size = t, None
            if hasattr(t, "value_type"):
                elem = t.value_type
                size = getattr(t, "list_size", None)
            want = _DTYPES.get(feat.dtype)
            if want is not None and str(elem) != want:
                ctx.add("schema.features", "error", f"feature {key!r} is declared {feat.dtype}, the column holds {t}", f, ep)
            n = int(np.prod(feat.shape)) if feat.shape else 1
            if size is not None and size != n:
                ctx.add("schema.features", "error", f"feature {key!r} is declared shape {list(feat.shape)}, the column "
                        f"holds {size} values per row", f, ep)
            if size is None and hasattr(t, "value_type"):  # variable-length list: check the lengths
                col = pq.read_table(f, columns=[key]).column(key)
                import pyarrow.compute as pc

                lens = pc.list_value_length(col)
                lo, hi = pc.min(lens).as_py(), pc.max(lens).as_py()
                if lo is not None and (lo != n or hi != n):
                    ctx.add("schema.features", "error", f"feature {key!r} is declared shape {list(feat.shape)}, rows "
                            f"hold {lo}..{hi} values", f, ep)
            if size is None and not hasattr(t, "value_type") and n != 1:
                ctx.add("schema.features", "error", f"feature {key!r} is declared shape {list(feat.shape)}, the "
                        f"column holds scalars ({t})", f, ep)
        extra = [c for c in schema.names if c not in meta.features and not c.startswith("__")]
        if extra:
            ctx.add("schema.features", "warning", f"columns not declared in info.json: {extra}", f, ep)


def _episodes_of_file(meta: DatasetMeta, f: Path) -> list[int]:
    t = meta.episode_table  # the table's columns: no Episode record per episode and file
    files = [meta.path(p) for p in t.data_files]
    hit = [i for i, p in enumerate(files) if p == f]
    return t.index[np.isin(t.data_file, hit)].astype(int).tolist()


def _check_index(ctx: _Ctx, con) -> None:
    meta = ctx.meta
    per = {r[0]: r[1:] for r in con.execute(
        "SELECT episode_index, count(*), min(frame_index), max(frame_index), count(DISTINCT frame_index), "
        "min(index), max(index), count(DISTINCT index) FROM frames GROUP BY 1").fetchall()}
    known = set(meta.episodes)
    for e, (n, *_rest) in sorted(per.items()):
        if e not in known:
            ctx.add("index.continuity", "error", f"{n} frame rows have episode_index {e}, which the episodes table "
                    f"does not list (orphan rows)", None, e)
    # the index column in file order: index - file_row_number is constant per file (v3.0: starting at the
    # file's first index; v2.x: frame_index == file_row_number in each episode's file)
    present = _present_files(meta)
    order = con.execute(
        "SELECT filename, count(DISTINCT index - file_row_number) AS k, min(episode_index) "
        "FROM read_parquet([" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in present)
        + "], filename=true, file_row_number=true, union_by_name=true) GROUP BY 1").fetchall() if present else []
    for fname, k, e in order:
        if k != 1:
            ctx.add("index.continuity", "error", "rows are not in index order inside the file (the index column "
                    "does not rise by 1 per row)", fname, None)
    prev_to = None
    for e, ep in meta.episodes.items():
        if ep.dataset_to_index - ep.dataset_from_index != ep.length:
            ctx.add("index.continuity", "error", f"dataset_to_index - dataset_from_index = "
                    f"{ep.dataset_to_index - ep.dataset_from_index}, length = {ep.length}", None, e)
        if prev_to is not None and ep.dataset_from_index != prev_to:
            ctx.add("index.continuity", "error", f"dataset_from_index {ep.dataset_from_index} does not follow the "
                    f"previous episode's dataset_to_index {prev_to}", None, e)
        prev_to = ep.dataset_to_index
        if e not in per:
            continue
        n, fmin, fmax, fdist, imin, imax, idist = per[e]
        data = meta.path(ep.data_path)
        if n != ep.length:
            ctx.add("index.continuity", "error", f"{n} frame rows, the episodes table says length {ep.length}", data, e)
        if (fmin, fmax, fdist) != (0, n - 1, n):
            ctx.add("index.continuity", "error", f"frame_index is not 0..{n - 1} once each (min {fmin}, max {fmax}, "
                    f"{fdist} distinct of {n} rows)", data, e)
        if (imin, imax + 1, idist) != (ep.dataset_from_index, ep.dataset_to_index, n):
            ctx.add("index.continuity", "error", f"index spans {imin}..{imax} ({idist} distinct), the episodes table "
                    f"gives [{ep.dataset_from_index}, {ep.dataset_to_index})", data, e)
    bad_tasks = con.execute("SELECT task_index, min(episode_index), count(*) FROM frames GROUP BY 1").fetchall()
    for t, e, n in bad_tasks:
        if t not in meta.tasks:
            ctx.add("index.continuity", "error", f"{n} rows have task_index {t}, which the tasks table lacks", None, e)


def _present_files(meta: DatasetMeta) -> list[Path]:
    """The data files the episodes table names that exist (from the table's file list: one stat per
    file, not per episode)."""
    return sorted({p for p in (meta.path(rel) for rel in meta.episode_table.data_files) if p.is_file()})


def _check_timestamps(ctx: _Ctx, con) -> None:
    meta = ctx.meta
    rows = con.execute(
        f"SELECT episode_index, max(abs(timestamp - frame_index / {float(meta.fps)!r})) AS worst, "
        f"count(*) FILTER (WHERE abs(timestamp - frame_index / {float(meta.fps)!r}) >= {ctx.tol!r}) AS n, "
        f"arg_max(frame_index, abs(timestamp - frame_index / {float(meta.fps)!r})) AS at "
        "FROM frames GROUP BY 1 HAVING n > 0 ORDER BY 1").fetchall()
    for e, worst, n, at in rows:
        file = meta.path(meta.episodes[e].data_path) if e in meta.episodes else None
        ctx.add("timestamps.grid", "error", f"{n} timestamps are >= tolerance_s={ctx.tol} s off frame_index / fps "
                f"(worst {worst:.6g} s at frame {at}); samples there fail LeRobot's tolerance check", file, e)


def _check_videos(ctx: _Ctx, con) -> None:
    from ..decode import get_index

    meta = ctx.meta
    indexes: dict[str, Any] = {}
    for key in meta.video_keys:
        feat = meta.features[key]
        for rel in sorted({ep.videos[key].path for ep in meta.episodes.values()}):
            p = meta.path(rel)
            if not p.is_file():
                continue
            try:
                idx = get_index(p)
            except VideoError as err:
                ctx.add("video.frames", "error", f"cannot be demuxed: {err}", p)
                continue
            indexes[rel] = idx
            if idx.average_fps and abs(idx.average_fps - float(meta.fps)) > 0.01:
                ctx.add("video.fps", "error", f"camera {key!r}: the stream runs at {idx.average_fps:.4g} frames/s, "
                        f"info.json fps is {meta.fps}", p)
            if len(feat.shape) == 3:
                h, w = (feat.shape[0], feat.shape[1]) if feat.shape[2] in (1, 3, 4) else (feat.shape[1], feat.shape[2])
                if (idx.height, idx.width) != (h, w):
                    ctx.add("video.shape", "error", f"camera {key!r}: frames are {idx.width}x{idx.height}, the feature "
                            f"is declared {list(feat.shape)}", p)
    if not indexes:
        return
    stamps = {r[0]: r[1] for r in con.execute(
        "SELECT episode_index, list(timestamp ORDER BY frame_index) FROM frames GROUP BY 1").fetchall()}
    for e, ep in meta.episodes.items():
        ts = stamps.get(e)
        for key, ref in ep.videos.items():
            idx = indexes.get(ref.path)
            if idx is None or ts is None:
                continue
            t = ref.from_timestamp + np.asarray(ts, np.float64)
            _, dist = idx.nearest(t)
            bad = dist >= ctx.tol
            times = idx.times
            in_span = int(((times >= ref.from_timestamp - ctx.tol) & (times < ref.to_timestamp - ctx.tol)).sum())
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                ctx.add("video.frames", "error", f"camera {key!r}: {int(bad.sum())} of {bad.size} rows have no video frame "
                        f"within tolerance_s={ctx.tol} s (first at frame {first}, t={t[first]:.4f} s, nearest "
                        f"{dist[first]:.4g} s away); the span [{ref.from_timestamp:.4f}, {ref.to_timestamp:.4f}) s holds "
                        f"{in_span} frames for length {ep.length}", meta.path(ref.path), e)
            elif in_span < ep.length:
                ctx.add("video.frames", "error", f"camera {key!r}: the span [{ref.from_timestamp:.4f}, "
                        f"{ref.to_timestamp:.4f}) s holds {in_span} frames, the episode has {ep.length} rows",
                        meta.path(ref.path), e)


def _numeric_keys(meta: DatasetMeta) -> list[str]:
    return [k for k, f in meta.features.items()
            if not f.is_camera and f.dtype in ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")]


def _check_stats(ctx: _Ctx) -> None:
    from ..stats import read_episode_stats_columns
    from ._frames import iter_batches

    meta = ctx.meta
    keys = _numeric_keys(meta)
    stats = meta.stats()
    stats_file = meta.root / "meta" / "stats.json"
    ep_file = meta.root / "meta" / ("episodes" if meta.is_v3 else "episodes_stats.jsonl")
    try:
        stored = read_episode_stats_columns(meta)  # v3.0 stats/* columns, v2.1 episodes_stats.jsonl; v2.0: none
    except StatsError as e:
        ctx.add("stats.consistent", "error", str(e), ep_file)
        stored = None
    ep_keys = [k for k in keys if stored is not None and k in stored.stats and stored.present[k].any()]
    if not stats:
        if meta.codebase_version == "v2.1":
            if not ep_file.is_file():
                ctx.add("stats.present", "warning", "no episodes_stats.jsonl and no stats.json: normalization has "
                        "no statistics", ep_file)
        else:
            ctx.add("stats.present", "warning", "no meta/stats.json: normalization has no statistics", stats_file)
    else:
        for k in keys:
            missing = [s for s in ("min", "max", "mean", "std") if s not in stats.get(k, {})]
            if missing:
                ctx.add("stats.present", "warning", f"feature {k!r} has no {missing} in stats.json", stats_file)
    ds_keys = [k for k in keys if stats and all(s in stats.get(k, {}) for s in ("min", "max", "mean"))]
    read = [k for k in keys if k in ds_keys or k in ep_keys]
    if not read:
        return
    acc: dict[str, dict[str, np.ndarray]] = {}
    segs: dict[str, list[tuple]] = {k: [] for k in ep_keys}  # key -> per batch (episode, min, max, sum, sumsq, n)
    for _f, b in iter_batches(meta, ["episode_index", *read]):
        ep = b["episode_index"]
        for k in read:
            if k not in b:
                continue
            x = b[k].astype(np.float64).reshape(len(ep), -1)
            a = acc.setdefault(k, {"min": np.full(x.shape[1], np.inf), "max": np.full(x.shape[1], -np.inf),
                                   "sum": np.zeros(x.shape[1]), "n": np.zeros(1)})
            if not x.size:
                continue
            a["min"] = np.minimum(a["min"], x.min(0))
            a["max"] = np.maximum(a["max"], x.max(0))
            a["sum"] += x.sum(0)
            a["n"] += len(x)
            if k in segs:
                # per-episode reductions by segments of equal episode_index (rows of an episode are
                # contiguous in LeRobot files; a masked pass per episode was quadratic in a file's episodes)
                order = np.argsort(ep, kind="stable")
                es, xs = ep[order], x[order]
                starts = np.flatnonzero(np.r_[True, es[1:] != es[:-1]])
                segs[k].append((es[starts].astype(np.int64), np.minimum.reduceat(xs, starts, axis=0),
                                np.maximum.reduceat(xs, starts, axis=0), np.add.reduceat(xs, starts, axis=0),
                                np.add.reduceat(xs * xs, starts, axis=0), np.diff(np.r_[starts, len(es)])))
    if ds_keys:
        _check_dataset_stats(ctx, [k for k in ds_keys if k in acc], acc, stats, stats_file)
    if ep_keys:
        _check_episode_stats(ctx, [k for k in ep_keys if segs[k]], segs, stored)


def _check_dataset_stats(ctx: _Ctx, keys: list[str], acc: dict, stats: dict, stats_file: Path) -> None:
    meta = ctx.meta
    complete = all(all(p.is_file() for p in meta.episode_files(e)) for e in meta.episodes)
    for k in keys:
        a = acc[k]
        if not a["n"][0]:
            continue
        smin, smax, smean = (np.asarray(stats[k][s], np.float64).reshape(-1) for s in ("min", "max", "mean"))
        if smin.shape != a["min"].shape:
            ctx.add("stats.consistent", "error", f"feature {k!r}: stats.json has {smin.size} values per statistic, "
                    f"the data {a['min'].size}", stats_file)
            continue
        tol = 1e-5 + 1e-5 * np.maximum(np.abs(smin), np.abs(smax))
        mean = a["sum"] / a["n"][0]
        if complete:
            bad = [s for s, got, want in (("min", a["min"], smin), ("max", a["max"], smax)) if (np.abs(got - want) > tol).any()]
            if (np.abs(mean - smean) > 1e-4 * (1 + np.abs(smean))).any():
                bad.append("mean")
            if bad:
                ctx.add("stats.consistent", "error", f"feature {k!r}: stats.json {bad} differ from the data (data min "
                        f"{_short(a['min'])}, max {_short(a['max'])}, mean {_short(mean)}; stats.json min {_short(smin)}, "
                        f"max {_short(smax)}, mean {_short(smean)})", stats_file)
        elif ((a["min"] < smin - tol) | (a["max"] > smax + tol)).any():
            ctx.add("stats.consistent", "error", f"feature {k!r}: data outside stats.json's [min, max] (data min "
                    f"{_short(a['min'])}, max {_short(a['max'])}; stats.json min {_short(smin)}, max {_short(smax)})",
                    stats_file)


def _check_episode_stats(ctx: _Ctx, keys: list[str], segs: dict, stored: Any) -> None:
    """Each episode's stored min / max / mean / std / count (v3.0 ``stats/*`` columns, v2.1
    ``episodes_stats.jsonl``) against its rows in the data files (episodes without data files skipped);
    ``segs``: per key the per-batch segment reductions of :func:`_check_stats`, combined here with
    NumPy by episode (no Python object per episode)."""
    meta = ctx.meta
    order = np.asarray(list(meta.episodes), dtype=np.int64)  # the rows of ``stored``
    sort = np.argsort(order, kind="stable")
    for k in keys:
        e_all = np.concatenate([p[0] for p in segs[k]])
        pos = np.minimum(np.searchsorted(order[sort], e_all), len(order) - 1)
        known = order[sort][pos] == e_all  # rows of episodes the tables do not list: index.continuity's
        rows = sort[pos][known]
        d = segs[k][0][1].shape[1]
        lo, hi = np.full((len(order), d), np.inf), np.full((len(order), d), -np.inf)
        total, sq, n = np.zeros((len(order), d)), np.zeros((len(order), d)), np.zeros(len(order), np.int64)
        np.minimum.at(lo, rows, np.concatenate([p[1] for p in segs[k]])[known])
        np.maximum.at(hi, rows, np.concatenate([p[2] for p in segs[k]])[known])
        np.add.at(total, rows, np.concatenate([p[3] for p in segs[k]])[known])
        np.add.at(sq, rows, np.concatenate([p[4] for p in segs[k]])[known])
        np.add.at(n, rows, np.concatenate([p[5] for p in segs[k]])[known])
        check = stored.present[k] & (n > 0)
        safe = np.maximum(n, 1)[:, None]
        mean = total / safe
        var = np.maximum(sq / safe - mean * mean, 0.0)
        # std compared as a variance: LeRobot computes it in float32, whose error in the variance is a
        # few float32 epsilons of mean^2 (a constant dimension of mean 100 gets a std of ~0.004)
        tests = {"min": (lo, lambda w: np.abs(lo - w) > 1e-5 + 1e-5 * np.abs(lo)),
                 "max": (hi, lambda w: np.abs(hi - w) > 1e-5 + 1e-5 * np.abs(hi)),
                 "mean": (mean, lambda w: np.abs(mean - w) > 1e-4 * (1 + np.abs(mean))),
                 "std": (np.sqrt(var), lambda w: np.abs(w * w - var) > 1e-8 + 1e-5 * (var + mean * mean))}
        bad: dict[int, list[str]] = {}
        for s, (value, differs) in tests.items():
            want = stored.stats[k].get(s)
            if want is None:
                continue
            want = want.reshape(len(order), -1)
            if want.shape[1] != d:
                wrong = check
            else:
                with np.errstate(invalid="ignore"):
                    wrong = check & differs(want).any(axis=1)
            for r in np.flatnonzero(wrong).tolist():
                bad.setdefault(r, []).append(f"{s} {_short(want[r])} (data: {_short(value[r])})")
        count = stored.stats[k].get("count")
        if count is not None:
            c = count.reshape(len(order), -1)[:, 0].astype(np.int64)
            for r in np.flatnonzero(check & (c != n)).tolist():
                bad.setdefault(r, []).append(f"count {int(c[r])} (data: {int(n[r])} rows)")
        for r in sorted(bad):
            e = int(order[r])
            ctx.add("stats.consistent", "error", f"feature {k!r}: the episode's stored stats differ from its data: "
                    + "; ".join(bad[r]), meta.path(meta.episodes[e].data_path), e)


def _short(x: np.ndarray, n: int = 4) -> str:
    v = ", ".join(f"{float(a):.5g}" for a in np.asarray(x).reshape(-1)[:n])
    return f"[{v}{', ...' if np.asarray(x).size > n else ''}]"
