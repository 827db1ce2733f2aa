"""prf's exception hierarchy.

Every error prf raises on bad input derives from :class:`PrfError`. Messages name the file (and the
episode, where one is involved) and say what is wrong. Where a builtin exception type is the natural
one for a caller to catch (``FileNotFoundError``, ``ValueError``), the prf error subclasses it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable


class PrfError(Exception):
    """Base class of every error prf raises on bad input or bad data."""


class DatasetError(PrfError):
    """A dataset's metadata is missing, malformed or inconsistent."""


class MetadataError(DatasetError):
    """A metadata file (``meta/info.json``, episodes table, tasks) is missing or malformed."""


class UnsupportedVersionError(DatasetError):
    """The dataset's ``codebase_version`` is unknown or newer than prf reads."""


class UnsafePathError(DatasetError):
    """A path built from dataset metadata would escape the dataset root."""


class MissingFilesError(DatasetError, FileNotFoundError):
    """Files the selected episodes need are absent (e.g. a partial download).

    ``missing`` lists the absent paths; ``present_episodes`` the episodes whose files are all there,
    which can be passed as ``episodes=`` to open the part that is present.
    """

    def __init__(self, root: Path, missing: Iterable[Path], present_episodes: Iterable[int]):
        self.root = Path(root)
        self.missing = sorted({Path(p) for p in missing})
        self.present_episodes = sorted(int(e) for e in present_episodes)
        shown = ", ".join(str(p) for p in self.missing[:5])
        more = f" (and {len(self.missing) - 5} more)" if len(self.missing) > 5 else ""
        hint = (
            f"; the episodes whose files are present are {_short_list(self.present_episodes)}: "
            f"open them with episodes=[...]"
            if self.present_episodes
            else "; no episode has all its files"
        )
        super().__init__(
            f"{self.root}: {len(self.missing)} file(s) of the selected episodes are missing: "
            f"{shown}{more}{hint}"
        )


class DataFileError(DatasetError):
    """A data file (parquet) cannot be read, or its content contradicts the metadata."""


class SchemaError(DataFileError):
    """A data file's column disagrees with its declared feature in ``info.json``: another number of
    values per frame than the declared shape (a list of 41 where the shape says ``[17]``), or values
    that cannot be cast to the declared dtype. The message names the file and the feature key."""


class VideoError(PrfError):
    """A video file cannot be opened, demuxed or decoded (corrupt, truncated, unknown codec)."""


class TimestampError(PrfError):
    """A requested timestamp has no frame within ``tolerance_s`` (as LeRobot's tolerance check)."""


class DeltaTimestampsError(PrfError, ValueError):
    """``delta_timestamps`` is malformed or a value is off the dataset's fps grid."""


class WriteError(PrfError):
    """Writing a dataset failed; nothing partial is left at the destination."""


class EditError(PrfError, ValueError):
    """A dataset edit (delete, split, merge, select, append, upgrade, export) was asked for something
    impossible: unknown or no remaining episodes, datasets whose features or fps differ, an output
    inside a source, a dataset locked by another writer. Nothing is written when it is raised."""


class SamplerError(PrfError, ValueError):
    """A sampler's arguments are inconsistent (unknown episode, bad weights), or a state to resume
    from belongs to another sampler, shard or dataset."""


class ResumeError(SamplerError):
    """A state given to :meth:`prf.Loader.load_state_dict` (or ``LoaderIterator.reset``) is malformed
    or belongs to another configuration (batch size, sampler): resuming it would not continue the
    same sequence of batches. A :class:`SamplerError` (and so a ``ValueError``) too."""


class OptionsError(PrfError, ValueError):
    """A loader or adapter option has a value outside its allowed values (the message lists them)."""


class StatsError(PrfError):
    """Feature statistics are missing or malformed, or a normalization cannot be applied with them."""


class PluginError(PrfError, ImportError):
    """An adapter or command plugin (entry-point groups ``prf.adapters``, ``prf.commands``) is not
    installed, fails to import (its framework is missing), or does not provide what prf calls. The
    message names the package to install."""


class LogError(PrfError):
    """A robot log (MCAP, ROS 1 bag, ROS 2 bag) cannot be read or converted."""


class NotALogError(LogError, ValueError):
    """The path is not a log prf reads (not MCAP, not a ROS 1 bag, not a ROS 2 bag), or is empty."""


class LogReadError(LogError):
    """A log is recognised but unreadable: corrupt or truncated beyond what can be salvaged."""


class DataFrameError(PrfError, ValueError):
    """A :class:`prf.RoboticsDataFrame` operation got bad arguments (unknown topic or column, bad
    period or tolerance) or data it cannot work on."""


class RecordError(PrfError):
    """Recording from a message broker (``prf.record_mqtt``, ``prf record``) cannot start or go on: a
    bad broker URL or option, the broker unreachable at start, the recorder's folder locked by another
    recorder, a spool file that is not prf's. The message names the broker, topic or file."""


class QueryError(PrfError, ValueError):
    """A SQL query over a dataset (``prf.sql``, ``prf query``, ``open_dataset(episodes="SELECT ...")``)
    failed; the message is DuckDB's, prefixed with the dataset(s) queried. ``duckdb_message`` holds
    DuckDB's text alone."""

    def __init__(self, message: str, duckdb_message: str | None = None):
        super().__init__(message)
        self.duckdb_message = duckdb_message if duckdb_message is not None else message


def _short_list(values: list[int], limit: int = 20) -> str:
    if len(values) <= limit:
        return str(values)
    return "[" + ", ".join(str(v) for v in values[:limit]) + f", ... ({len(values)} in all)]"


__all__ = [
    "PrfError",
    "DatasetError",
    "MetadataError",
    "UnsupportedVersionError",
    "UnsafePathError",
    "MissingFilesError",
    "DataFileError",
    "SchemaError",
    "VideoError",
    "TimestampError",
    "DeltaTimestampsError",
    "WriteError",
    "EditError",
    "SamplerError",
    "ResumeError",
    "OptionsError",
    "StatsError",
    "PluginError",
    "LogError",
    "NotALogError",
    "LogReadError",
    "DataFrameError",
    "QueryError",
    "RecordError",
]


class StreamError(PrfError):
    """A file of a streamed dataset (``prf.open_dataset(url, streaming=True)``) could not be read:
    the server kept failing after the retries (connection resets, 5xx), refused the request (4xx,
    no byte-range support), or the file changed on the server since it was first read (another ETag
    or size: never a mix of old and new bytes). The message names the URL and the byte range.

    Attributes: ``url``, ``start``, ``end`` (the byte range ``[start, end)``, or ``None``), ``missing``
    (the server says the file does not exist: HTTP 404 / 410)."""

    def __init__(self, message: str, url: str = "", start: int | None = None, end: int | None = None):
        super().__init__(message)
        self.url, self.start, self.end = url, start, end
        self.missing = False
