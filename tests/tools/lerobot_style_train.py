"""A LeRobot-style training loop, run unchanged with either LeRobotDataset (only the import differs):

    python tests/tools/lerobot_style_train.py --impl prf     --root DATASET --steps 4
    python tests/tools/lerobot_style_train.py --impl lerobot --root DATASET --steps 4   # in a LeRobot venv

As lerobot-train does: LeRobotDatasetMetadata for fps, delta_timestamps for an action chunk,
EpisodeAwareSampler (LeRobot's own where lerobot is installed, else the same index list built as its
code does), DataLoader(num_workers=2), inputs and targets normalized with dataset.meta.stats (mean/std).
Prints one JSON line: losses and a fingerprint of every batch (exact sums), for comparison.
"""

from __future__ import annotations

import argparse
import json

import torch

p = argparse.ArgumentParser()
p.add_argument("--impl", choices=["prf", "lerobot"], required=True)
p.add_argument("--root", required=True)
p.add_argument("--steps", type=int, default=4)
p.add_argument("--batch-size", type=int, default=8)
p.add_argument("--chunk", type=int, default=8)
args = p.parse_args()

if args.impl == "prf":
    from prf.torch import LeRobotDataset, LeRobotDatasetMetadata
else:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

try:
    from lerobot.datasets.sampler import EpisodeAwareSampler
except ImportError:
    class EpisodeAwareSampler:  # LeRobot 0.4.4's lerobot/datasets/sampler.py, same semantics
        def __init__(self, dataset_from_indices, dataset_to_indices, episode_indices_to_use=None,
                     drop_n_first_frames=0, drop_n_last_frames=0, shuffle=False):
            indices = []
            for episode_idx, (start, end) in enumerate(zip(dataset_from_indices, dataset_to_indices, strict=True)):
                if episode_indices_to_use is None or episode_idx in episode_indices_to_use:
                    indices.extend(range(start + drop_n_first_frames, end - drop_n_last_frames))
            self.indices, self.shuffle = indices, shuffle

        def __iter__(self):
            if self.shuffle:
                for i in torch.randperm(len(self.indices)):
                    yield self.indices[i]
            else:
                yield from self.indices

        def __len__(self):
            return len(self.indices)


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    meta = LeRobotDatasetMetadata("local/dataset", root=args.root)
    cam = meta.camera_keys[0]
    delta_timestamps = {"action": [i / meta.fps for i in range(args.chunk)], "observation.state": [-1 / meta.fps, 0.0]}
    dataset = LeRobotDataset("local/dataset", root=args.root, delta_timestamps=delta_timestamps, video_backend="pyav")
    stats = dataset.meta.stats
    norm = {k: (torch.as_tensor(stats[k]["mean"], dtype=torch.float32), torch.as_tensor(stats[k]["std"], dtype=torch.float32))
            for k in ("observation.state", "action", cam)}
    sampler = EpisodeAwareSampler(dataset.meta.episodes["dataset_from_index"], dataset.meta.episodes["dataset_to_index"],
                                  episode_indices_to_use=dataset.episodes, drop_n_last_frames=args.chunk - 1, shuffle=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, num_workers=2,
                                         drop_last=True, pin_memory=False)
    state_dim = dataset.features["observation.state"]["shape"][0]
    action_dim = dataset.features["action"]["shape"][0]
    policy = torch.nn.Sequential(torch.nn.LazyLinear(64), torch.nn.ReLU(), torch.nn.Linear(64, args.chunk * action_dim))
    img_net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    opt = None
    losses, prints = [], []
    for step, batch in enumerate(loader):
        if step >= args.steps:
            break
        img = (batch[cam] - norm[cam][0]) / norm[cam][1]                    # [B, C, H, W], mean/std per channel
        state = (batch["observation.state"] - norm["observation.state"][0]) / norm["observation.state"][1]  # [B, 2, S]
        target = (batch["action"] - norm["action"][0]) / norm["action"][1]  # [B, chunk, A]
        x = torch.cat([img_net(img), state.flatten(1)], dim=1)
        pred = policy(x).view(-1, args.chunk, action_dim)
        mask = ~batch["action_is_pad"]
        loss = ((pred - target) ** 2)[mask].mean()
        if opt is None:
            opt = torch.optim.Adam(list(policy.parameters()) + list(img_net.parameters()), lr=1e-3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.detach().item())
        prints.append({"index": batch["index"].tolist(), "action_sum": batch["action"].double().sum().item(),
                       "frame_sum": batch[cam].double().sum().item(), "pad": int(batch["action_is_pad"].sum()),
                       "task": list(batch["task"]), "state_dim": state_dim})
    print(json.dumps({"impl": args.impl, "losses": losses, "batches": prints}))


if __name__ == "__main__":
    main()
