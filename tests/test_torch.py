"""prf.torch: map-style Dataset with torch's DataLoader (workers, shuffle, DistributedSampler),
zero-copy tensors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="prf[torch] not installed")
import prf  # noqa: E402
import prf.torch as pt  # noqa: E402
from conftest import dataset_path  # noqa: E402

DT = {"observation.image": [-0.1, 0.0], "action": [0.0, 0.1, 0.2]}


@pytest.fixture(scope="module")
def small():
    return prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[0, 5], delta_timestamps=DT)


def _by_index(batches):
    out = {}
    for b in batches:
        for j, i in enumerate(np.asarray(b["index"]).tolist()):
            out[i] = {k: (v[j] if k == "task" else np.asarray(v[j])) for k, v in b.items()}
    return out


def test_dataloader_with_workers_delivers_same_samples_as_numpy_loader(small):
    ref = _by_index(small.loader(batch_size=16))
    dl = torch.utils.data.DataLoader(pt.Dataset(small), batch_size=16, shuffle=True, num_workers=2,
                                     generator=torch.Generator().manual_seed(0))
    got = _by_index({k: (v if k == "task" else v.numpy()) for k, v in b.items()} for b in dl)
    assert set(got) == set(ref) and len(got) == len(small)
    for i, sample in ref.items():
        for k, v in sample.items():
            if k == "task":
                assert got[i][k] == v
            else:
                assert np.array_equal(got[i][k], v), (i, k)
                assert got[i][k].dtype == v.dtype


def test_getitem_matches_core_and_types(small):
    tds = pt.Dataset(small)
    s = tds[7]
    core = small[7]
    assert s["observation.image"].dtype == torch.uint8 and tuple(s["observation.image"].shape) == (2, 96, 96, 3)
    assert s["action_is_pad"].dtype == torch.bool
    assert s["action"].dtype == torch.float32 and tuple(s["action"].shape) == (3, 2)
    assert isinstance(s["task"], str)
    for k, v in core.items():
        if k != "task":
            assert np.array_equal(s[k].numpy(), v)


def test_distributed_sampler_shards(small):
    tds = pt.Dataset(small)
    seen = []
    for rank in range(2):
        sampler = torch.utils.data.DistributedSampler(tds, num_replicas=2, rank=rank, shuffle=True, seed=1)
        sampler.set_epoch(0)
        dl = torch.utils.data.DataLoader(tds, batch_size=8, sampler=sampler, num_workers=0)
        seen.append([int(i) for b in dl for i in b["index"]])
    assert not set(seen[0]) & set(seen[1])
    assert set(seen[0]) | set(seen[1]) == set(small.column("index").tolist())


def test_to_torch_is_zero_copy(small):
    batch = small.get_batch(np.arange(4))
    tb = pt.to_torch(batch)
    for k, v in batch.items():
        if isinstance(v, np.ndarray):
            assert tb[k].data_ptr() == v.__array_interface__["data"][0], k  # same memory
    tb["action"][0, 0, 0] = 123.0
    assert batch["action"][0, 0, 0] == 123.0


def test_prf_loader_yields_tensors(small):
    batches = list(pt.loader(small, batch_size=32, shuffle=True, seed=0, num_workers=2))
    ref = list(small.loader(batch_size=32, shuffle=True, seed=0))
    assert len(batches) == len(ref)
    for b, r in zip(batches, ref):
        assert isinstance(b["observation.image"], torch.Tensor)
        assert np.array_equal(b["observation.image"].numpy(), r["observation.image"])


def test_lerobot_image_layout(small):
    frames = pt.to_torch(small.get_batch([0]))["observation.image"]
    f = pt.to_lerobot_images(frames)
    assert f.dtype == torch.float32 and tuple(f.shape) == (1, 2, 3, 96, 96)
    assert torch.equal((f * 255).round().to(torch.uint8), frames.permute(0, 1, 4, 2, 3))
