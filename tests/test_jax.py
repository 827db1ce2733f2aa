"""prf.jax: the Grain data source's contract, Grain's own pipelines over it, multiprocess prefetch,
checkpoint state, and conversion to jax.Array (the shared behaviour is in conformance/)."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

grain = pytest.importorskip("grain")
jax = pytest.importorskip("jax")
import prf  # noqa: E402
import prf.jax  # noqa: E402

from conftest import dataset_path  # noqa: E402

DT = {"observation.state": [-0.1, 0.0], "action": [0.0, 0.1, 0.2]}


@pytest.fixture(scope="module")
def pusht():
    return prf.open_dataset(dataset_path("pusht_sim_v30"), delta_timestamps={**DT, "observation.image": [-0.1, 0.0]})


@pytest.fixture(scope="module")
def pusht_nocam():
    return prf.open_dataset(dataset_path("pusht_sim_v30"), delta_timestamps=DT, cameras=[])


def same_sample(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (a[k] == b[k]) if isinstance(a[k], str) else np.array_equal(a[k], b[k]) for k in a)


def test_data_source_contract(pusht):
    src = prf.jax.DataSource(pusht)
    from grain._src.python.dataset import base  # the protocol Grain checks for batched reads

    assert isinstance(src, base.SupportsBatchedReadRandomAccessDataSource)
    assert len(src) == len(pusht) == 3850
    assert "pusht_sim_v30" in repr(src) and "frames=3850" in repr(src)
    assert repr(src) == repr(prf.jax.DataSource(dataset_path("pusht_sim_v30"),
                                                delta_timestamps={**DT, "observation.image": [-0.1, 0.0]}))
    idx = [5, 3000, 0, 5, 161]
    one = [src[i] for i in idx]
    assert all(same_sample(a, pusht[i]) for a, i in zip(one, idx))
    assert all(same_sample(a, b) for a, b in zip(src._getitems(idx), one))  # batched decode, same samples
    back = pickle.loads(pickle.dumps(src))
    assert repr(back) == repr(src) and same_sample(back[3000], one[1])


def test_data_source_is_thread_safe_and_deterministic():
    ds = prf.open_dataset(dataset_path("so101_wrist_v30"), delta_timestamps={"observation.images.wrist": [-0.1, 0.0]})
    src = prf.jax.DataSource(ds)
    idx = np.random.default_rng(0).integers(0, len(src), 24).tolist()
    want = [src[i] for i in idx]
    got: dict[int, dict] = {}
    errors: list[BaseException] = []

    def work(part: list[int]) -> None:
        try:
            for j in part:
                got[j] = src[idx[j]]
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(list(range(t, len(idx), 4)),)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert all(same_sample(got[j], want[j]) for j in range(len(idx)))


def test_grain_native_map_pipeline(pusht_nocam):
    """The idiomatic Grain pipeline over the source: Grain's shuffle (its own order), a map, a batch."""

    def build():
        return (grain.MapDataset.source(prf.jax.DataSource(pusht_nocam)).shuffle(seed=42)
                .map(lambda s: {**s, "action": s["action"] * 2}).batch(100, batch_fn=prf.jax.collate))

    a, b = build(), build()
    assert len(a) == 39
    idx = np.concatenate([a[k]["index"] for k in range(len(a))])
    assert sorted(idx.tolist()) == list(range(3850))  # a permutation: every sample once
    assert not np.array_equal(idx, np.arange(3850))
    assert np.array_equal(b[7]["index"], a[7]["index"])  # deterministic
    assert np.array_equal(a[0]["action"], 2 * pusht_nocam.get_batch(a[0]["index"])["action"])
    assert isinstance(a[0]["task"], list) and isinstance(a[0]["task"][0], str)


def test_data_loader_grain_order_shards(pusht_nocam):
    """order="grain": grain.DataLoader with Grain's IndexSampler; shards are disjoint and cover."""
    seen = []
    for shard in range(2):
        dl = prf.jax.data_loader(pusht_nocam, 128, shuffle=True, seed=3, order="grain",
                                 shard_options=grain.sharding.ShardOptions(shard, 2))
        seen.append(np.concatenate([b["index"] for b in dl]))
    assert not set(seen[0].tolist()) & set(seen[1].tolist())
    assert sorted(np.concatenate(seen).tolist()) == list(range(3850))


def test_data_loader_shards_by_jax_process_by_default(pusht_nocam):
    dl = prf.jax.data_loader(pusht_nocam, 500, shuffle=True, seed=9)
    assert (jax.process_index(), jax.process_count()) == (0, 1)
    got = np.concatenate([b["index"] for b in dl])
    ref = np.concatenate([b["index"] for b in pusht_nocam.loader(500, shuffle=True, seed=9, rank=0, world_size=1)])
    assert np.array_equal(got, ref)


def test_mp_prefetch_and_checkpoint_state(pusht_nocam):
    """Batches from Grain worker processes (spawned; the pipeline is pickled) equal the in-process ones,
    and an iterator's get_state/set_state resumes exactly, also with worker processes."""
    md = prf.jax.map_dataset(pusht_nocam, 64, shuffle=True, seed=1, rank=0, world_size=1)
    want = [md[k]["index"] for k in range(8)]
    opts = grain.MultiprocessingOptions(num_workers=2, per_worker_buffer_size=1)
    it = iter(md.to_iter_dataset().mp_prefetch(opts))
    got = [next(it)["index"] for _ in range(5)]
    state = it.get_state()
    it2 = iter(md.to_iter_dataset().mp_prefetch(opts))
    it2.set_state(state)
    got += [next(it2)["index"] for _ in range(3)]
    it.close()
    it2.close()
    assert all(np.array_equal(a, b) for a, b in zip(got, want))


def test_data_loader_workers_and_state(pusht_nocam):
    """grain.DataLoader(worker_count=2): Grain gives worker w every 2nd record of prf's order and batches
    per worker, taking batches from the workers in turn; its state resumes exactly."""
    kw = dict(shuffle=True, seed=4, num_epochs=1, worker_count=2, shard_options=grain.sharding.NoSharding())
    dl = prf.jax.data_loader(pusht_nocam, 500, **kw)
    it = iter(dl)
    first = [next(it)["index"] for _ in range(3)]
    state = it.get_state()
    rest = [b["index"] for b in it]
    it2 = iter(prf.jax.data_loader(pusht_nocam, 500, **kw))
    it2.set_state(state)
    resumed = [b["index"] for b in it2]
    assert len(resumed) == len(rest) and all(np.array_equal(a, b) for a, b in zip(rest, resumed))
    sampler = pusht_nocam.loader(1, shuffle=True, seed=4, rank=0, world_size=1).sampler
    order = pusht_nocam.column("index")[sampler.indices(0)]
    per_worker = [order[w::2] for w in range(2)]
    want = [per_worker[k % 2][(k // 2) * 500 : (k // 2 + 1) * 500] for k in range(8)]
    assert len(first + rest) == 8
    assert all(np.array_equal(a, b) for a, b in zip(first + rest, want))


def test_sampler_checks():
    opts = grain.sharding.ShardOptions(1, 2)
    s = prf.jax.Sampler(11, shard_options=opts, shuffle=True, seed=0, num_epochs=None)
    import sys

    assert len(s) == sys.maxsize and "num_epochs=None" in repr(s)
    assert len(prf.jax.Sampler(11, shard_options=opts, num_epochs=2)) == 24  # padded to 12 per epoch
    wrong = prf.open_dataset(dataset_path("rebot_novideo_v30")).loader(1, rank=0, world_size=2).sampler
    with pytest.raises(ValueError, match="rank 0 of 2"):
        prf.jax.Sampler(shard_options=opts, sampler=wrong)
    with pytest.raises(IndexError):
        prf.jax.Sampler(11, num_epochs=1)[11]


def test_to_jax(pusht):
    batch = pusht.get_batch(np.array([0, 1, 2, 3]))
    out = prf.jax.to_jax(batch)
    assert isinstance(out["observation.image"], jax.Array) and out["observation.image"].dtype == np.uint8
    assert np.array_equal(np.asarray(out["observation.image"]), batch["observation.image"])
    assert out["task"] == batch["task"]
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    g = prf.jax.to_jax(batch, sharding=sharding)
    assert g["action"].sharding == sharding and np.array_equal(np.asarray(g["action"]), batch["action"])
    # Grain's default batch_fn stacks strings into an array: they come back as list[str]
    assert prf.jax.to_jax({"task": np.array(["a", "b"])})["task"] == ["a", "b"]
