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


class VideoError(PrfError):
    """A video file cannot be opened, demuxed or decoded (corrupt, truncated, unknown codec)."""


class TimestampError(PrfError):
    """A requested timestamp has no frame within ``tolerance_s`` (as LeRobot's tolerance check)."""


class DeltaTimestampsError(PrfError, ValueError):
    """``delta_timestamps`` is malformed or a value is off the dataset's fps grid."""


class WriteError(PrfError):
    """Writing a dataset failed; nothing partial is left at the destination."""


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


class LogError(PrfError):
    """A robot log (MCAP, ROS 1 bag, ROS 2 bag) cannot be read or converted."""


class NotALogError(LogError, ValueError):
    """The path is not a log prf reads (not MCAP, not a ROS 1 bag, not a ROS 2 bag), or is empty."""


class LogReadError(LogError):
    """A log is recognised but unreadable: corrupt or truncated beyond what can be salvaged."""


class DataFrameError(PrfError, ValueError):
    """A :class:`prf.RoboticsDataFrame` operation got bad arguments (unknown topic or column, bad
    period or tolerance) or data it cannot work on."""


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
    "VideoError",
    "TimestampError",
    "DeltaTimestampsError",
    "WriteError",
    "SamplerError",
    "ResumeError",
    "OptionsError",
    "StatsError",
    "LogError",
    "NotALogError",
    "LogReadError",
    "DataFrameError",
]
