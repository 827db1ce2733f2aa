"""``prf info``: describe a dataset from its metadata and from its video files themselves.

``prf info --strict`` (:func:`strict_report`) also runs :func:`prf.validate`'s checks, video ones
included, and fails (exit 3) exactly when they find an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .decode import get_index
from .errors import VideoError
from .format import DatasetMeta


def describe(meta: DatasetMeta) -> dict[str, Any]:
    """A JSON-ready description: version, robot_type, fps, episodes, frames, tasks, features, and per
    camera the codec, resolution, pixel format and frame count read from the files (demuxing only),
    with every disagreement with ``info.json`` listed under ``mismatches``."""
    present = [e for e in meta.episodes if all(p.is_file() for p in meta.episode_files(e))]
    missing_eps = [e for e in meta.episodes if e not in set(present)]
    out: dict[str, Any] = {
        "root": str(meta.root),
        "codebase_version": meta.codebase_version,
        "robot_type": meta.robot_type,
        "fps": meta.fps,
        "episodes": meta.total_episodes,
        "frames": meta.total_frames,
        "episodes_present": len(present),
        "episodes_missing_files": missing_eps,
        "tasks": [meta.tasks[k] for k in sorted(meta.tasks)],
        "features": [
            {"key": f.key, "dtype": f.dtype, "shape": list(f.shape), "names": list(f.names) if f.names else None}
            for f in meta.features.values()
        ],
        "cameras": [_describe_camera(meta, key, present) for key in meta.video_keys],
        "problems": [],
    }
    if meta.episodes and not present:
        first = next(p for p in meta.episode_files(next(iter(meta.episodes))) if not p.is_file())
        out["problems"].append(
            f"none of the {len(meta.episodes)} episodes has all its files (e.g. {first} is missing): "
            f"nothing can be loaded"
        )
    return out


def is_consistent(d: dict[str, Any]) -> bool:
    """False when :func:`describe`'s output lists a problem or a camera mismatch (what ``prf info
    --strict`` decides by when DuckDB, which :func:`strict_report` needs, is not installed). A partial
    download (some episodes with all their files) is consistent here."""
    return not d.get("problems") and not any(c["mismatches"] for c in d["cameras"])


def _describe_camera(meta: DatasetMeta, key: str, present: list[int]) -> dict[str, Any]:
    feat = meta.features[key]
    declared = {
        "codec": feat.info.get("video.codec"),
        "width": feat.info.get("video.width", feat.shape[1] if len(feat.shape) == 3 else None),
        "height": feat.info.get("video.height", feat.shape[0] if len(feat.shape) == 3 else None),
        "pix_fmt": feat.info.get("video.pix_fmt"),
        "fps": feat.info.get("video.fps", meta.fps),
    }
    files: dict[str, list[int]] = {}
    for e in present:
        files.setdefault(meta.episodes[e].videos[key].path, []).append(e)
    cam: dict[str, Any] = {"key": key, "files": len(files), "declared": declared, "mismatches": []}
    if meta.episodes and not files:
        first = meta.path(meta.episodes[next(iter(meta.episodes))].videos[key].path)
        cam["mismatches"].append(f"no episode has its video file for this camera (e.g. {first} is missing)")
    seen: dict[str, set] = {"codec": set(), "width": set(), "height": set(), "pix_fmt": set(), "fps": set()}
    frames_in_files = 0
    expected_frames = 0
    for rel, eps in sorted(files.items()):
        path = meta.path(rel)
        try:
            idx = get_index(path)
        except VideoError as err:
            cam["mismatches"].append(str(err))
            continue
        frames_in_files += idx.num_frames
        seen["codec"].add(_codec_family(idx.codec))
        seen["width"].add(idx.width)
        seen["height"].add(idx.height)
        seen["pix_fmt"].add(idx.pix_fmt)
        seen["fps"].add(round(idx.average_fps, 3))
        if meta.is_v3:
            need = max(round(meta.episodes[e].videos[key].to_timestamp * meta.fps) for e in eps)
            expected_frames += sum(meta.episodes[e].length for e in eps)
        else:
            need = sum(meta.episodes[e].length for e in eps)
            expected_frames += need
        if idx.num_frames < need:
            cam["mismatches"].append(
                f"{path}: {idx.num_frames} frames, but its episodes {eps} need {need}"
            )
    for name, values in seen.items():
        cam[name] = sorted(values)[0] if len(values) == 1 else sorted(values)
        want = declared[name]
        if not values or want is None:
            continue
        want_cmp = _codec_family(want) if name == "codec" else want
        if name == "fps":
            bad = [v for v in values if abs(v - float(want)) > 1e-3]
        else:
            bad = [v for v in values if v != want_cmp]
        if bad:
            cam["mismatches"].append(f"{name}: info.json says {want!r}, the files have {sorted(values)}")
    cam["frames"] = frames_in_files
    cam["frames_of_episodes"] = expected_frames
    if frames_in_files != expected_frames and not cam["mismatches"]:
        cam["mismatches"].append(
            f"frames: the files hold {frames_in_files}, the present episodes have {expected_frames}"
        )
    return cam


def _codec_family(name: str) -> str:
    n = str(name).lower()
    if "av1" in n or "dav1d" in n or n == "libaom":
        return "av1"
    if n in ("h264", "libx264", "avc", "libopenh264"):
        return "h264"
    if n in ("hevc", "h265", "libx265"):
        return "hevc"
    if n in ("mpeg4",):
        return "mpeg4"
    return n


def format_text(d: dict[str, Any]) -> str:
    """The human-readable form of :func:`describe`'s output."""
    lines = [
        f"dataset        {d['root']}",
        f"version        {d['codebase_version']}",
        f"robot_type     {d['robot_type']}",
        f"fps            {d['fps']}",
        f"episodes       {d['episodes']} ({d['episodes_present']} with all files present)",
        f"frames         {d['frames']}",
        f"tasks          {len(d['tasks'])}",
    ]
    for t in d["tasks"][:10]:
        lines.append(f"  - {t}")
    if len(d["tasks"]) > 10:
        lines.append(f"  ... {len(d['tasks']) - 10} more")
    if d["episodes_missing_files"]:
        m = d["episodes_missing_files"]
        lines.append(f"missing files  for {len(m)} episode(s): {m[:20]}{' ...' if len(m) > 20 else ''}")
    for problem in d.get("problems", []):
        lines.append(f"PROBLEM: {problem}")
    lines.append("features")
    for f in d["features"]:
        lines.append(f"  {f['key']:<36} {f['dtype']:<8} {tuple(f['shape'])}")
    if d["cameras"]:
        lines.append("cameras (read from the video files)")
    for c in d["cameras"]:
        lines.append(
            f"  {c['key']:<36} {c.get('codec')} {c.get('width')}x{c.get('height')} {c.get('pix_fmt')} "
            f"{c.get('fps')} fps, {c['frames']} frames in {c['files']} file(s)"
        )
        for m in c["mismatches"]:
            lines.append(f"    MISMATCH: {m}")
    return "\n".join(lines)


def describe_path(path: str | Path) -> dict[str, Any]:
    from ._open import resolve_source

    return describe(DatasetMeta(resolve_source(path)))


def strict_report(root: str | Path, *, tolerance_s: float = 1e-4) -> dict[str, Any]:
    """``prf info --strict``'s verdict: :func:`prf.validate` (every check of
    :data:`prf.query.CHECKS`, video checks included) on the local dataset ``root``.

    Returns:
        ``{"ok": bool, "errors": int, "warnings": int, "checks": [...], "findings": [{check, severity,
        file, episode, message}, ...]}``; ``ok`` is ``False`` exactly when validate finds an error
        (severity ``"error"``), so ``--strict`` and ``prf validate`` agree. A partial download
        (episodes whose files are absent) is a ``files.missing`` error.

    Raises:
        ImportError: DuckDB is not installed (``pip install 'prf[query]'``).
    """
    from .query import validate

    rep = validate(root, tolerance_s=tolerance_s, videos=True).to_dict()
    errors = sum(f["severity"] == "error" for f in rep["findings"])
    return {"ok": rep["ok"], "errors": errors, "warnings": len(rep["findings"]) - errors, "checks": rep["checks"],
            "findings": rep["findings"]}


def format_strict(v: dict[str, Any], limit: int = 50) -> str:
    """The human-readable lines of :func:`strict_report`'s verdict."""
    lines = [f"strict         {'ok' if v['ok'] else 'FAILED'}: prf validate found {v['errors']} error(s), "
             f"{v['warnings']} warning(s) ({len(v['checks'])} checks)"]
    for f in v["findings"][:limit]:
        where = ", ".join(x for x in (f["file"], None if f["episode"] is None else f"episode {f['episode']}") if x)
        lines.append(f"  {f['severity'].upper():<7} {f['check']:<17} {where + ': ' if where else ''}{f['message']}")
    if len(v["findings"]) > limit:
        lines.append(f"  ... {len(v['findings']) - limit} more (prf validate lists them all)")
    return "\n".join(lines)
