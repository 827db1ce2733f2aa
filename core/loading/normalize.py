"""Feature normalization with a dataset's statistics, with LeRobot's modes and formulas.

Modes (LeRobot's ``NormalizationMode``; lower or upper case):

- ``mean_std``: ``(x - mean) / (std + eps)``
- ``min_max``: ``2 * (x - min) / (max - min) - 1`` into ``[-1, 1]`` (``max == min`` divides by ``eps``)
- ``quantiles``: the same with ``q01`` / ``q99``; ``quantile10``: with ``q10`` / ``q90``
- ``identity``: unchanged

with ``eps = 1e-8`` as LeRobot's ``NormalizerProcessorStep``. Normalized values are ``float32``.
Camera frames (``uint8 [..., H, W, C]``) are first scaled to ``[0, 1]`` (LeRobot's camera stats are
per channel on that scale, shaped ``[C, 1, 1]``); the stats broadcast over the channel axis.
Numeric features broadcast their stats (shape of the feature) over the leading batch and time axes.

Arrays of any library come back as the same library's arrays (a torch tensor stays a tensor on its
device, a ``jax.Array`` a ``jax.Array``): the arithmetic runs with the array's own operators and its
array-API namespace (``x.__array_namespace__()``; torch tensors, which have none, through their own
``to``/``as_tensor``), so ``prf`` imports no framework. Other objects are computed as NumPy.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import StatsError

EPS = 1e-8

#: mode -> (the two stats it uses, or None for identity)
MODES: dict[str, tuple[str, str] | None] = {
    "mean_std": ("mean", "std"),
    "min_max": ("min", "max"),
    "quantiles": ("q01", "q99"),
    "quantile10": ("q10", "q90"),
    "identity": None,
}


class _TorchNamespace:
    """The few array-API calls the normalizer needs, on torch (which has no ``__array_namespace__``)."""

    def __init__(self, torch: Any):
        self._torch = torch
        self.float32 = torch.float32
        self.uint8 = torch.uint8

    def astype(self, x: Any, dtype: Any) -> Any:
        return x.to(dtype)

    def asarray(self, values: Any, *, dtype: Any = None, device: Any = None) -> Any:
        return self._torch.as_tensor(values, dtype=dtype, device=device)


def array_namespace(x: Any) -> Any:
    """The array-API namespace of ``x``, or ``None`` for NumPy arrays and non-arrays (NumPy is used).

    Uses ``x.__array_namespace__()`` (NumPy 2, JAX, MLX, CuPy...); for torch tensors a small shim over
    the already imported ``torch`` module (never imported here)."""
    if isinstance(x, (np.ndarray, np.generic)) or not hasattr(x, "dtype"):
        return None
    get = getattr(x, "__array_namespace__", None)
    if get is not None:
        try:
            return get()
        except Exception:  # noqa: BLE001 - an array whose namespace is unavailable is computed as NumPy
            return None
    mod = type(x).__module__ or ""
    if mod == "torch" or mod.startswith("torch."):
        torch = sys.modules.get("torch")
        if torch is not None:
            return _TorchNamespace(torch)
    return None


def _constant(xp: Any, values: np.ndarray, like: Any) -> Any:
    """``values`` (float32) as an array of ``like``'s namespace, on ``like``'s device."""
    device = getattr(like, "device", None)
    if device is not None and not callable(device):
        try:
            return xp.asarray(values, dtype=xp.float32, device=device)
        except TypeError:  # a namespace whose asarray takes no device (its arrays live in one place)
            pass
    return xp.asarray(values, dtype=xp.float32)


def as_array_like(values: Any, like: Any) -> Any:
    """``values`` (NumPy) as an array of ``like``'s library and device (NumPy when ``like`` is NumPy)."""
    xp = array_namespace(like)
    if xp is None:
        return values
    device = getattr(like, "device", None)
    if device is not None and not callable(device):
        try:
            return xp.asarray(values, device=device)
        except TypeError:
            pass
    return xp.asarray(values)


class Normalizer:
    """Normalize (and unnormalize) the keys of a batch with per-feature statistics.

    Args:
        modes: ``{key: mode}`` (see the module docstring). A goal key ``{key}.goal`` (see
            :func:`prf.open_dataset`'s ``goal=``) without stats of its own takes ``key``'s.
        stats: ``{key: {"mean": ..., "std": ..., "min": ..., "max": ..., "q01": ...}}`` arrays or nested
            lists, as :meth:`prf.Dataset.stats` or :func:`prf.compute_stats` return.
        cameras: the camera keys (their values are frames, scaled to ``[0, 1]`` first).
        eps: see the module docstring.

    Raises:
        StatsError: an unknown mode, a key without stats, or stats lacking what a mode needs.
    """

    def __init__(
        self,
        modes: Mapping[str, str],
        stats: Mapping[str, Mapping[str, Any]],
        *,
        cameras: Iterable[str] = (),
        eps: float = EPS,
    ):
        self.cameras = set(cameras)
        self.eps = float(eps)
        self.modes: dict[str, str] = {}
        self._params: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for key, mode in modes.items():
            m = str(getattr(mode, "value", mode)).lower()
            if m not in MODES:
                raise StatsError(f"normalize[{key!r}]: unknown mode {mode!r}; modes: {sorted(MODES)}")
            self.modes[key] = m
            goal_of = key[: -len(".goal")] if key.endswith(".goal") else None
            if goal_of is not None and goal_of in self.cameras:
                self.cameras.add(key)  # a goal image (open_dataset(goal=...)) is a frame of its camera
            need = MODES[m]
            if need is None:
                continue
            if key not in stats and goal_of is not None and goal_of in stats:
                stats = {**stats, key: stats[goal_of]}  # {key}.goal: normalized with the key's statistics
            if key not in stats:
                raise StatsError(
                    f"normalize[{key!r}] = {m!r}: no statistics for {key!r} (stats have {sorted(stats)[:12]}); "
                    f"compute them with prf.compute_stats(dataset)"
                )
            st = stats[key]
            missing = [n for n in need if n not in st]
            if missing:
                raise StatsError(
                    f"normalize[{key!r}] = {m!r} needs stats {list(need)}, but {missing} are missing "
                    f"(present: {sorted(st)}); compute them with prf.compute_stats(dataset)"
                )
            a = np.asarray(st[need[0]], dtype=np.float64)
            b = np.asarray(st[need[1]], dtype=np.float64)
            if key in self.cameras:  # [C, 1, 1] -> [C] on the channel-last axis
                a, b = a.reshape(-1), b.reshape(-1)
            if m == "mean_std":
                shift, scale = a, b + self.eps
            else:
                span = b - a
                shift, scale = a, np.where(span == 0, self.eps, span) / 2.0  # 2 (x - lo) / span - 1
            self._params[key] = (shift.astype(np.float32), scale.astype(np.float32))

    def _prepare(self, key: str, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if key in self.cameras:
            return x.astype(np.float32) * np.float32(1.0 / 255.0) if x.dtype == np.uint8 else x.astype(np.float32)
        return x.astype(np.float32)

    def _normalize_xp(self, xp: Any, key: str, x: Any) -> Any:
        y = xp.astype(x, xp.float32)
        if key in self.cameras and x.dtype == xp.uint8:
            y = y * (1.0 / 255.0)
        if key not in self._params:
            return y
        shift, scale = self._params[key]
        try:
            out = (y - _constant(xp, shift, y)) / _constant(xp, scale, y)
        except (ValueError, TypeError, RuntimeError) as e:
            raise StatsError(
                f"normalize[{key!r}]: stats of shape {shift.shape} do not broadcast to values of shape "
                f"{tuple(y.shape)} ({e})"
            ) from None
        return out if self.modes[key] == "mean_std" else out - 1.0

    def normalize(self, key: str, x: Any) -> Any:
        """``x`` normalized as ``float32`` (same shape, same array library and device as ``x``).

        Raises:
            StatsError: the stats don't broadcast to ``x``.
        """
        if key in self.modes:
            xp = array_namespace(x)
            if xp is not None:
                return self._normalize_xp(xp, key, x)
        if key not in self._params:
            return self._prepare(key, x) if key in self.modes else x
        shift, scale = self._params[key]
        y = self._prepare(key, x)
        try:
            out = (y - shift) / scale
        except ValueError:
            raise StatsError(
                f"normalize[{key!r}]: stats of shape {shift.shape} do not broadcast to values of shape {y.shape}"
            ) from None
        if self.modes[key] != "mean_std":
            out -= 1.0
        return out.astype(np.float32, copy=False)

    def unnormalize(self, key: str, y: Any) -> Any:
        """The inverse of :meth:`normalize` (cameras come back on the ``[0, 1]`` scale, ``float32``;
        same array library as ``y``)."""
        xp = array_namespace(y)
        if key not in self._params:
            return y if xp is not None else np.asarray(y)
        shift, scale = self._params[key]
        if xp is not None:
            yf = xp.astype(y, xp.float32)
            if self.modes[key] == "mean_std":
                return yf * _constant(xp, scale - np.float32(self.eps), yf) + _constant(xp, shift, yf)
            return (yf + 1.0) * _constant(xp, scale, yf) + _constant(xp, shift, yf)
        y = np.asarray(y, dtype=np.float32)
        if self.modes[key] == "mean_std":
            return (y * (scale - np.float32(self.eps)) + shift).astype(np.float32)  # LeRobot: x * std + mean
        return ((y + 1.0) * scale + shift).astype(np.float32)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A new batch dict with every configured key normalized.

        Raises:
            StatsError: a configured key is not in the batch.
        """
        missing = [k for k in self.modes if k not in batch]
        if missing:
            raise StatsError(f"normalize names key(s) {missing} that the batch does not have ({sorted(batch)})")
        out = dict(batch)
        for key in self.modes:
            out[key] = self.normalize(key, batch[key])
        return out

    def __repr__(self) -> str:
        return f"prf.Normalizer({self.modes})"
