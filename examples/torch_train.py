"""Train a tiny behaviour-cloning policy (camera + state -> action) with PyTorch on samples from the
map-style ``prf.torch.Dataset`` in a plain ``torch.utils.data.DataLoader`` with 2 workers.

    python examples/torch_train.py --steps 40          # pusht_sim_v30 from ../shared/data

The ``DataLoader`` asks for whole batches (``__getitems__``), which prf assembles with one batched
decode per video file. Prints one loss per step; ``--json`` prints ``{"losses": [...]}`` as the last line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import prf
import prf.torch

DEFAULT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lerobot" / "pusht_sim_v30"


class Policy(nn.Module):
    def __init__(self, state_dim: int, action_dim: int):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(3, 16, 5, stride=4, padding=2), nn.ReLU(),
                                 nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32 + state_dim, 128), nn.ReLU(), nn.Linear(128, action_dim))

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``image uint8 [B, H, W, 3]``, normalised ``state [B, S]`` -> normalised action ``[B, A]``."""
        return self.head(torch.cat([self.cnn(prf.torch.to_lerobot_images(image)), state], dim=1))


def collate(samples: list[dict]) -> dict:
    """torch's default collate, with ``task`` kept as a list of str."""
    out = torch.utils.data.default_collate([{k: v for k, v in s.items() if k != "task"} for s in samples])
    out["task"] = [s["task"] for s in samples]
    return out


def main(argv: list[str] | None = None) -> list[float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=str(DEFAULT))
    p.add_argument("--camera", default="observation.image")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    torch.manual_seed(0)
    ds = prf.open_dataset(args.dataset, cameras=[args.camera])
    # state and action normalised by the dataset's stored stats, in the DataLoader's workers (the same
    # batch transform prf.Loader, prf.jax and prf.keras apply)
    view = ds.with_transforms(normalize={"observation.state": "mean_std", "action": "mean_std"})
    model = Policy(ds.meta.features["observation.state"].shape[0], ds.meta.features["action"].shape[0])
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    train = prf.torch.Dataset(view)
    dl = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=2,
                                     collate_fn=collate)
    losses: list[float] = []
    while len(losses) < args.steps:
        for batch in dl:
            pred = model(batch[args.camera], batch["observation.state"])
            loss = F.mse_loss(pred, batch["action"])
            opt.zero_grad()
            loss.backward()
            opt.step()
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
