"""The format layer: LeRobot's on-disk layout (v2.0, v2.1, v3.0) as one metadata model.

Nothing here knows about samples, decoding or loading; :mod:`prf.dataset` and the writer build on it.
"""

from .meta import (
    CAMERA_DTYPES,
    INDEX_KEYS,
    SUPPORTED_VERSIONS,
    DatasetMeta,
    Episode,
    Episodes,
    EpisodeTable,
    Feature,
    VideoRef,
    flatten_names,
    read_parquet,
)

__all__ = ["CAMERA_DTYPES", "INDEX_KEYS", "SUPPORTED_VERSIONS", "DatasetMeta", "Episode", "Episodes", "EpisodeTable", "Feature", "VideoRef",
           "flatten_names", "read_parquet"]
