"""Train a tiny behaviour-cloning policy (camera + state -> action) with MLX on prf batches.

    python examples/mlx_train.py --steps 40            # pusht_sim_v30 from ../shared/data

Batches come from ``ds.loader(..., output="mlx")`` (the ``mlx`` adapter plugin, ``prf.mlx``, found
through its entry point; ``prf.mlx.loader(ds, ...)`` is the same): ``{key: mx.array [B, ...]}`` with
cameras ``uint8 [B, H, W, C]`` (channels-last, as MLX's ``nn.Conv2d`` expects). Prints one loss per step; ``--json`` prints
``{"losses": [...]}`` as the last line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

import prf

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lerobot" / "pusht_sim_v30"


class Policy(nn.Module):
    def __init__(self, state_dim: int, action_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 5, stride=4, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.head = nn.Sequential(nn.Linear(32 + state_dim, 128), nn.ReLU(), nn.Linear(128, action_dim))

    def __call__(self, image: mx.array, state: mx.array) -> mx.array:
        x = nn.relu(self.conv2(nn.relu(self.conv1(image.astype(mx.float32) / 255.0))))  # [B, h, w, 32]
        return self.head(mx.concatenate([x.mean(axis=(1, 2)), state], axis=1))


def main(argv: list[str] | None = None) -> list[float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=str(DEFAULT))
    p.add_argument("--camera", default="observation.image")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    ds = prf.open_dataset(args.dataset, cameras=[args.camera])
    # normalise state and action with the dataset's own statistics
    s_mean, s_std = ds.column("observation.state").mean(0), ds.column("observation.state").std(0) + 1e-6
    a_mean, a_std = ds.column("action").mean(0), ds.column("action").std(0) + 1e-6
    s_mean, s_std, a_mean, a_std = (mx.array(v.astype(np.float32)) for v in (s_mean, s_std, a_mean, a_std))

    mx.random.seed(0)
    model = Policy(int(s_mean.shape[0]), int(a_mean.shape[0]))
    optimizer = optim.Adam(learning_rate=args.lr)

    def loss_fn(model, image, state, action):
        return nn.losses.mse_loss(model(image, (state - s_mean) / s_std), (action - a_mean) / a_std)

    step_fn = nn.value_and_grad(model, loss_fn)
    loader = ds.loader(args.batch_size, shuffle=True, seed=0, drop_last=True, num_workers=2, output="mlx")
    losses: list[float] = []
    while len(losses) < args.steps:
        for batch in loader:  # each pass is the next epoch, in its own order
            loss, grads = step_fn(model, batch[args.camera], batch["observation.state"], batch["action"])
            optimizer.update(model, grads)
            mx.eval(model.parameters(), optimizer.state)
            losses.append(loss.item())
            if not args.json:
                print(f"step {len(losses):4d}  loss {losses[-1]:.4f}")
            if len(losses) >= args.steps:
                break
    if args.json:
        print(json.dumps({"losses": losses}))
    return losses


if __name__ == "__main__":
    main()
