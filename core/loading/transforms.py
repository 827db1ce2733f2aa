"""Batched image transforms on ``uint8`` NumPy frames, with seeded per-sample randomness.

Every transform takes frames ``uint8 [B, H, W, C]`` or, with a ``delta_timestamps`` window,
``[B, T, H, W, C]`` (a single ``[H, W, C]`` frame works too) and returns ``uint8`` frames with the same
leading axes; only ``H, W`` may change (resize, crops). Random transforms draw one set of parameters
per sample from the ``numpy.random.Generator`` they are given, and use it for all ``T`` frames of the
sample's window (as LeRobot applies its image transforms to a ``[T, C, H, W]`` window at once), so
the result is a pure function of the input and the generator's state.

Inside :class:`prf.Loader` (``transform=``) the generator of each batch and camera is
``numpy.random.default_rng([seed, rank, epoch, batch_number, crc32(camera_key)])``: the same batch
gets the same augmentation after a resume, on any number of workers.

The kernels (resize, rotation, hue) run in OpenCV (``opencv-python-headless``, extra
``prf[transforms]``): measured 10-30x faster than hand-written NumPy and 3-10x faster than Pillow on
these kernels (``benches/bench_transforms.py``). Parameter ranges follow ``torchvision.transforms``;
values are close to, not bit-equal with, torchvision's (OpenCV's fixed-point rounding).
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

_INTERP = ("nearest", "bilinear", "bicubic", "area")


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "prf.transforms needs OpenCV: pip install 'prf[transforms]' (opencv-python-headless)"
        ) from e
    return cv2


def _cv_interp(name: str) -> int:
    cv2 = _cv2()
    return {
        "nearest": cv2.INTER_NEAREST,
        "bilinear": cv2.INTER_LINEAR,
        "bicubic": cv2.INTER_CUBIC,
        "area": cv2.INTER_AREA,
    }[name]


def _check_interp(interpolation: str) -> str:
    if interpolation not in _INTERP:
        raise ValueError(f"interpolation must be one of {_INTERP}, got {interpolation!r}")
    return interpolation


def _pair(size: int | Sequence[int], what: str) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        h = w = int(size)
    else:
        if len(size) != 2:
            raise ValueError(f"{what} must be an int or (height, width), got {size!r}")
        h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"{what} must be positive, got {size!r}")
    return h, w


def _range(value: float | Sequence[float], what: str, *, center: float, lower: float | None = None) -> tuple[float, float]:
    """torchvision's convention: ``v`` -> ``[center - v, center + v]`` (clipped at ``lower``), or ``(lo, hi)``."""
    if isinstance(value, (int, float, np.floating, np.integer)):
        if value < 0:
            raise ValueError(f"{what} must be >= 0, got {value}")
        lo, hi = center - float(value), center + float(value)
        if lower is not None:
            lo = max(lo, lower)
    else:
        if len(value) != 2 or value[0] > value[1]:
            raise ValueError(f"{what} must be a number or (min, max) with min <= max, got {value!r}")
        lo, hi = float(value[0]), float(value[1])
        if lower is not None and lo < lower:
            raise ValueError(f"{what} range must be >= {lower}, got {value!r}")
    return lo, hi


def _frame_apply(x: np.ndarray, fn: Any) -> np.ndarray:
    """Apply ``fn(frame [H, W, C], sample) -> [H', W', C']`` to every frame of ``x [B, T, H, W, C]``."""
    B, T = x.shape[:2]
    out: np.ndarray | None = None
    for b in range(B):
        for t in range(T):
            y = fn(np.ascontiguousarray(x[b, t]), b)
            if y.ndim == 2:
                y = y[:, :, None]
            if out is None:
                out = np.empty((B, T) + y.shape, dtype=x.dtype)
            out[b, t] = y
    if out is None:  # B == 0 or T == 0
        return x
    return out


class Transform:
    """Base class: a batched transform of ``uint8`` frames (see the module docstring).

    Call it as ``t(frames, rng)`` with ``rng`` a ``numpy.random.Generator`` or an int seed (``None``:
    fresh OS entropy, not reproducible). Subclasses implement :meth:`apply` on ``[B, T, H, W, C]``.
    """

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
        x = np.asarray(frames)
        if x.dtype != np.uint8:
            raise TypeError(f"{type(self).__name__}: frames must be uint8, got {x.dtype}")
        if x.ndim < 3:
            raise ValueError(f"{type(self).__name__}: frames must be [..., H, W, C], got shape {x.shape}")
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        lead = x.shape[:-3]
        B = lead[0] if lead else 1
        T = int(np.prod(lead[1:])) if len(lead) > 1 else 1
        y = self.apply(x.reshape((B, T) + x.shape[-3:]), rng)
        return y.reshape(lead + y.shape[2:])

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``uint8 [B, T, H, W, C]`` -> ``uint8 [B, T, H', W', C]``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply transforms in sequence (drawing their randomness from the same generator, in order)."""

    def __init__(self, transforms: Iterable[Transform]):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"Compose takes prf.transforms.Transform objects, got {type(t).__name__}")

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for t in self.transforms:
            x = t.apply(x, rng)
        return x


class Resize(Transform):
    """Resize to ``size``: ``(height, width)``, or an int that the shorter side becomes (aspect ratio
    kept, as ``torchvision.transforms.Resize``).

    ``interpolation``: ``"bilinear"`` (OpenCV's ``INTER_LINEAR``, no antialiasing), ``"area"`` (pixel
    area averaging: the one to use when shrinking), ``"nearest"``, ``"bicubic"``.
    """

    def __init__(self, size: int | Sequence[int], interpolation: str = "bilinear"):
        self.size = size if isinstance(size, (int, np.integer)) else _pair(size, "size")
        _pair(size, "size")
        self.interpolation = _check_interp(interpolation)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        if isinstance(self.size, tuple):
            return self.size
        s = int(self.size)
        if h <= w:
            return s, max(1, int(s * w / h))
        return max(1, int(s * h / w)), s

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cv2 = _cv2()
        oh, ow = self.output_size(*x.shape[2:4])
        if (oh, ow) == x.shape[2:4]:
            return x
        flag = _cv_interp(self.interpolation)
        return _frame_apply(x, lambda f, b: cv2.resize(f, (ow, oh), interpolation=flag))


class CenterCrop(Transform):
    """Crop the central ``size`` (int or ``(height, width)``) region.

    Raises:
        ValueError: (at call) the frames are smaller than ``size``.
    """

    def __init__(self, size: int | Sequence[int]):
        self.size = _pair(size, "size")

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = x.shape[2:4]
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"CenterCrop{self.size}: frames are {h}x{w}, smaller than the crop")
        top, left = (h - ch) // 2, (w - cw) // 2
        return np.ascontiguousarray(x[:, :, top : top + ch, left : left + cw])


class RandomCrop(Transform):
    """Crop a random ``size`` region per sample, after padding every side by ``padding`` pixels of
    ``fill`` (e.g. ``RandomCrop(84, padding=4)``, the random-shift augmentation of DrQ).

    Raises:
        ValueError: (at call) the padded frames are smaller than ``size``.
    """

    def __init__(self, size: int | Sequence[int], padding: int = 0, fill: int = 0):
        self.size = _pair(size, "size")
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = int(padding)
        self.fill = int(fill)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        p = self.padding
        if p:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p), (0, 0)), constant_values=self.fill)
        B, T, h, w, C = x.shape
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"RandomCrop{self.size}: frames are {h}x{w} (after padding), smaller than the crop")
        tops = rng.integers(0, h - ch + 1, size=B)
        lefts = rng.integers(0, w - cw + 1, size=B)
        out = np.empty((B, T, ch, cw, C), dtype=x.dtype)
        for b in range(B):
            out[b] = x[b, :, tops[b] : tops[b] + ch, lefts[b] : lefts[b] + cw]
        return out


class RandomHorizontalFlip(Transform):
    """Mirror left-right each sample with probability ``p``."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = float(p)

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        flip = rng.random(x.shape[0]) < self.p
        out = x.copy()
        out[flip] = x[flip][:, :, :, ::-1]
        return out


class RandomRotation(Transform):
    """Rotate each sample by an angle drawn uniformly from ``[-degrees, degrees]`` (or ``(min, max)``),
    counter-clockwise for positive angles, about the frame centre, keeping the size; uncovered pixels
    get ``fill`` (a value or one per channel), as ``torchvision.transforms.RandomRotation``.
    """

    def __init__(self, degrees: float | Sequence[float], interpolation: str = "bilinear",
                 fill: int | Sequence[int] = 0):
        self.degrees = _range(degrees, "degrees", center=0.0)
        self.interpolation = _check_interp(interpolation)
        if self.interpolation not in ("nearest", "bilinear", "bicubic"):
            raise ValueError("RandomRotation interpolation must be 'nearest', 'bilinear' or 'bicubic'")
        self.fill = fill

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cv2 = _cv2()
        B, T, h, w, C = x.shape
        angles = rng.uniform(self.degrees[0], self.degrees[1], size=B)
        flag = _cv_interp(self.interpolation)
        fill = tuple(float(v) for v in np.broadcast_to(np.asarray(self.fill, dtype=np.float64), (C,)))
        mats = [cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(a), 1.0) for a in angles]
        return _frame_apply(
            x,
            lambda f, b: cv2.warpAffine(f, mats[b], (w, h), flags=flag, borderMode=cv2.BORDER_CONSTANT,
                                        borderValue=fill),
        )


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue per sample, applied in a random order per sample
    (as ``torchvision.transforms.ColorJitter``).

    ``brightness``, ``contrast``, ``saturation``: ``v`` draws a factor from ``[max(0, 1 - v), 1 + v]``
    (or give ``(min, max)``); brightness scales the pixels, contrast blends with the frame's mean grey,
    saturation with each pixel's grey (ITU-R 601 luma: 0.299, 0.587, 0.114). ``hue``: ``v`` in ``[0, 0.5]``
    draws a shift from ``[-v, v]`` turns of the HSV hue circle. Needs 3-channel RGB frames. Each step
    rounds to ``uint8`` (as torchvision does on ``uint8`` tensors); the hue step runs in ``float32`` HSV.
    """

    _OPS = ("brightness", "contrast", "saturation", "hue")

    def __init__(self, brightness: float | Sequence[float] = 0.0, contrast: float | Sequence[float] = 0.0,
                 saturation: float | Sequence[float] = 0.0, hue: float | Sequence[float] = 0.0):
        self.brightness = _range(brightness, "brightness", center=1.0, lower=0.0)
        self.contrast = _range(contrast, "contrast", center=1.0, lower=0.0)
        self.saturation = _range(saturation, "saturation", center=1.0, lower=0.0)
        self.hue = _range(hue, "hue", center=0.0)
        if not -0.5 <= self.hue[0] <= self.hue[1] <= 0.5:
            raise ValueError(f"hue must be within [-0.5, 0.5], got {hue!r}")

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cv2 = _cv2()
        B, T, h, w, C = x.shape
        if C != 3:
            raise ValueError(f"ColorJitter needs RGB frames (C == 3), got C == {C}")
        perms = list(itertools.permutations(range(4)))
        order = rng.integers(0, len(perms), size=B)
        k = {
            "brightness": rng.uniform(*self.brightness, size=B),
            "contrast": rng.uniform(*self.contrast, size=B),
            "saturation": rng.uniform(*self.saturation, size=B),
            "hue": rng.uniform(*self.hue, size=B),
        }
        active = {name for name, rg, ident in (("brightness", self.brightness, 1.0), ("contrast", self.contrast, 1.0),
                                               ("saturation", self.saturation, 1.0), ("hue", self.hue, 0.0))
                  if rg != (ident, ident)}
        out = x.copy()
        if not active:
            return out
        for b in range(B):
            ops = [self._OPS[i] for i in perms[order[b]] if self._OPS[i] in active]
            for t in range(T):
                img = np.ascontiguousarray(x[b, t])
                for name in ops:
                    f = float(k[name][b])
                    if name == "brightness":  # saturate(round(f * x))
                        img = cv2.convertScaleAbs(img, alpha=f)
                    elif name == "contrast":  # blend with the frame's mean grey
                        mean = float(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean())
                        img = cv2.addWeighted(img, f, img, 0.0, (1.0 - f) * mean)
                    elif name == "saturation":  # blend with each pixel's grey
                        grey = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
                        img = cv2.addWeighted(img, f, grey, 1.0 - f, 0.0)
                    elif f != 0.0:  # hue: rotate the HSV hue (float, degrees)
                        hsv = cv2.cvtColor(img.astype(np.float32) * np.float32(1.0 / 255.0), cv2.COLOR_RGB2HSV)
                        hsv[..., 0] = np.mod(hsv[..., 0] + np.float32(f * 360.0), np.float32(360.0))
                        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
                        img = cv2.convertScaleAbs(rgb, alpha=255.0)
                out[b, t] = img
        return out


class CameraTransforms:
    """Apply a transform to the camera keys of a batch with randomness keyed per batch and camera.

    Args:
        transform: one :class:`Transform` for every camera, or ``{camera_key: Transform}``.
        cameras: the dataset's camera keys.

    Calling it with ``(batch, key=(seed, rank, epoch, batch_number))`` returns a new batch dict whose
    camera arrays are transformed with ``numpy.random.default_rng([*key, crc32(camera)])``.

    Raises:
        ValueError: a mapping names a key that is not a camera, or there is no camera to transform.
        TypeError: a value is not a :class:`Transform`.
    """

    def __init__(self, transform: Transform | Mapping[str, Transform], cameras: Iterable[str]):
        cams = list(cameras)
        if isinstance(transform, Mapping):
            unknown = [k for k in transform if k not in cams]
            if unknown:
                raise ValueError(f"transform names key(s) {unknown} that are not cameras of the dataset {cams}")
            self.by_camera = dict(transform)
        else:
            if not cams:
                raise ValueError("transform= was given, but the dataset has no camera to transform")
            self.by_camera = {c: transform for c in cams}
        for k, t in self.by_camera.items():
            if not isinstance(t, Transform):
                raise TypeError(f"transform for {k!r} must be a prf.transforms.Transform, got {type(t).__name__}")

    def __call__(self, batch: dict[str, Any], *, key: Sequence[int]) -> dict[str, Any]:
        out = dict(batch)
        entropy = [int(k) & 0xFFFFFFFFFFFFFFFF for k in key]
        for cam, t in self.by_camera.items():
            if cam in out:
                rng = np.random.default_rng(entropy + [zlib.crc32(cam.encode("utf-8"))])
                out[cam] = t(out[cam], rng)
        return out

    def __repr__(self) -> str:
        return f"prf.transforms.CameraTransforms({self.by_camera!r})"


__all__ = [
    "Transform",
    "Compose",
    "Resize",
    "CenterCrop",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomRotation",
    "ColorJitter",
    "CameraTransforms",
]
