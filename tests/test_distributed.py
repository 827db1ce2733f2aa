"""Distributed sharding under a real torch.distributed: ``torchrun`` with 2 processes (gloo backend,
loopback only). The ranks' samples in an epoch are disjoint and cover the dataset; both ranks resume
exactly from a mid-epoch checkpoint; torch's DistributedSampler path and prf.torch's
BatchIterableDataset (rank x DataLoader worker sharding) behave the same way.

Also, without torchrun: the torch adapter's DataLoader(num_workers>0) paths shard by (rank, worker).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import prf

from conftest import dataset_path

torch = pytest.importorskip("torch")
pytest.importorskip("torchdata.stateful_dataloader")
import prf.torch  # noqa: E402

WORKER = Path(__file__).with_name("_dist_worker.py")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(out: Path, data: Path, tries: int = 3) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "TP_SOCKET_IFNAME": "lo",
           "MASTER_ADDR": "127.0.0.1"}
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    proc = None
    for _ in range(tries):  # a port taken between choosing and binding it: try another one
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "--max_restarts=0", str(WORKER),
               str(out), str(data)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode == 0 or "address already in use" not in (proc.stderr + proc.stdout).lower():
            break
    return proc


@pytest.fixture(scope="module")
def torchrun_results(module_tmp):
    out = module_tmp("torchrun")
    data = dataset_path("pusht_sim_v30")
    proc = _torchrun(out, data)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    res = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    return res


def test_torchrun_ranks_are_disjoint_and_cover(torchrun_results):
    r0, r1 = torchrun_results
    n = r0["n"]
    assert r0["sampler_rank"] == [0, 2] and r1["sampler_rank"] == [1, 2]  # read from torch.distributed
    a, b = r0["epoch0"], r1["epoch0"]
    assert len(a) == len(b) == -(-n // 2) and r0["all_counts"] == [len(a), len(b)]
    pad = 2 * len(a) - n
    assert len(set(a) & set(b)) <= pad and len(set(a)) == len(a) and len(set(b)) == len(b)
    assert set(a) | set(b) == set(range(n))


def test_torchrun_mid_epoch_checkpoint_resumes_exactly(torchrun_results):
    for r in torchrun_results:
        # 2 epochs: n + 5 batches before the checkpoint, n - 5 after it, on a fresh loader
        assert len(r["full"]) > 0 and r["resumed"] == r["full"]
    a, b = (set(r["full"][: len(r["full"]) // 2]) for r in torchrun_results)
    n = torchrun_results[0]["n"]
    assert a | b == set(range(n))


def test_torchrun_torch_distributed_sampler_and_iterable(torchrun_results):
    r0, r1 = torchrun_results
    n = r0["n"]
    for r in (r0, r1):
        assert r["torch_distributed_sampler"] == r["torch_sampler_expected"]
        assert r["iterable_resumed"] == r["iterable_full"]
    assert set(r0["torch_distributed_sampler"]) | set(r1["torch_distributed_sampler"]) == set(range(n))
    a, b = r0["iterable_full"], r1["iterable_full"]
    assert len(a) == len(b) and set(a) | set(b) == set(range(n))
    assert len(set(a) & set(b)) <= 2 * len(a) - n


# ---- without torchrun: (rank, worker) sharding of the torch adapter ------------------------------------
@pytest.fixture(scope="module")
def pusht():
    return prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=list(range(6)), cameras=[])


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_batch_iterable_dataset_rank_worker_pairs_are_disjoint(pusht, workers):
    seen = {}
    for rank in range(3):
        it = prf.torch.BatchIterableDataset(pusht, 8, shuffle=True, seed=1, rank=rank, world_size=3)
        dl = torch.utils.data.DataLoader(it, batch_size=None, num_workers=workers)
        got = [b["index"].numpy() for b in dl]
        assert len(got) == len(it)
        ref = prf.Loader(pusht, 8, shuffle=True, seed=1, rank=rank, world_size=3)
        np.testing.assert_array_equal(np.concatenate(got), np.concatenate([b["index"] for b in ref]))
        seen[rank] = np.concatenate(got)
    allpos = np.concatenate(list(seen.values()))
    n = len(pusht)
    assert set(allpos.tolist()) == set(range(n)) and allpos.size - np.unique(allpos).size == allpos.size - n


class _Tagged(prf.torch.BatchIterableDataset):
    """Records which worker process made each batch (module level: workers may be spawned)."""

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        for b in super().__iter__():
            b["worker"] = torch.full((1,), info.id)
            yield b


def test_worker_shards_inside_a_worker_process(pusht):
    """Each worker process takes batches worker, worker + W, ...: record which worker made each batch."""
    it = _Tagged(pusht, 8, seed=0)
    workers = [int(b["worker"]) for b in torch.utils.data.DataLoader(it, batch_size=None, num_workers=3)]
    assert workers == [i % 3 for i in range(len(it))]


def test_torch_sampler_with_dataloader_workers_and_ranks(pusht):
    tds = prf.torch.Dataset(pusht)
    got = []
    for rank in range(2):
        ts = prf.torch.TorchSampler(prf.EpisodeChunkSampler(pusht, 10, seed=3, rank=rank, world_size=2))
        ts.set_epoch(1)
        idx = [int(i) for b in torch.utils.data.DataLoader(tds, batch_size=10, sampler=ts, num_workers=2)
               for i in b["index"]]
        assert idx == ts.sampler.indices(1).tolist()
        got.append(idx)
    assert set(got[0]) | set(got[1]) == set(range(len(pusht)))


@pytest.mark.parametrize("n", [1, 5, 7, 12, 13])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_pad_and_drop_policy_is_distributed_samplers(n, world_size, drop_last):
    """The documented policy: shards equal torch's DistributedSampler's for the same global order."""
    if drop_last and n < world_size:
        return
    for r in range(world_size):
        ours = prf.SequentialSampler(n, rank=r, world_size=world_size, drop_last=drop_last).indices().tolist()
        theirs = list(torch.utils.data.distributed.DistributedSampler(
            range(n), num_replicas=world_size, rank=r, shuffle=False, drop_last=drop_last))
        assert ours == theirs
