"""See the data: a self-contained HTML report (:func:`write_report`), a Rerun recording
(:func:`write_recording`), and the CLI commands ``prf report`` / ``prf view`` / ``prf profile``
(the loader profile itself is :meth:`prf.Loader.profile`, :mod:`prf.loading.profile`).

matplotlib (report plots) and rerun-sdk (recordings) are imported only when a function needs them
(``pip install "prf[report]"``), so ``import prf`` works without the extra.
"""

from __future__ import annotations

from typing import Any


def write_report(*args: Any, **kwargs: Any):
    """See :func:`prf.report.html.write_report`."""
    from .html import write_report as impl

    return impl(*args, **kwargs)


def write_recording(*args: Any, **kwargs: Any):
    """See :func:`prf.report.recording.write_recording`."""
    from .recording import write_recording as impl

    return impl(*args, **kwargs)


__all__ = ["write_report", "write_recording"]
