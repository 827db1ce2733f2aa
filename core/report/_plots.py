"""Time-series plots for the report: matplotlib (Agg, no pyplot state) -> base64 PNG.

Each figure is at most :data:`MAX_WIDTH_PX` wide and :data:`ROW_PX` high per row of panels, at most
:data:`MAX_PANELS` panels (one per joint / column), and every series is downsampled to at most
:data:`MAX_POINTS` points (min/max kept per bucket, so spikes stay visible), which bounds a plot's
PNG to a few hundred kB whatever the episode length.
"""

from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np

MAX_POINTS = 2000
MAX_PANELS = 32
MAX_WIDTH_PX = 1100
ROW_PX = 150
DPI = 80


def downsample(t: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """``(t, y)`` with at most ``max_points`` points: per bucket the min and the max of ``y`` (``y`` is
    ``[n]`` or ``[n, k]``; for ``[n, k]`` buckets keep their first and last rows)."""
    n = t.shape[0]
    if n <= max_points:
        return t, y
    buckets = max(1, max_points // 2)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    if y.ndim == 1:
        clean = np.where(np.isfinite(y), y, 0.0)
        idx = []
        for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
            if b > a:
                idx += sorted((a + int(np.argmin(clean[a:b])), a + int(np.argmax(clean[a:b]))))
        idx = np.unique(np.asarray(idx, dtype=np.int64))
    else:  # per bucket its first and last row
        idx = np.unique(np.concatenate([edges[:-1], np.maximum(edges[1:] - 1, edges[:-1])]))
    return t[idx], y[idx]


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def panels_png(t: np.ndarray, series: dict[str, np.ndarray], names: Sequence[str], *, title: str,
               xlabel: str = "time (s)", marks: Sequence[tuple[float, float]] = (), mark_label: str = "gap") -> str:
    """One panel per column ``d`` (titled ``names[d]``), every series of ``series`` (``{label: [n, D]}``,
    same ``D``) drawn in each panel against ``t`` (``[n]``, seconds). ``marks``: ``(t0, t1)`` spans shaded
    red in every panel (timestamp gaps, dropped frames). Returns the base64 PNG."""
    from matplotlib.figure import Figure

    D = min(len(names), MAX_PANELS)
    cols = 1 if D == 1 else (2 if D <= 4 else (3 if D <= 9 else 4))
    rows = -(-D // cols)
    w_in = MAX_WIDTH_PX / DPI
    h_in = (ROW_PX * rows + 40) / DPI
    fig = Figure(figsize=(w_in, h_in), layout="constrained")
    fig.suptitle(title, fontsize=10)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    ds = {k: downsample(t, np.asarray(v, dtype=np.float64).reshape(len(t), -1)) for k, v in series.items()}
    for d in range(rows * cols):
        ax = axes[d // cols][d % cols]
        if d >= D:
            ax.set_visible(False)
            continue
        for label, (tt, yy) in ds.items():
            if d < yy.shape[1]:
                ax.plot(tt, yy[:, d], linewidth=1.0, label=label)
        for a, b in marks:
            ax.axvspan(a, max(b, a + 1e-9), facecolor="red", edgecolor="red", alpha=0.35, linewidth=1.5)
        ax.set_title(str(names[d]), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        if d == 0 and (len(ds) > 1 or marks):
            handles, labels = ax.get_legend_handles_labels()
            if marks:
                from matplotlib.patches import Patch

                handles.append(Patch(color="red", alpha=0.35))
                labels.append(mark_label)
            ax.legend(handles, labels, fontsize=7, loc="best")
        if d // cols == rows - 1:
            ax.set_xlabel(xlabel, fontsize=8)
    return _png(fig)
