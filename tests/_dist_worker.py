"""One rank of tests/test_distributed.py, started by ``python -m torch.distributed.run`` (gloo on
loopback). Writes what this rank saw to ``<out>/rank<r>.json``; the test asserts on the files.

Usage: python _dist_worker.py OUT_DIR DATASET_PATH
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def take(loader, n):
    out = []
    while len(out) < n:
        for b in loader:
            out.append(b)
            if len(out) == n:
                break
    return out


def flat(batches):
    return [int(i) for b in batches for i in b["index"].reshape(-1).tolist()]


def main() -> None:
    out_dir, data = Path(sys.argv[1]), sys.argv[2]
    dist.init_process_group("gloo")
    import prf
    import prf.torch
    from torchdata.stateful_dataloader import StatefulDataLoader

    rank, world = dist.get_rank(), dist.get_world_size()
    ds = prf.open_dataset(data, cameras=[])
    res: dict = {"rank": rank, "world_size": world, "n": len(ds)}

    # 1. prf.Loader: rank/world_size come from torch.distributed (no argument given)
    loader = ds.loader(32, shuffle=True, seed=11, num_workers=2)
    res["sampler_rank"] = [loader.sampler.rank, loader.sampler.world_size]
    res["epoch0"] = flat(take(loader, len(loader)))
    # the ranks agree on the number of batches (a DDP step count mismatch would hang)
    counts = [None] * world
    dist.all_gather_object(counts, len(res["epoch0"]))
    res["all_counts"] = counts

    # 2. resume mid-epoch from a checkpoint, on both ranks: epoch 1, after 5 batches
    def new():
        return ds.loader(32, sampler=prf.EpisodeChunkSampler(ds, 16, seed=4), num_workers=2, prefetch=3)

    ref = new()
    n = len(ref)
    res["full"] = flat(take(ref, 2 * n))
    a = new()
    first = take(a, n + 5)
    state = json.loads(json.dumps(a.state_dict()))
    dist.barrier()  # "restart": a fresh loader on every rank
    b = new()
    b.load_state_dict(state)
    res["resumed"] = flat(first) + flat(take(b, n - 5))

    # 3. torch's DistributedSampler over prf.torch.Dataset, DataLoader with 2 worker processes
    tds = prf.torch.Dataset(ds)
    sampler = torch.utils.data.distributed.DistributedSampler(tds, shuffle=True, seed=5)
    sampler.set_epoch(2)
    res["torch_distributed_sampler"] = flat(torch.utils.data.DataLoader(tds, batch_size=32, sampler=sampler,
                                                                        num_workers=2))
    res["torch_sampler_expected"] = list(iter(sampler))

    # 4. BatchIterableDataset: rank shard x 2 DataLoader workers, StatefulDataLoader resume
    def make():
        it = prf.torch.BatchIterableDataset(ds, 32, shuffle=True, seed=8)
        it.set_epoch(1)
        return StatefulDataLoader(it, batch_size=None, num_workers=2)

    res["iterable_full"] = flat(make())
    dl = make()
    got = []
    for batch in dl:
        got.append(batch)
        if len(got) == 3:
            break
    st = dl.state_dict()
    dist.barrier()
    dl2 = make()
    dl2.load_state_dict(st)
    res["iterable_resumed"] = flat(got) + flat(dl2)

    (out_dir / f"rank{rank}.json").write_text(json.dumps(res))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
