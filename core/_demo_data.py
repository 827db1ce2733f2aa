"""A small synthetic LeRobot v3.0 dataset for ``prf demo`` on a fresh machine (no download).

A 2-D reaching task: a red agent square moves towards a green goal square. The state is the agent's
position; the goal is visible only in the camera image, so the action (the agent's velocity towards
the goal) can be learned only from image + state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .writer import write_lerobot_dataset

FPS = 10
SIZE = 64
CAMERA = "observation.images.top"


def _draw(frame: np.ndarray, xy: np.ndarray, color: tuple[int, int, int], half: int = 3) -> None:
    c = np.clip((xy * (SIZE - 1)).round().astype(int), half, SIZE - 1 - half)
    frame[c[1] - half : c[1] + half + 1, c[0] - half : c[0] + half + 1] = color


def _episodes(n_episodes: int, length: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    for _ in range(n_episodes):
        goal = rng.uniform(0.15, 0.85, 2)
        pos = rng.uniform(0.15, 0.85, 2)
        states, actions, frames = [], [], []
        for _ in range(length):
            action = np.clip((goal - pos) * 2.0, -1.0, 1.0)
            img = np.full((SIZE, SIZE, 3), 40, np.uint8)
            _draw(img, goal, (40, 200, 60))
            _draw(img, pos, (220, 40, 40))
            states.append(pos.copy())
            actions.append(action)
            frames.append(img)
            pos = np.clip(pos + action / FPS + rng.normal(0, 0.01, 2), 0.0, 1.0)
        yield {
            "observation.state": np.asarray(states, np.float32),
            "action": np.asarray(actions, np.float32),
            CAMERA: np.asarray(frames, np.uint8),
            "task": "Move the red square onto the green square.",
        }


def make_demo_dataset(root: str | Path, *, n_episodes: int = 12, length: int = 50, seed: int = 0,
                      video_codec: str = "auto", overwrite: bool = False, progress: bool = True) -> Path:
    """Write the synthetic reaching dataset (LeRobot v3.0, one 64x64 camera) at ``root``."""
    features = {
        "observation.state": {"dtype": "float32", "shape": [2], "names": {"motors": ["x", "y"]}},
        "action": {"dtype": "float32", "shape": [2], "names": {"motors": ["vx", "vy"]}},
        CAMERA: {"dtype": "video", "shape": [SIZE, SIZE, 3], "names": ["height", "width", "channels"]},
    }
    return write_lerobot_dataset(
        root, features=features, episodes=_episodes(n_episodes, length, seed), fps=FPS,
        robot_type="synthetic_2d_reacher", video_codec=video_codec, overwrite=overwrite, progress=progress,
    )
