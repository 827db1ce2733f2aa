"""prf.torch.IterableDataset: worker sharding, epochs and resume offsets (order vs. the other adapters
is in conformance/)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import prf  # noqa: E402
import prf.torch  # noqa: E402

from conftest import dataset_path  # noqa: E402


@pytest.fixture(scope="module")
def small():
    return prf.open_dataset(dataset_path("pusht_sim_v30"), episodes=[0, 1], cameras=[])


def test_workers_split_batches_without_overlap(small, monkeypatch):
    ids = prf.torch.IterableDataset(small, 10, shuffle=True, seed=1)
    nb = len(ids)
    seen = []
    for w in range(3):  # what each of 3 DataLoader workers yields
        info = type("Info", (), {"id": w, "num_workers": 3})()
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        seen.append([b["index"].numpy() for b in ids])
    assert [len(s) for s in seen] == [len(range(w, nb, 3)) for w in range(3)]
    flat = np.concatenate([np.concatenate(s) for s in seen])
    assert sorted(flat.tolist()) == sorted(small.column("index").tolist())  # disjoint and covering


def test_epochs_and_start_batch(small):
    ids = prf.torch.IterableDataset(small, 16, shuffle=True, seed=5)
    loader = small.loader(16, shuffle=True, seed=5)
    ids.set_epoch(2, start_batch=3)
    assert len(ids) == len(loader) - 3
    got = [b["index"].numpy() for b in torch.utils.data.DataLoader(ids, batch_size=None, num_workers=0)]
    want = [small.column("index")[i] for i in loader.batch_indices(2)[3:]]
    assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
    back = pickle.loads(pickle.dumps(ids))
    assert back.epoch == 2 and back.start_batch == 3 and "IterableDataset" in repr(back)
