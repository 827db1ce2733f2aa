"""LeRobot v3.0's on-disk layout: path templates, chunk/file numbering of shards, the data parquet
schema declared from ``info.json`` features, and ``meta/tasks.parquet`` as LeRobot writes it.

Shared by everything that writes v3.0 (the writer, the editors in :mod:`prf.edit`); readers use the
templates stored in each dataset's ``info.json`` instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASKS_PATH = "meta/tasks.parquet"
DEFAULT_CHUNKS_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200

#: every parquet file prf writes stores CRC-32 page checksums (Parquet's optional PageHeader.crc), which
#: prf's readers verify: a flipped bit in a data page is an error naming the file, not a silently changed
#: value. Files written without them (LeRobot's own writer, most third-party datasets) cannot be checked.
PARQUET_WRITE_OPTIONS: dict[str, Any] = {"write_page_checksum": True}

#: the index columns every frame row carries, with their ``info.json`` declarations.
INDEX_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}


def chunk_file(n: int, chunks_size: int = DEFAULT_CHUNKS_SIZE) -> tuple[int, int]:
    """``(chunk_index, file_index)`` of the ``n``-th shard (0-based) when a chunk holds ``chunks_size``
    files, as LeRobot's ``update_chunk_file_indices`` counts them."""
    return n // chunks_size, n % chunks_size


def shard_number(chunk_index: int, file_index: int, chunks_size: int = DEFAULT_CHUNKS_SIZE) -> int:
    """Inverse of :func:`chunk_file`."""
    return int(chunk_index) * chunks_size + int(file_index)


def data_path(n: int, chunks_size: int = DEFAULT_CHUNKS_SIZE) -> str:
    c, f = chunk_file(n, chunks_size)
    return DATA_PATH.format(chunk_index=c, file_index=f)


def video_path(key: str, n: int, chunks_size: int = DEFAULT_CHUNKS_SIZE) -> str:
    c, f = chunk_file(n, chunks_size)
    return VIDEO_PATH.format(video_key=key, chunk_index=c, file_index=f)


def episodes_path(n: int, chunks_size: int = DEFAULT_CHUNKS_SIZE) -> str:
    c, f = chunk_file(n, chunks_size)
    return EPISODES_PATH.format(chunk_index=c, file_index=f)


def episodes_files(root: str | Path) -> list[Path]:
    """A v3.0 dataset's ``meta/episodes/chunk-*/file-*.parquet`` files, in order (listed, never passed
    on as a glob pattern: a root with ``[`` or ``*`` in its path stays literal)."""
    return sorted((Path(root) / "meta" / "episodes").glob("chunk-*/file-*.parquet"))


def arrow_type(dtype: str, shape: Iterable[int]) -> pa.DataType:
    """The Arrow type LeRobot 0.4.x stores a feature as: a scalar for shape ``[1]``, else nested
    ``fixed_size_list``s."""
    shape = [int(s) for s in shape]
    t = pa.from_numpy_dtype(np.dtype(dtype))
    if shape == [1]:
        return t
    for n in reversed(shape):
        t = pa.list_(t, n)
    return t


def hf_feature(dtype: str, shape: Iterable[int]) -> dict[str, Any]:
    """The ``datasets`` feature declaration (schema metadata ``huggingface``) of one column."""
    shape = [int(s) for s in shape]
    f: dict[str, Any] = {"dtype": dtype, "_type": "Value"}
    if shape == [1]:
        return f
    for n in reversed(shape):
        f = {"feature": f, "length": n, "_type": "List"}
    return f


def data_schema(features: Mapping[str, Mapping[str, Any]], passthrough: Mapping[str, pa.Field] | None = None
                ) -> pa.Schema:
    """The data parquet schema of ``features`` (``info.json`` declarations, index columns included;
    ``video`` features are not columns). Features whose dtype is no NumPy dtype (``image``) take their
    field from ``passthrough`` (the source file's), keeping its ``huggingface`` declaration."""
    fields, hf = [], {}
    passthrough = passthrough or {}
    for key, spec in features.items():
        dtype = str(spec["dtype"])
        if dtype == "video":
            continue
        try:
            t = arrow_type(dtype, spec.get("shape", [1]))
            hf[key] = hf_feature(dtype, spec.get("shape", [1]))
        except TypeError:
            if key not in passthrough:
                raise
            t = passthrough[key].type
            hf[key] = {"_type": "Image"} if dtype == "image" else {"dtype": dtype, "_type": "Value"}
        fields.append(pa.field(key, t))
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": hf}})})


def write_tasks(path: Path, tasks: Iterable[str]) -> None:
    """``meta/tasks.parquet`` as LeRobot writes it: ``task_index`` and the task text as the pandas
    index column ``__index_level_0__`` (tasks in ``task_index`` order)."""
    names = list(tasks)
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0",
    }
    table = pa.table(
        {"task_index": pa.array(range(len(names)), pa.int64()), "__index_level_0__": pa.array(names, pa.string())},
    ).replace_schema_metadata({"pandas": json.dumps(pandas_meta)})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **PARQUET_WRITE_OPTIONS)


def write_parquet(table: pa.Table, path: Path, *, compact: bool = False) -> None:
    """Write one parquet file. ``compact``: floating-point columns (and lists of them) with Parquet's
    ``BYTE_STREAM_SPLIT`` encoding and zstd, the rest zstd with dictionaries; else snappy (LeRobot's)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not compact:
        pq.write_table(table, path, compression="snappy", **PARQUET_WRITE_OPTIONS)
        return
    floats = {f.name: leaf for f in table.schema if (leaf := _float_leaf(f)) is not None}
    pq.write_table(table, path, compression="zstd", compression_level=9,
                   use_byte_stream_split=list(floats.values()) or False,
                   use_dictionary=[f.name for f in table.schema if f.name not in floats], **PARQUET_WRITE_OPTIONS)


def _float_leaf(field: pa.Field) -> str | None:
    """The Parquet leaf column path of a float feature (``action.list.element`` for a list), else None."""
    t, path = field.type, field.name
    while pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
        t, path = t.value_type, path + ".list.element"
    return path if pa.types.is_floating(t) else None
