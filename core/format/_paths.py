"""Building file paths from dataset metadata without ever leaving the dataset root."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import MetadataError, UnsafePathError


def format_template(template: str, root: Path, what: str, **fields: Any) -> str:
    """Fill a path template from ``info.json`` (e.g. ``data_path``) and return the relative path.

    Raises:
        MetadataError: the template names a field prf does not know, or is not a string.
    """
    if not isinstance(template, str):
        raise MetadataError(f"{root / 'meta' / 'info.json'}: {what} must be a string, got {template!r}")
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as e:
        raise MetadataError(
            f"{root / 'meta' / 'info.json'}: {what} template {template!r} cannot be filled "
            f"with {sorted(fields)}: {e!r}"
        ) from None


def safe_join(root: Path, relative: str, what: str = "path") -> Path:
    """Join ``relative`` (from metadata) onto ``root``, refusing anything that escapes the root.

    The check is lexical (``..`` components, absolute paths, drive letters), so datasets whose files
    are symlinks into a cache (as a Hugging Face Hub snapshot is) still open.

    Raises:
        UnsafePathError: the path is absolute or climbs out of ``root``.
    """
    rel = str(relative).replace("\\", "/")
    posix = PurePosixPath(rel)
    norm = os.path.normpath(rel)
    if (
        posix.is_absolute()
        or (len(rel) > 1 and rel[1] == ":")
        or norm == ".."
        or norm.startswith("../")
        or ".." in PurePosixPath(norm).parts
    ):
        raise UnsafePathError(f"{root}: {what} {relative!r} from the metadata escapes the dataset root")
    return root / norm
