"""``prf report``: one self-contained HTML file describing a dataset (or a converted log).

The file opens offline from disk: no server, no network, no external resource of any kind (plots
are inline base64 PNG drawn with matplotlib's Agg backend, frames inline base64 JPEG, the CSS and the
few lines of JavaScript that sort the episode table are in the page).

A LeRobot dataset's report holds:

- the summary of ``prf info`` (:func:`prf.info.describe`): version, fps, episodes, frames, tasks,
  features, per camera what the video files hold and every mismatch with ``info.json``;
- ``prf validate``'s findings (:func:`prf.validate`; needs ``prf[query]``, else a note says so);
- an episode table that sorts on a click on a column header: episode, length, duration, task(s),
  the quality scores of :func:`prf.score_episodes` (``prf[query]``) and the number of validation
  findings of the episode;
- per detailed episode (``episodes=``; default the first :data:`DEFAULT_EPISODES`): the state and
  the action per joint over time (one panel per joint, titled with the names from ``info.json``),
  every other numeric feature likewise, timestamp gaps (consecutive timestamps not ``1/fps`` apart
  within ``tolerance_s``) and dropped frames (a step of more than 1.5 frame periods, or a
  ``frame_index`` that skips) shaded red and listed; a strip of ``frames`` evenly spaced frames per
  camera, decoded by the dataset's decode backend.

A converted log (a folder written by ``prf convert`` / :func:`prf.convert_log`): the conversion's
metadata, a topic table, and per topic one plot panel per numeric column (list columns of a fixed
length: one panel per element) against ``log_time``, gaps (a step over 5x the topic's median
period) shaded red; image topics (raw, compressed, video) as frame strips.

Size bound per episode (or topic): each plot is one PNG at most 1100 px wide and 150 px high per row
of panels (at most 32 panels; each series downsampled to at most 2000 points, min/max kept), at
80 dpi; each frame a JPEG thumbnail of at most 200 x 120 px (quality 80), at most 24 frames per
camera. Measured with 8 frames: so101_wrist_v30 (6 joints, one 640x360 camera) ~68 kB per episode;
aloha_multicam_v30 (14 joints, 3 cameras) ~287 kB per episode; a topic of the turtlesim log <= 62 kB.
The bound asserted by the tests (tests/test_report.py) is :data:`MAX_EPISODE_BYTES`.
"""

from __future__ import annotations

import html as _html
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from . import _frames, _plots
from ._signals import joint_names, numeric_columns, numeric_features
from ..errors import PrfError

DEFAULT_EPISODES = 5
#: upper bound of one episode's (or topic's) share of the page, in bytes (asserted by the tests)
MAX_EPISODE_BYTES = 1_500_000


def write_report(path: str | Path, out: str | Path = "report.html", *, episodes: Iterable[int] | None = None,
                 frames: int = 8, validate: bool = True, scores: bool = True, tolerance_s: float = 1e-4) -> Path:
    """Write the report of the dataset (or converted log) at ``path`` to ``out`` (atomically) and
    return ``out``'s path. See the module docstring for what it holds and its size bound.

    Args:
        path: a LeRobot dataset folder (v2.0/v2.1/v3.0), or a folder written by ``prf convert``.
        out: the HTML file to write.
        episodes: episode indices to detail (plots and frame strips); default the first
            :data:`DEFAULT_EPISODES` episodes with their files present. Ignored for a converted log.
        frames: frames per camera strip (at most 24).
        validate: include ``prf validate``'s findings (decodes nothing, demuxes the videos).
        scores: include ``prf score``'s per-episode quality scores (decodes a few frames per episode).
        tolerance_s: how far consecutive timestamps may be from ``1/fps`` before a gap is marked.

    Raises:
        MetadataError: ``path`` is not a dataset or converted log, or ``episodes`` names an unknown
            episode.
        ImportError: matplotlib is missing (``pip install 'prf[report]'``).
    """
    import matplotlib  # noqa: F401 - fail early, with the extra's name, before any work

    root = Path(path).expanduser()
    if (root / "metadata.json").is_file() and not (root / "meta" / "info.json").is_file():
        title, body = _log_report(root, frames)
    else:
        title, body = _dataset_report(root, episodes, frames, validate, scores, tolerance_s)
    page = _page(title, body)
    dst = Path(out).expanduser()
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


# ---- HTML pieces -------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;color:#222;max-width:1400px}
.scroll{overflow-x:auto;max-width:100%}table.sortable th{max-width:7em;overflow-wrap:anywhere;font-size:12px}
td.text{min-width:12em}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:1.6em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;
vertical-align:top;font-size:13px}th{background:#f3f3f3}table.sortable th{cursor:pointer;user-select:none}
table.sortable th[data-dir=asc]::after{content:' \\25B2'}table.sortable th[data-dir=desc]::after{content:' \\25BC'}
.num{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#b00}.warn{color:#a60}.muted{color:#777}
img.plot{display:block;max-width:100%;margin:.4em 0}.strip{display:flex;flex-wrap:wrap;gap:4px;margin:.3em 0}
.strip figure{margin:0}.strip figcaption{font-size:11px;color:#555;text-align:center}
"""

_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var col = th.cellIndex, body = th.closest('table').tBodies[0];
    var asc = th.getAttribute('data-dir') !== 'asc';
    th.closest('tr').querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-dir'); });
    th.setAttribute('data-dir', asc ? 'asc' : 'desc');
    var key = function (r) { var c = r.cells[col]; return c.hasAttribute('data-v') ? c.getAttribute('data-v') : c.textContent; };
    Array.from(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    }).forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _e(x: Any) -> str:
    return _html.escape(str(x), quote=True)


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>\n{body}\n"
            f"<script>{_JS}</script></body></html>\n")


def _kv_table(rows: Sequence[tuple[str, Any]]) -> str:
    return "<table class=\"kv\">" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, sortable: bool = False, cls: str = "",
           raw_cols: Sequence[int] = ()) -> str:
    """A table; numbers right-aligned with their value in ``data-v`` (for sorting); ``raw_cols``: cells
    that are HTML already."""
    c = " ".join(x for x in ("sortable" if sortable else "", cls) if x)
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for j, v in enumerate(r):
            if j in raw_cols:
                cells.append(f"<td>{v}</td>")
            elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                fv = float(v)
                text = "" if not np.isfinite(fv) else (f"{int(v)}" if isinstance(v, (int, np.integer)) else f"{fv:.4g}")
                cells.append(f"<td class=\"num\" data-v=\"{fv if np.isfinite(fv) else ''}\">{text}</td>")
            else:
                text = str(v)
                cells.append(f"<td class=\"text\">{_e(text)}</td>" if len(text) > 40 else f"<td>{_e(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class=\"scroll\"><table class=\"{c}\"><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _img_plot(b64: str, alt: str) -> str:
    return f"<img class=\"plot\" alt=\"{_e(alt)}\" src=\"data:image/png;base64,{b64}\">"


def _strip(label: str, thumbs: Sequence[tuple[str, str]]) -> str:
    figs = "".join(f"<figure><img alt=\"{_e(label)} {_e(cap)}\" src=\"data:image/jpeg;base64,{b}\">"
                   f"<figcaption>{_e(cap)}</figcaption></figure>" for b, cap in thumbs)
    return f"<h4>{_e(label)}</h4><div class=\"strip\" data-camera=\"{_e(label)}\">{figs}</div>"


# ---- datasets -----------------------------------------------------------------------------------------
def _timestamp_marks(ts: np.ndarray, frame_index: np.ndarray | None, fps: float, tol: float
                     ) -> tuple[list[tuple[float, float]], list[str], int, int]:
    """Spans to shade, their descriptions, the number of gaps and of dropped frames."""
    marks: list[tuple[float, float]] = []
    notes: list[str] = []
    gaps = dropped = 0
    if ts.size < 2:
        return marks, notes, gaps, dropped
    dt = np.diff(ts.astype(np.float64))
    period = 1.0 / fps
    bad = np.flatnonzero(np.abs(dt - period) > tol)
    skip = np.flatnonzero(np.diff(frame_index) != 1) if frame_index is not None and frame_index.size == ts.size else []
    for i in sorted(set(bad.tolist()) | set(np.asarray(skip).tolist())):
        n_drop = max(int(round(dt[i] / period)) - 1, 0) if dt[i] > 1.5 * period else 0
        if frame_index is not None and frame_index.size == ts.size:
            n_drop = max(n_drop, int(frame_index[i + 1] - frame_index[i]) - 1)
        gaps += 1
        dropped += n_drop
        marks.append((float(ts[i]), float(ts[i + 1])))
        what = f"{n_drop} dropped frame(s)" if n_drop else "timestamp off the 1/fps grid"
        notes.append(f"frame {i} -> {i + 1}: t {ts[i]:.4f} s -> {ts[i + 1]:.4f} s (step {dt[i]:.4f} s, "
                     f"expected {period:.4f} s): {what}")
    return marks, notes, gaps, dropped


def _dataset_report(root: Path, episodes: Iterable[int] | None, n_frames: int, do_validate: bool,
                    do_scores: bool, tol: float) -> tuple[str, str]:
    from ..format import DatasetMeta
    from ..info import describe
    from ..query._frames import iter_episodes

    meta = DatasetMeta(root)
    d = describe(meta)
    parts = [f"<h1>prf report: {_e(root.name)}</h1>",
             f"<p class=\"muted\">{_e(d['root'])}</p>", "<h2>Summary (prf info)</h2>"]
    parts.append(_kv_table([("version", d["codebase_version"]), ("robot_type", d["robot_type"]), ("fps", d["fps"]),
                            ("episodes", f"{d['episodes']} ({d['episodes_present']} with all files present)"),
                            ("frames", d["frames"]), ("tasks", len(d["tasks"]))]))
    for p in d["problems"]:
        parts.append(f"<p class=\"bad\">PROBLEM: {_e(p)}</p>")
    parts.append("<h3>Features</h3>")
    parts.append(_table(["key", "dtype", "shape", "names"],
                        [(f["key"], f["dtype"], str(tuple(f["shape"])), ", ".join(f["names"] or []) if f["names"] else "")
                         for f in d["features"]]))
    if d["cameras"]:
        parts.append("<h3>Cameras (from the video files)</h3>")
        parts.append(_table(["camera", "codec", "width", "height", "pix_fmt", "fps", "files", "frames", "mismatches"],
                            [(c["key"], c.get("codec"), c.get("width"), c.get("height"), c.get("pix_fmt"), c.get("fps"),
                              c["files"], c.get("frames"), "; ".join(c["mismatches"]) or "none") for c in d["cameras"]]))
    if d["tasks"]:
        parts.append("<h3>Tasks</h3><ul>" + "".join(f"<li>{_e(t)}</li>" for t in d["tasks"][:50]) + "</ul>")

    # validation findings and scores (prf[query]); a missing extra is a note, not a failure
    per_ep_findings: dict[int, list[str]] = {}
    parts.append("<h2>Validation (prf validate)</h2>")
    if do_validate:
        try:
            from ..query import validate as run_validate

            rep = run_validate(meta)
        except ImportError as e:
            parts.append(f"<p class=\"muted\">not available: {_e(e)} (pip install 'prf[query]')</p>")
        else:
            ok = "ok" if rep.ok else "ERRORS"
            parts.append(f"<p class=\"{'' if rep.ok else 'bad'}\">{ok}: {len(rep.errors)} error(s), "
                         f"{len(rep.findings) - len(rep.errors)} warning(s), {len(rep.checks)} checks</p>")
            if rep.findings:
                parts.append(_table(["severity", "check", "file", "episode", "message"],
                                    [(f.severity, f.check, f.file or "", "" if f.episode is None else f.episode, f.message)
                                     for f in rep.findings[:200]], cls="findings"))
            for f in rep.findings:
                if f.episode is not None:
                    per_ep_findings.setdefault(int(f.episode), []).append(f"{f.severity}: {f.message}")
    else:
        parts.append("<p class=\"muted\">skipped (--no-validate)</p>")
    score_rows: dict[int, dict[str, Any]] = {}
    score_cols: list[str] = []
    if do_scores:
        try:
            from ..query import score_episodes

            try:
                table = score_episodes(meta, samples=4)
            except PrfError as err:  # e.g. a camera frame off its timestamp: scores without cameras
                parts.append(f"<p class=\"warn\">camera scores skipped: {_e(err)}</p>")
                table = score_episodes(meta, cameras=[])
        except ImportError as e:
            parts.append(f"<p class=\"muted\">quality scores not available: {_e(e)}</p>")
        else:
            cols = table.to_pydict()
            score_cols = [c for c in table.column_names if c not in ("episode_index", "length", "duration_s")]
            for i, e in enumerate(cols["episode_index"]):
                score_rows[int(e)] = {c: cols[c][i] for c in score_cols}

    present = [e for e in meta.episodes if all(p.is_file() for p in meta.episode_files(e))]
    if episodes is None:
        detail = present[:DEFAULT_EPISODES]
    else:
        detail = sorted({int(e) for e in episodes})
        unknown = [e for e in detail if e not in meta.episodes]
        if unknown:
            from ..errors import MetadataError

            raise MetadataError(f"{root}: episode(s) {unknown} are not in the episodes table "
                                f"(episodes: {list(meta.episodes)[:20]}{' ...' if len(meta.episodes) > 20 else ''})")

    # per-episode signals (no checks at read: the report shows what is wrong instead)
    feats = numeric_features(meta)
    keys = [f.key for f in feats]
    signals: dict[int, dict[str, np.ndarray]] = {}
    gap_info: dict[int, tuple] = {}
    want = set(detail)
    for e, cols in iter_episodes(meta, ["timestamp", *keys]):
        ts = cols.get("timestamp")
        if ts is None:
            ts = cols["frame_index"].astype(np.float64) / meta.fps
        ts = np.asarray(ts, dtype=np.float64).reshape(-1)
        gap_info[e] = _timestamp_marks(ts, np.asarray(cols["frame_index"]).reshape(-1), meta.fps, tol)
        if e in want:
            signals[e] = {"timestamp": ts, **{k: cols[k] for k in keys if k in cols}}

    parts.append("<h2>Episodes</h2><p class=\"muted\">click a column header to sort</p>")
    headers = ["episode", "length", "duration_s", "tasks", "gaps", "dropped", *score_cols, "findings"]
    rows = []
    for e, ep in meta.episodes.items():
        g = gap_info.get(e)
        link = f"<a href=\"#episode-{e}\">{e}</a>" if e in want else str(e)
        rows.append([link, ep.length, round(ep.length / meta.fps, 3), "; ".join(ep.tasks),
                     g[2] if g else float("nan"), g[3] if g else float("nan"),
                     *[_num(score_rows.get(e, {}).get(c)) for c in score_cols],
                     len(per_ep_findings.get(e, []))])
    parts.append(_table(headers, rows, sortable=True, cls="episodes", raw_cols=(0,)))

    for e in detail:
        parts.append(_episode_section(root, meta, e, feats, signals.get(e), gap_info.get(e), n_frames, tol,
                                      per_ep_findings.get(e, []), e in present))
    return f"prf report: {root.name}", "\n".join(parts)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _episode_section(root: Path, meta: Any, e: int, feats: list[Any], sig: dict[str, np.ndarray] | None,
                     gaps: tuple | None, n_frames: int, tol: float, findings: list[str], present: bool) -> str:
    ep = meta.episodes[e]
    out = [f"<section class=\"episode\" id=\"episode-{e}\" data-episode=\"{e}\">",
           f"<h2>Episode {e}</h2>",
           _kv_table([("length", f"{ep.length} frames ({ep.length / meta.fps:.2f} s)"), ("tasks", "; ".join(ep.tasks))])]
    if not present or sig is None:
        out.append("<p class=\"bad\">this episode's files are missing: nothing to plot</p></section>")
        return "\n".join(out)
    marks, notes, n_gaps, n_drop = gaps if gaps else ([], [], 0, 0)
    if notes:
        out.append(f"<p class=\"warn\">{n_gaps} timestamp gap(s), {n_drop} dropped frame(s) (shaded red):</p><ul>"
                   + "".join(f"<li>{_e(n)}</li>" for n in notes[:30]) + "</ul>")
    else:
        out.append(f"<p>timestamps: every step 1/fps within {tol:g} s; no dropped frame</p>")
    for msg in findings[:20]:
        out.append(f"<p class=\"warn\">{_e(msg)}</p>")
    ts = sig["timestamp"]
    by_names: dict[tuple, list[Any]] = {}
    for f in feats:
        if f.key in sig:
            by_names.setdefault(tuple(joint_names(f)), []).append(f)
    for names, group in by_names.items():  # state and action with the same joint names share panels
        series = {f.key: np.asarray(sig[f.key], dtype=np.float64).reshape(ts.size, -1) for f in group}
        title = " / ".join(f.key for f in group)
        if len(names) > _plots.MAX_PANELS:
            title += f" (first {_plots.MAX_PANELS} of {len(names)} elements)"
        b64 = _plots.panels_png(ts, series, list(names), title=f"episode {e}: {title}", marks=marks,
                                mark_label="timestamp gap / dropped frames")
        out.append(_img_plot(b64, f"episode {e} {title}"))
    out.append(_episode_strips(root, meta, e, n_frames, tol))
    out.append("</section>")
    return "\n".join(out)


def _episode_strips(root: Path, meta: Any, e: int, n_frames: int, tol: float) -> str:
    from .._open import open_dataset
    from ..errors import TimestampError

    if not meta.camera_keys:
        return ""
    note = ""
    try:
        try:
            ds = open_dataset(root, episodes=[e], tolerance_s=tol)
        except TimestampError:  # the report still shows frames: nearest frames within half a period
            ds = open_dataset(root, episodes=[e], tolerance_s=0.5 / meta.fps)
            note = (f"<p class=\"warn\">timestamps off by more than {tol:g} s: frames taken within half a "
                    f"frame period</p>")
        pos = _frames.evenly_spaced(len(ds), n_frames)
        batch = ds.get_batch(pos)
    except PrfError as err:
        return note + f"<p class=\"bad\">frames could not be decoded: {_e(err)}</p>"
    ts = np.asarray(batch["timestamp"], dtype=np.float64).reshape(-1)
    out = [note]
    for cam in ds.cameras:
        thumbs = [(_frames.thumbnail_b64(batch[cam][j]), f"frame {int(p)} · {ts[j]:.2f} s")
                  for j, p in enumerate(pos.tolist())]
        out.append(_strip(cam, thumbs))
    return "\n".join(out)


# ---- converted logs --------------------------------------------------------------------------------------
def _log_report(root: Path, n_frames: int) -> tuple[str, str]:
    from ..ingest import RoboticsDataFrame
    from ..ingest._images import image_kind, image_reader

    df = RoboticsDataFrame.from_converted(root)
    md = df.metadata
    t0, t1 = df.time_range() if len(df) else (0, 0)
    parts = [f"<h1>prf report: {_e(root.name)} (converted log)</h1>", f"<p class=\"muted\">{_e(root)}</p>",
             "<h2>Summary</h2>",
             _kv_table([("source", _source_text(md.get("source", ""))), ("storage", md.get("storage", md.get("format", ""))),
                        ("topics", len(df)), ("start (ns)", t0), ("end (ns)", t1),
                        ("duration (s)", f"{(t1 - t0) / 1e9:.3f}")])]
    rows = []
    anchors = _anchors(df.topics)
    for topic in df.topics:
        entry = md.get("topics", {}).get(topic, {})
        table = df[topic]
        kind = image_kind(table)
        rows.append([f"<a href=\"#topic-{_e(anchors[topic])}\">{_e(topic)}</a>", entry.get("message_type", ""),
                     table.num_rows, len(table.column_names), kind or "numeric/other"])
    parts.append("<h2>Topics</h2><p class=\"muted\">click a column header to sort</p>")
    parts.append(_table(["topic", "message type", "messages", "columns", "kind"], rows, sortable=True,
                        cls="topics", raw_cols=(0,)))
    for topic in df.topics:
        table = df[topic]
        times = df.times(topic)
        t = (times - t0) / 1e9
        sec = [f"<section class=\"topic\" id=\"topic-{_e(anchors[topic])}\"><h2>{_e(topic)}</h2>",
               f"<p>{table.num_rows} messages</p>"]
        marks: list[tuple[float, float]] = []
        if t.size > 2:
            dt = np.diff(t)
            med = float(np.median(dt))
            if med > 0:
                for i in np.flatnonzero(dt > 5 * med)[:50].tolist():
                    marks.append((float(t[i]), float(t[i + 1])))
            if marks:
                sec.append(f"<p class=\"warn\">{len(marks)} gap(s) over 5x the median period {med * 1e3:.2f} ms "
                           f"(shaded red)</p>")
        kind = image_kind(table)
        if kind is not None:
            read = image_reader(table, topic)
            pos = _frames.evenly_spaced(table.num_rows, n_frames)
            thumbs = []
            try:
                rows_needed = range(int(pos[-1]) + 1) if kind == "video" and pos.size else pos.tolist()
                want = set(pos.tolist())
                for r in rows_needed:  # video: decode in order up to the last strip frame
                    img = read(int(r))
                    if r in want:
                        thumbs.append((_frames.thumbnail_b64(img), f"#{r} · {t[r]:.2f} s"))
            except PrfError as err:
                sec.append(f"<p class=\"bad\">images could not be decoded: {_e(err)}</p>")
            if thumbs:
                sec.append(_strip(topic, thumbs))
        else:
            cols, left = numeric_columns(table, _plots.MAX_PANELS)
            if cols and t.size:
                names = list(cols)
                series = {"value": np.stack([cols[k] for k in names], axis=1)}
                title = topic + (f" (first {_plots.MAX_PANELS} numeric columns; {left} more)" if left else "")
                sec.append(_img_plot(_plots.panels_png(t, series, names, title=title, xlabel="log_time (s from start)",
                                                       marks=marks), f"topic {topic}"))
            else:
                sec.append("<p class=\"muted\">no numeric column to plot</p>")
        sec.append("</section>")
        parts.append("\n".join(sec))
    return f"prf report: {root.name}", "\n".join(parts)


def _anchors(topics: Sequence[str]) -> dict[str, str]:
    """A unique HTML id per topic: its letters, digits and ``_``, other characters as ``-``."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for topic in topics:
        a = base = "".join(c if c.isalnum() or c == "_" else "-" for c in topic).strip("-") or "topic"
        k = 2
        while a in used:
            a, k = f"{base}-{k}", k + 1
        used.add(a)
        out[topic] = a
    return out


def _source_text(src: Any) -> str:
    if isinstance(src, dict):
        bits = [str(src.get("path", "")), str(src.get("format", "")), str(src.get("storage", ""))]
        return ", ".join(b for b in bits if b)
    return str(src)
