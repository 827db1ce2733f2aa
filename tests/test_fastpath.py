"""The fast path (decode windows over worker threads, episode-pool order, frame cache) delivers exactly
the samples of the slow path (``ds[i]`` one by one)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import prf
from conftest import dataset_path


def _oracle_dataset(name, **kw):
    root = dataset_path(name)
    oj = json.loads((root / "oracle.json").read_text())
    return prf.open_dataset(root, delta_timestamps=oj["delta_timestamps"], episodes=oj.get("episodes_filter"), **kw)


@pytest.mark.parametrize("name", ["pusht_sim_v30", "aloha_multicam_v30", "g1_cam_high_v21_subset"])
@pytest.mark.parametrize("pool", [False, True])
def test_fast_path_equals_slow_path(name, pool):
    ds = _oracle_dataset(name)
    sampler = prf.EpisodePoolSampler(ds, pool_size=2, seed=3) if pool else prf.ShuffleSampler(len(ds), seed=3)
    loader = ds.loader(8, sampler=sampler, num_workers=2, decode_window=3)
    planned = loader.batch_indices(0)
    for n, batch in enumerate(loader):
        for j, i in enumerate(planned[n]):
            slow = ds[int(i)]
            for k, v in slow.items():
                if k == "task":
                    assert batch[k][j] == v
                else:
                    assert np.array_equal(batch[k][j], v), (k, int(i))
        if n == 4:
            break


def test_window_shares_frames_across_batches():
    """Overlapping windows of neighbouring samples: each needed frame is decoded once per window."""
    from prf.plan import decode_tasks

    ds = _oracle_dataset("pusht_sim_v30")
    plans = [ds.plan(np.arange(0, 16)), ds.plan(np.arange(16, 32))]
    tasks = decode_tasks(plans, ds.backend.index)
    decoded = sum(t.frames.size for t in tasks)
    requested = sum(p.frame_count() for p in plans)
    assert requested == 64 and decoded == 32  # frames k-1 and k of 32 consecutive samples: 32 unique
    split = decode_tasks(plans, ds.backend.index, split=4)
    assert sum(t.frames.size for t in split) == 32 and len(split) == 4
    gops = [set(ds.backend.index(t.path).gop_start[t.frames].tolist()) for t in split]
    for a in range(4):
        for b in range(a + 1, 4):
            assert not gops[a] & gops[b]  # no GOP is decoded by two tasks


def test_episode_pool_sampler():
    ds = prf.open_dataset(dataset_path("pusht_sim_v30"), cameras=[])
    from prf.sampling import distinct_episodes_per_batch

    s = prf.EpisodePoolSampler(ds, pool_size=3, seed=0)
    order = s.indices()
    assert np.array_equal(np.sort(order), np.arange(len(ds)))
    eps = ds.row_episode[order]
    # pools of 3 episodes: every 3 consecutive episodes' frames come out together
    first_pool = set(eps[: sum(ds.episode_lengths[list(set(eps[:1]))])].tolist())
    assert len(first_pool) <= 3
    assert distinct_episodes_per_batch(order, ds.row_episode, 32) <= 4
    uniform = distinct_episodes_per_batch(prf.ShuffleSampler(len(ds), seed=0).indices(), ds.row_episode, 32)
    assert uniform > 12
    assert not np.array_equal(order, prf.EpisodePoolSampler(ds, pool_size=3, seed=0, ).indices(epoch=1))
    assert np.array_equal(order, prf.EpisodePoolSampler(ds, pool_size=3, seed=0).indices(epoch=0))
