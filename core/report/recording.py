"""``prf view``: an episode (or a converted log) as a Rerun recording (``.rrd``, rerun-sdk).

Dataset episodes (timelines ``frame_index``, a sequence, and ``timestamp``, a duration in seconds;
Rerun's own ``log_time`` / ``log_tick`` timelines are turned off):

- ``/<camera key>`` (e.g. ``/observation.images.wrist``): one ``rr.EncodedImage`` per frame, the
  decoded RGB frame re-encoded as JPEG (``jpeg_quality``; full resolution), decoded by the dataset's
  decode backend;
- ``/<feature key>/<element name>`` (e.g. ``/observation.state/left_arm_waist``, names from
  ``info.json``, ``key[i]`` without names; each part escaped with ``rr.escape_entity_path_part``):
  one ``rr.Scalars`` row per frame for every numeric non-index feature (state, action, rewards...),
  with a static ``rr.SeriesLines`` naming the series;
- ``/task``: an ``rr.TextDocument`` at the first frame and wherever the task changes;
- ``/episode``: a static ``rr.TextDocument`` with the episode's index, length, fps and dataset.

Converted logs (a folder written by ``prf convert``), every topic on the ``log_time`` timeline (the
log's own nanosecond times, as timestamps): topic ``/a/b`` is entity ``/a/b``; numeric columns (and
fixed-length numeric lists, per element) as ``/a/b/<column>`` scalars; image topics as
``rr.EncodedImage`` at ``/a/b`` (JPEG/PNG messages passed through, raw and video frames re-encoded
as JPEG); every other topic as one ``rr.TextLog`` row per message (its non-numeric fields, at most
500 characters).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ._frames import to_pil
from ._signals import joint_names, numeric_columns, numeric_features

CHUNK_FRAMES = 64  # frames decoded and sent per send_columns call (bounds memory)
MAX_LOG_COLUMNS = 64  # numeric columns per log topic


def write_recording(path: str | Path, out: str | Path | None = None, *, episode: int | None = None,
                    spawn: bool = False, jpeg_quality: int = 90) -> Path | None:
    """Write the Rerun recording of ``episode`` of the dataset at ``path`` (or of the converted log at
    ``path``) to ``out`` and return its path (see the module docstring for the entities).

    Args:
        path: a LeRobot dataset folder, or a folder written by ``prf convert``.
        out: the ``.rrd`` file (default ``<folder name>_ep<E>.rrd``, ``<folder name>.rrd`` for a log, in
            the working directory).
        episode: the episode index (default: the first episode whose files are present).
        spawn: then open the file in the Rerun viewer (``rerun FILE``, detached; where it cannot run,
            e.g. no display, a message says so and the file is still written).
        jpeg_quality: JPEG quality of the camera frames in the recording.

    Raises:
        MetadataError: ``episode`` is not in the dataset, or its files are missing.
        ImportError: rerun-sdk is missing (``pip install 'prf[report]'``).
    """
    import rerun as rr

    root = Path(path).expanduser()
    is_log = (root / "metadata.json").is_file() and not (root / "meta" / "info.json").is_file()
    if is_log:
        meta = None
        e = None
        default = f"{root.name}.rrd"
    else:
        from ..format import DatasetMeta

        meta = DatasetMeta(root)
        e = _pick_episode(meta, episode)
        default = f"{root.name}_ep{e}.rrd"
    dst = Path(out).expanduser() if out is not None else Path(default)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.partial")
    rec = rr.RecordingStream(application_id="prf", recording_id=f"{root.name}" + ("" if e is None else f"-ep{e}"))
    rec.set_log_time_enabled(False)
    rec.set_log_tick_enabled(False)
    rec.set_sinks(rr.FileSink(str(tmp)))
    try:
        try:
            if is_log:
                _log_converted(rr, rec, root, jpeg_quality)
            else:
                _log_episode(rr, rec, root, meta, e, jpeg_quality)
            rec.flush()
        finally:
            rec.disconnect()
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    if spawn:
        _open_viewer(dst)
    return dst


def _open_viewer(rrd: Path) -> bool:
    """Open the Rerun viewer (the ``rerun`` executable rerun-sdk installs) on ``rrd``, detached. Where it
    cannot run (not found, no display: it exits at once) a message says so; the file stays written."""
    import shutil
    import subprocess
    import sys
    import time

    exe = shutil.which("rerun") or shutil.which("rerun", path=str(Path(sys.executable).parent))
    if exe is None:
        print(f"prf view: no Rerun viewer executable found (pip install rerun-sdk); open {rrd} with `rerun {rrd}`")
        return False
    try:
        proc = subprocess.Popen([exe, str(rrd)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as err:
        print(f"prf view: could not start the Rerun viewer ({err}); open {rrd} with `rerun {rrd}`")
        return False
    time.sleep(1.0)
    code = proc.poll()
    if code is not None and code != 0:
        msg = (proc.stderr.read() or b"").decode(errors="replace").strip().splitlines()[-1:] if proc.stderr else []
        print(f"prf view: the Rerun viewer could not run here (exit {code}{': ' + msg[0] if msg else ''}); "
              f"{rrd} is written")
        return False
    return True


def _pick_episode(meta: Any, episode: int | None) -> int:
    from ..errors import MetadataError

    present = [e for e in meta.episodes if all(p.is_file() for p in meta.episode_files(e))]
    if episode is None:
        if not present:
            raise MetadataError(f"{meta.root}: no episode has all its files")
        return present[0]
    e = int(episode)
    if e not in meta.episodes:
        raise MetadataError(f"{meta.root}: episode {e} is not in the episodes table "
                            f"(episodes: {list(meta.episodes)[:20]}{' ...' if len(meta.episodes) > 20 else ''})")
    if e not in present:
        raise MetadataError(f"{meta.root}: episode {e}'s files are missing: {[str(p) for p in meta.episode_files(e) if not p.is_file()]}")
    return e


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    to_pil(rgb).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def _entity(*parts: str) -> str:
    import rerun as rr

    return "/" + "/".join(rr.escape_entity_path_part(str(p)) for p in parts if str(p) != "")


def _log_episode(rr: Any, rec: Any, root: Path, meta: Any, e: int, quality: int) -> None:
    from .._open import open_dataset
    from ..errors import TimestampError

    try:
        ds = open_dataset(root, episodes=[e])
    except TimestampError:  # still viewable: frames nearest within half a period
        ds = open_dataset(root, episodes=[e], tolerance_s=0.5 / meta.fps)
    n = len(ds)
    frame_index = np.asarray(ds.column("frame_index")).reshape(-1).astype(np.int64)
    ts = np.asarray(ds.column("timestamp"), dtype=np.float64).reshape(-1) if "timestamp" in ds._specs \
        else frame_index / meta.fps

    def times(sl: slice = slice(None)) -> list:
        return [rr.TimeColumn("frame_index", sequence=frame_index[sl]), rr.TimeColumn("timestamp", duration=ts[sl])]

    ep = meta.episodes[e]
    rec.log("/episode", rr.TextDocument(
        f"# {root.name}, episode {e}\n\n{ep.length} frames at {meta.fps} fps ({ep.length / meta.fps:.2f} s)\n\n"
        f"tasks: {'; '.join(ep.tasks)}", media_type="text/markdown"), static=True)
    for f in numeric_features(meta):
        if f.key not in ds._specs:
            continue
        values = np.asarray(ds.column(f.key), dtype=np.float64).reshape(n, -1)
        for d, name in enumerate(joint_names(f)[: values.shape[1]]):
            ent = _entity(f.key, name)
            rec.log(ent, rr.SeriesLines(names=f"{f.key} {name}"), static=True)
            rec.send_columns(ent, indexes=times(), columns=rr.Scalars.columns(scalars=values[:, d]))
    task_index = np.asarray(ds.column("task_index")).reshape(-1) if "task_index" in ds._specs else np.zeros(n, np.int64)
    change = np.flatnonzero(np.r_[True, task_index[1:] != task_index[:-1]]) if n else np.zeros(0, np.int64)
    if change.size:
        texts = [meta.tasks.get(int(task_index[i]), "") for i in change.tolist()]
        rec.send_columns("/task", indexes=[rr.TimeColumn("frame_index", sequence=frame_index[change]),
                                           rr.TimeColumn("timestamp", duration=ts[change])],
                         columns=rr.TextDocument.columns(text=texts))
    for start in range(0, n, CHUNK_FRAMES):
        pos = np.arange(start, min(n, start + CHUNK_FRAMES), dtype=np.int64)
        batch = ds.get_batch(pos)
        sl = slice(start, start + pos.size)
        for cam in ds.cameras:
            blobs = [_jpeg(img, quality) for img in batch[cam]]
            rec.send_columns(_entity(cam), indexes=times(sl),
                             columns=rr.EncodedImage.columns(blob=blobs, media_type=["image/jpeg"] * len(blobs)))


def _log_converted(rr: Any, rec: Any, root: Path, quality: int) -> None:
    import pyarrow as pa

    from ..ingest import RoboticsDataFrame
    from ..ingest._images import image_kind, image_reader

    df = RoboticsDataFrame.from_converted(root)
    rec.log("/log", rr.TextDocument(json.dumps(df.metadata.get("source", str(root)), indent=1, default=str)),
            static=True)
    for topic in df.topics:
        table = df[topic]
        times = df.times(topic)
        parts = [p for p in topic.split("/") if p] or ["topic"]
        base = _entity(*parts)
        if not len(times):
            continue

        def index(idx: np.ndarray | slice = slice(None)) -> list:
            return [rr.TimeColumn("log_time", timestamp=times[idx].astype("datetime64[ns]"))]

        kind = image_kind(table)
        if kind is not None:
            read = image_reader(table, topic)  # video: decodes in message order
            fmts = table.column("format").to_pylist() if kind == "compressed" else [""] * table.num_rows
            data = table.column("data")
            for start in range(0, table.num_rows, CHUNK_FRAMES):
                rows = range(start, min(table.num_rows, start + CHUNK_FRAMES))
                blobs, types = [], []
                for r in rows:
                    fmt = str(fmts[r] or "").lower()
                    if kind == "compressed" and ("jpeg" in fmt or "jpg" in fmt or "png" in fmt):
                        blobs.append(_as_bytes(data[r]))  # passed through as recorded
                        types.append("image/png" if "png" in fmt else "image/jpeg")
                    else:
                        blobs.append(_jpeg(read(r), quality))
                        types.append("image/jpeg")
                rec.send_columns(base, indexes=index(slice(rows.start, rows.stop)),
                                 columns=rr.EncodedImage.columns(blob=blobs, media_type=types))
            continue
        cols, _ = numeric_columns(table, MAX_LOG_COLUMNS)
        if cols:
            for name, v in cols.items():
                ent = base + "/" + rr.escape_entity_path_part(name)
                rec.log(ent, rr.SeriesLines(names=f"{topic} {name}"), static=True)
                rec.send_columns(ent, indexes=index(), columns=rr.Scalars.columns(scalars=v))
            continue
        texts = list(_row_texts(table, pa))
        rec.send_columns(base, indexes=index(), columns=rr.TextLog.columns(text=texts))


def _as_bytes(v: Any) -> bytes:
    x = v.as_py() if hasattr(v, "as_py") else v
    if isinstance(x, (bytes, bytearray)):
        return bytes(x)
    return bytes(np.asarray(x, dtype=np.uint8).tobytes())


def _row_texts(table: Any, pa: Any) -> Iterator[str]:
    keep = [c for c in table.column_names if c not in ("log_time", "publish_time")
            and not pa.types.is_binary(table.schema.field(c).type)][:20]
    sub = table.select(keep).to_pylist() if keep else [{} for _ in range(table.num_rows)]
    for row in sub:
        yield json.dumps(row, default=str)[:500]
