"""SQL over LeRobot datasets and converted robot logs with DuckDB (embedded, in process).

Views (DuckDB reads the parquet files in place; nothing is copied into memory first):

``frames``
    every non-camera column of every frame: ``read_parquet`` over the dataset's data files (v3.0:
    ``data/chunk-*/file-*.parquet``; v2.x: one parquet per episode), the files of episodes that are
    present. Vector features are DuckDB arrays (``action[1]`` is the first element, 1-based).
``episodes``
    one row per episode of the episodes table: ``episode_index``, ``length``, ``tasks`` (list of
    strings), ``dataset_from_index``, ``dataset_to_index``, ``data_path``, per camera
    ``videos/{key}/path``, ``videos/{key}/from_timestamp``, ``videos/{key}/to_timestamp``,
    ``files_present`` (bool: the episode's data and video files exist), and the ``stats/{key}/{stat}``
    columns (v3.0: the episodes parquet itself, read in place; v2.1: ``episodes_stats.jsonl``).
``tasks``
    ``task_index``, ``task``.
``scores``
    :func:`prf.score_episodes` of the dataset (computed only when a query names ``scores``).

A converted log (an output folder of ``prf convert``: ``metadata.json`` + one parquet per topic) gives
one view per topic, named by the topic with every character outside ``[A-Za-z0-9_]`` replaced by
``_`` and leading underscores dropped (``/turtle1/cmd_vel`` -> ``turtle1_cmd_vel``), plus a ``topics``
view (``topic``, ``view``, ``message_type``, ``count``, ``file``).

Several sources in one query: ``prf.sql({"a": path_a, "b": path_b}, ...)`` puts each source's views
in its own DuckDB schema (``a.frames``, ``b.episodes``, ...).
"""

from __future__ import annotations

import json
import numbers
import re
from pathlib import Path
from typing import Any, Mapping, Union

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import MetadataError, QueryError
from ..format import DatasetMeta, layout

Source = Union[str, Path, DatasetMeta, Mapping[str, Any]]

_SCORES_REF = re.compile(r"\bscores\b", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _duckdb():
    try:
        import duckdb
    except ImportError:
        raise ImportError("SQL over datasets needs DuckDB: pip install 'prf[query]'") from None
    return duckdb


def _lit(path: str | Path) -> str:
    """A SQL string literal for a path."""
    return "'" + str(path).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _root_of(source: Any) -> Path | DatasetMeta:
    if isinstance(source, DatasetMeta):
        return source
    meta = getattr(source, "meta", None)  # a prf.Dataset
    if isinstance(meta, DatasetMeta):
        return meta
    return Path(source).expanduser()


def data_files(meta: DatasetMeta) -> list[Path]:
    """The data parquet files of the episodes whose data file is present, sorted."""
    return sorted({meta.path(ep.data_path) for ep in meta.episodes.values() if meta.path(ep.data_path).is_file()})


def _episodes_meta_table(meta: DatasetMeta) -> pa.Table:
    """Per-episode columns prf derives from the metadata (paths, present flag; v2.x: everything)."""
    eps = list(meta.episodes.values())
    cols: dict[str, Any] = {"episode_index": pa.array([e.episode_index for e in eps], pa.int64())}
    if not meta.is_v3:
        cols["tasks"] = pa.array([list(e.tasks) for e in eps], pa.list_(pa.string()))
        cols["length"] = pa.array([e.length for e in eps], pa.int64())
        cols["dataset_from_index"] = pa.array([e.dataset_from_index for e in eps], pa.int64())
        cols["dataset_to_index"] = pa.array([e.dataset_to_index for e in eps], pa.int64())
    cols["data_path"] = pa.array([e.data_path for e in eps], pa.string())
    for key in meta.video_keys:
        cols[f"videos/{key}/path"] = pa.array([e.videos[key].path for e in eps], pa.string())
        if not meta.is_v3:
            cols[f"videos/{key}/from_timestamp"] = pa.array([e.videos[key].from_timestamp for e in eps], pa.float64())
            cols[f"videos/{key}/to_timestamp"] = pa.array([e.videos[key].to_timestamp for e in eps], pa.float64())
    cols["files_present"] = pa.array([all(p.is_file() for p in meta.episode_files(e.episode_index)) for e in eps])
    table = pa.table(cols)
    if not meta.is_v3:
        stats = _v21_episode_stats(meta)
        if stats is not None:
            table = _left_join(table, stats)
    return table


def _v21_episode_stats(meta: DatasetMeta) -> pa.Table | None:
    """v2.1 ``episodes_stats.jsonl`` flattened to ``stats/{key}/{stat}`` columns (non-camera keys)."""
    path = meta.root / "meta" / "episodes_stats.jsonl"
    if not path.is_file():
        return None
    cams = set(meta.camera_keys)
    try:
        lines = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
        pairs = sorted({(k, s) for r in lines for k, v in r["stats"].items() if k not in cams for s in v})
        cols: dict[str, Any] = {"episode_index": pa.array([int(r["episode_index"]) for r in lines], pa.int64())}
        for k, s in pairs:
            vals = [r["stats"].get(k, {}).get(s) for r in lines]
            cols[f"stats/{k}/{s}"] = pa.array(
                [None if v is None else [float(x) for x in (v if isinstance(v, list) else [v])] for v in vals],
                pa.list_(pa.float64()))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise MetadataError(f"{path}: malformed episode stats ({e})") from None
    return pa.table(cols)


def _left_join(left: pa.Table, right: pa.Table) -> pa.Table:
    """``left`` with ``right``'s columns matched by ``episode_index`` (null where ``right`` has none)."""
    pos = {e: i for i, e in enumerate(right.column("episode_index").to_pylist())}
    take = pa.array([pos.get(e) for e in left.column("episode_index").to_pylist()], pa.int64())
    for name in right.column_names:
        if name != "episode_index":
            left = left.append_column(name, right.column(name).take(take))
    return left


def _create_dataset_views(con, meta: DatasetMeta, schema: str | None, with_scores: bool) -> None:
    p = f"{_ident(schema)}." if schema else ""
    tag = schema or "main"
    files = data_files(meta)
    cams = set(meta.camera_keys)
    if files:
        names = pq.read_schema(files[0]).names
        drop = [c for c in names if c in cams]
        exclude = f" EXCLUDE ({', '.join(_ident(c) for c in drop)})" if drop else ""
        file_list = "[" + ", ".join(_lit(f) for f in files) + "]"
        con.execute(f"CREATE VIEW {p}frames AS SELECT *{exclude} FROM read_parquet({file_list}, union_by_name=true)")
    else:  # no data file present: an empty frames view with the index columns
        empty = pa.table({k: pa.array([], pa.float32() if k == "timestamp" else pa.int64())
                          for k in ("timestamp", "frame_index", "episode_index", "index", "task_index")})
        con.register(f"_prf_{tag}_frames", empty)
        con.execute(f"CREATE VIEW {p}frames AS SELECT * FROM _prf_{tag}_frames")
    epmeta = _episodes_meta_table(meta)
    con.register(f"_prf_{tag}_epmeta", epmeta)
    if meta.is_v3:
        # the files listed, not a glob duckdb expands: a root with "[" or "*" in its path matched nothing
        ep_list = "[" + ", ".join(_lit(f) for f in layout.episodes_files(meta.root)) + "]"
        con.execute(
            f"CREATE VIEW {p}episodes AS SELECT e.*, m.* EXCLUDE (episode_index) FROM "
            f"read_parquet({ep_list}, union_by_name=true) e JOIN _prf_{tag}_epmeta m USING (episode_index)"
        )
    else:
        con.execute(f"CREATE VIEW {p}episodes AS SELECT * FROM _prf_{tag}_epmeta")
    tasks = pa.table({"task_index": pa.array(list(meta.tasks), pa.int64()),
                      "task": pa.array(list(meta.tasks.values()), pa.string())})
    con.register(f"_prf_{tag}_tasks", tasks)
    con.execute(f"CREATE VIEW {p}tasks AS SELECT * FROM _prf_{tag}_tasks")
    if with_scores:
        from .scores import score_episodes

        con.register(f"_prf_{tag}_scores", score_episodes(meta))
        con.execute(f"CREATE VIEW {p}scores AS SELECT * FROM _prf_{tag}_scores")


def topic_view_name(topic: str) -> str:
    """The view name of a converted log's topic: ``/turtle1/cmd_vel`` -> ``turtle1_cmd_vel``."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", topic).lstrip("_") or "topic"
    return f"t_{name}" if name[0].isdigit() else name


def _create_log_views(con, root: Path, schema: str | None) -> None:
    p = f"{_ident(schema)}." if schema else ""
    tag = schema or "main"
    path = root / "metadata.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        topics = meta["topics"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MetadataError(f"{path}: not the metadata of a converted log ({e})") from None
    rows: dict[str, list] = {"topic": [], "view": [], "message_type": [], "count": [], "file": []}
    used: set[str] = {"topics"}
    for name, t in topics.items():
        if not t.get("file"):
            continue
        view = topic_view_name(name)
        while view in used:
            view += "_"
        used.add(view)
        con.execute(f"CREATE VIEW {p}{_ident(view)} AS SELECT * FROM read_parquet({_lit(root / t['file'])})")
        for k, v in (("topic", name), ("view", view), ("message_type", t.get("message_type")),
                     ("count", t.get("count")), ("file", t["file"])):
            rows[k].append(v)
    con.register(f"_prf_{tag}_topics", pa.table({**{k: pa.array(v, pa.string()) for k, v in rows.items() if k != "count"},
                                                 "count": pa.array(rows["count"], pa.int64())}))
    con.execute(f"CREATE VIEW {p}topics AS SELECT topic, view, message_type, count, file FROM _prf_{tag}_topics")


def _add_source(con, source: Any, schema: str | None, with_scores: bool) -> None:
    src = _root_of(source)
    if isinstance(src, DatasetMeta):
        _create_dataset_views(con, src, schema, with_scores)
    elif (src / "meta" / "info.json").is_file():
        _create_dataset_views(con, DatasetMeta(src), schema, with_scores)
    elif (src / "metadata.json").is_file():
        _create_log_views(con, src, schema)
    else:
        raise MetadataError(f"{src}: neither a LeRobot dataset (meta/info.json) nor a converted log (metadata.json)")


def _label(source: Any) -> str:
    if isinstance(source, Mapping):
        return ", ".join(f"{k}={_label(v)}" for k, v in source.items())
    src = _root_of(source)
    return str(src.root if isinstance(src, DatasetMeta) else src)


def connect(source: Source, *, scores: bool = False):
    """A DuckDB connection (in memory) with the views of ``source`` (see the module doc).

    Args:
        source: a dataset folder, a :class:`prf.DatasetMeta` or :class:`prf.Dataset`, a converted-log
            folder, or ``{schema name: one of those}`` for several in one query.
        scores: also create the ``scores`` view(s) (computes :func:`prf.score_episodes`).

    Returns:
        ``duckdb.DuckDBPyConnection``; ``con.sql(q)`` runs further queries on the same views.

    Raises:
        MetadataError: a path is neither a LeRobot dataset nor a converted log, or its metadata is bad.
        QueryError: a schema name is not a plain identifier.
        ImportError: DuckDB is not installed (``pip install 'prf[query]'``).
    """
    duckdb = _duckdb()
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")  # no progress bar on stderr in prf query / tests
        if isinstance(source, Mapping):
            for name, src in source.items():
                if not _NAME.match(str(name)) or str(name).lower() == "main":
                    raise QueryError(f"schema name {name!r} must be an identifier ([A-Za-z_][A-Za-z0-9_]*) other than 'main'")
                con.execute(f"CREATE SCHEMA {_ident(name)}")
                _add_source(con, src, str(name), scores)
        else:
            _add_source(con, source, None, scores)
    except duckdb.Error as e:
        con.close()
        raise QueryError(f"{_label(source)}: creating the views failed: {e}", str(e)) from None
    except BaseException:
        con.close()
        raise
    return con


def _to_arrow(rel) -> pa.Table:
    if rel is None:  # a statement without a result (CREATE, SET ...)
        return pa.table({})
    f = getattr(rel, "to_arrow_table", None) or rel.arrow  # DuckDB >= 1.4 / older
    return f()


def sql(source: Source, query: str) -> pa.Table:
    """Run one SQL query (DuckDB's dialect) over the views of ``source``; the result as a
    ``pyarrow.Table``.

    ``source`` as in :func:`connect`: ``prf.sql(path, "SELECT episode_index, count(*) FROM frames
    GROUP BY 1")``, or ``prf.sql({"a": p, "b": q}, "SELECT ... FROM a.frames JOIN b.frames ...")``.
    The ``scores`` view is created only when the query mentions ``scores``.

    Raises:
        QueryError: DuckDB rejected or failed the query (``.duckdb_message`` holds its message).
        MetadataError: a source is not a dataset or converted log.
    """
    if not isinstance(query, str) or not query.strip():
        raise QueryError(f"{_label(source)}: the query must be a non-empty SQL string, got {query!r}")
    duckdb = _duckdb()
    con = connect(source, scores=bool(_SCORES_REF.search(query)))
    try:
        return _to_arrow(con.sql(query))
    except duckdb.Error as e:
        raise QueryError(f"{_label(source)}: {e}", str(e)) from None
    finally:
        con.close()


def resolve_episodes(source: Any, episodes: Any) -> list[int] | None:
    """The episode list that ``open_dataset(source, episodes=...)`` means.

    ``episodes`` may be ``None`` (all: returns ``None``), a SQL query string over the views of
    ``source`` (``"SELECT episode_index FROM episodes WHERE length > 100"``), a ``pyarrow.Table``
    (its ``episode_index`` column, else its only column), a pyarrow array, or any iterable of ints
    (NumPy, pandas, list). A query's result is taken as a table. Returns ``int`` episode indices:
    sorted and de-duplicated for a query, table or pyarrow array (they select a set); in the given
    order otherwise.

    Raises:
        QueryError: the query fails, or its result has several columns and none is ``episode_index``,
            or a value is not an integer.
    """
    if episodes is None:
        return None
    # a query or a result table selects a set (sorted); any other sequence keeps its order, as
    # open_dataset(episodes=[...]) always did
    if isinstance(episodes, (str, pa.Table, pa.Array, pa.ChunkedArray)):
        keep_order, label = False, _label(source)
    else:
        keep_order, label = True, "episodes="
    if isinstance(episodes, str):
        episodes = sql(source, episodes)
    if isinstance(episodes, pa.Table):
        if "episode_index" in episodes.column_names:
            episodes = episodes.column("episode_index")
        elif episodes.num_columns == 1:
            episodes = episodes.column(0)
        else:
            raise QueryError(f"{label}: the episode selection has columns {episodes.column_names}; "
                             f"it needs an 'episode_index' column or a single column")
    if isinstance(episodes, (pa.Array, pa.ChunkedArray)):
        episodes = episodes.to_pylist()
    elif hasattr(episodes, "tolist"):  # NumPy array, pandas Series
        episodes = episodes.tolist()
    out = []
    for e in episodes:
        ok = isinstance(e, numbers.Integral) and not isinstance(e, bool) or (isinstance(e, float) and e.is_integer())
        if not ok:
            raise QueryError(f"{label}: episode selection value {e!r} is not an episode index")
        out.append(int(e))
    return out if keep_order else sorted(set(out))
