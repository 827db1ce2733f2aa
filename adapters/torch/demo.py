"""``prf demo``: train a tiny behaviour-cloning policy (camera + state -> action) with prf's loader.

Without a dataset, a small synthetic LeRobot v3.0 dataset is written first with prf's own writer
(into ``$PRF_CACHE`` or ``~/.cache/prf``), so a fresh machine needs no download.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import prf
from prf.errors import DatasetError, MissingFilesError

from . import loader as torch_loader

IMAGE_SIZE = 64


class TinyPolicy(nn.Module):
    """A small CNN over one camera, concatenated with the state, and an MLP head -> action."""

    def __init__(self, state_dim: int, action_dim: int):
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(32 * 16 + state_dim, 128), nn.ReLU(), nn.Linear(128, action_dim))

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``image float32 [B, 3, H, W]`` in [0, 1], ``state float32 [B, S]`` -> ``action [B, A]``."""
        return self.head(torch.cat([self.cnn(image), state], dim=1))


def default_demo_root() -> Path:
    base = Path(os.environ.get("PRF_CACHE", Path.home() / ".cache" / "prf"))
    return base / "demo-reacher-v1"


def _ensure_demo_dataset(progress: bool) -> Path:
    root = default_demo_root()
    if not (root / "meta" / "info.json").is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        print(f"writing a synthetic LeRobot v3.0 dataset to {root}", file=sys.stderr)
        prf.make_demo_dataset(root, progress=progress)
    return root


def _open(source: str | Path, camera: str | None) -> prf.Dataset:
    meta = prf.DatasetMeta(prf.resolve_source(source))
    cams = meta.camera_keys
    if not cams:
        raise DatasetError(f"{meta.root}: the demo needs a dataset with a camera (video or image feature); it has none")
    if "action" not in meta.features:
        raise DatasetError(f"{meta.root}: the demo needs an 'action' feature")
    cam = camera or cams[0]
    try:
        return prf.Dataset(meta, cameras=[cam])
    except MissingFilesError as e:
        if not e.present_episodes:
            raise
        print(f"note: {len(e.missing)} file(s) are missing; training on the {len(e.present_episodes)} "
              f"episode(s) whose files are present", file=sys.stderr)
        return prf.Dataset(meta, cameras=[cam], episodes=e.present_episodes)


def run_demo(dataset: str | Path | None = None, *, steps: int = 200, batch_size: int = 32, num_workers: int = 2,
             seed: int = 0, lr: float = 2e-3, camera: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train for ``steps`` steps and return a summary (losses, throughput).

    Raises:
        ValueError: ``steps`` or ``batch_size`` below 1, ``num_workers`` below 0.
        DatasetError: the dataset has no camera or no ``action``.
    """
    for name, value, low in (("steps", steps, 1), ("batch_size", batch_size, 1), ("num_workers", num_workers, 0)):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    torch.manual_seed(seed)
    # Leave the cores prf's decode threads use to them: torch's OpenMP threads spin-wait, and oversubscribed
    # they slowed a training step from milliseconds to minutes on a loaded 2-core machine.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - num_workers))
    root = Path(dataset) if dataset is not None else _ensure_demo_dataset(progress)
    ds = _open(dataset if dataset is not None else root, camera)
    cam = ds.cameras[0]
    action = ds.column("action").reshape(len(ds), -1).astype(np.float32)
    state_key = "observation.state" if "observation.state" in ds.meta.features else None
    state = ds.column(state_key).reshape(len(ds), -1).astype(np.float32) if state_key else np.zeros((len(ds), 1), np.float32)
    a_mean, a_std = torch.from_numpy(action.mean(0)), torch.from_numpy(action.std(0) + 1e-6)
    s_mean, s_std = torch.from_numpy(state.mean(0)), torch.from_numpy(state.std(0) + 1e-6)
    model = TinyPolicy(state.shape[1], action.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = torch_loader(ds, batch_size, shuffle=True, seed=seed, num_workers=num_workers,
                           drop_last=len(ds) >= batch_size)
    losses: list[float] = []
    samples = 0
    bar = tqdm(total=steps, desc=f"training on {ds.meta.root.name}", unit="step", disable=not progress,
               file=sys.stderr)
    t0 = time.perf_counter()
    ema = None
    try:
        while len(losses) < steps:
            for batch in batches:
                img = batch[cam].permute(0, 3, 1, 2).float().div_(255.0)
                img = img.expand(-1, 3, -1, -1) if img.shape[1] == 1 else img[:, :3]  # grey / RGBA -> RGB
                img = F.interpolate(img, size=(IMAGE_SIZE, IMAGE_SIZE), mode="area")
                st = batch[state_key].reshape(img.shape[0], -1).float() if state_key else torch.zeros(img.shape[0], 1)
                target = (batch["action"].reshape(img.shape[0], -1).float() - a_mean) / a_std
                pred = model(img, (st - s_mean) / s_std)
                loss = F.mse_loss(pred, target)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.detach().item())  # detached: no requires_grad-to-scalar warning
                samples += img.shape[0]
                ema = losses[-1] if ema is None else 0.9 * ema + 0.1 * losses[-1]
                rate = samples / (time.perf_counter() - t0)
                bar.set_postfix(loss=f"{ema:.4f}", samples_s=f"{rate:.0f}")
                bar.update(1)
                if len(losses) >= steps:
                    break
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0
    k = max(1, min(10, len(losses) // 5))
    first, last = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    print(f"loss {first:.4f} (first {k} steps) -> {last:.4f} (last {k} steps); "
          f"{samples / elapsed:.0f} samples/s over {len(losses)} steps", file=sys.stderr)
    return {
        "dataset": str(ds.meta.root), "camera": cam, "steps": len(losses), "batch_size": batch_size,
        "loss_first": first, "loss_last": last, "losses": losses,
        "samples_per_s": samples / elapsed, "seconds": elapsed,
    }
