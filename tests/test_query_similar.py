"""prf.similar / prf similar: the usearch index against exact search (recall@10), cached, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("usearch")

import prf
from prf.errors import QueryError
from prf.query import exact_neighbours, frame_vectors
from prf.query.similar import _ann_index, _key

from conftest import REPO, dataset_path


@pytest.mark.parametrize("name", ["so101_wrist_v30", "aloha_multicam_v30"])
@pytest.mark.parametrize("by", [("observation.state",), ("observation.state", "action")])
def test_recall_at_10_against_exact(name, by, tmp_path):
    meta = prf.DatasetMeta(dataset_path(name))
    x, eps, fis = frame_vectors(meta, by)
    index = _ann_index(x, tmp_path / f"{_key(meta, by)}.usearch")
    rng = np.random.default_rng(0)
    queries = rng.choice(len(x), size=100, replace=False)
    k = 10
    _, ex_d = exact_neighbours(x, x[queries], k)
    hits = 0
    for j, q in enumerate(queries):
        m = index.search(x[q], k)
        d = np.sqrt((((x[np.asarray(m.keys, np.int64)] - x[q]) ** 2).sum(1)))
        # tie-aware: an ANN answer counts when it is no farther than the exact k-th neighbour
        hits += int((d <= ex_d[j, -1] + 1e-5).sum())
    recall = hits / (k * len(queries))
    assert recall >= 0.95, recall
    # cached: a second build loads the saved index
    again = _ann_index(x, tmp_path / f"{_key(meta, by)}.usearch")
    assert len(again) == len(x)


def test_similar_api_exact_and_ann_agree(tmp_path):
    root = dataset_path("aloha_multicam_v30")
    ex = prf.similar(root, episode=3, frame=40, k=10, exact=True)
    ann = prf.similar(root, episode=3, frame=40, k=10, cache_dir=tmp_path)
    assert ex.column_names == ["episode_index", "frame_index", "distance"] and ex.num_rows == 10
    d_ex, d_ann = ex.column("distance").to_numpy(), ann.column("distance").to_numpy()
    assert (np.diff(d_ex) >= 0).all() and np.allclose(d_ann[:5], d_ex[:5], atol=1e-4)
    assert not any(e == 3 and f == 40 for e, f in zip(ex.column("episode_index").to_pylist(), ex.column("frame_index").to_pylist()))
    # the nearest frames of a smooth trajectory include its own neighbours in time
    near = set(zip(ex.column("episode_index").to_pylist(), ex.column("frame_index").to_pylist()))
    assert (3, 39) in near or (3, 41) in near
    assert list(tmp_path.glob("*.usearch"))
    with pytest.raises(QueryError, match="not a frame"):
        prf.similar(root, episode=3, frame=10_000, exact=True)
    with pytest.raises(QueryError, match="not a non-camera feature"):
        prf.similar(root, episode=3, frame=1, by=("observation.images.top",), exact=True)


def test_cli_similar_json(tmp_path):
    root = str(dataset_path("pusht_sim_v30"))
    r = subprocess.run([sys.executable, "-m", "prf.cli", "similar", root, "--episode", "2", "--frame", "5", "-k", "4",
                        "--by", "observation.state", "action", "--json", "--threads", "0"], capture_output=True, text=True, cwd=REPO,
                       timeout=300, env={**__import__("os").environ, "PRF_CACHE": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 4 and all(set(x) == {"episode_index", "frame_index", "distance"} for x in rows)
    assert list((tmp_path / "similar").glob("*.usearch"))


def test_similarity_index_answers_as_similar(tmp_path):
    """One SimilarityIndex, many queries: each answer equals a whole prf.similar call's (exact and ANN),
    and the index is loaded from / saved to the cache at the first search, not before."""
    root = dataset_path("so101_wrist_v30")
    ex = prf.SimilarityIndex(root, by=("observation.state", "action"), exact=True)
    ann = prf.SimilarityIndex(root, by=("observation.state", "action"), cache_dir=tmp_path)
    assert len(ex) == len(ann) == prf.DatasetMeta(root).total_frames
    assert not list(tmp_path.glob("*.usearch"))
    for e, f in [(0, 0), (2, 17), (5, 100)]:
        a = ex.query(e, f, k=6)
        b = prf.similar(root, episode=e, frame=f, k=6, by=("observation.state", "action"), exact=True)
        assert a.equals(b)
        c = ann.query(e, f, k=6)
        d = prf.similar(root, episode=e, frame=f, k=6, by=("observation.state", "action"), cache_dir=tmp_path)
        assert c.equals(d)
        np.testing.assert_allclose(c.column("distance").to_numpy()[:3], a.column("distance").to_numpy()[:3], atol=1e-4)
    assert len(list(tmp_path.glob("*.usearch"))) == 1


def test_similarity_index_rows_and_search():
    """row() finds every frame (episode, frame_index) -> its vector; search() normalizes raw values as the
    index did, so a frame's own raw values find that frame at distance 0."""
    root = dataset_path("aloha_multicam_v30")
    ix = prf.SimilarityIndex(root, exact=True)
    rows = [ix.row(int(e), int(f)) for e, f in zip(ix.episode_index, ix.frame_index)]
    assert rows == list(range(len(ix)))
    state = prf.DatasetMeta(root)
    some = np.array([5, 700, 2000])
    raw = ix.vectors[some].astype(np.float64) * ix.std + ix.mean
    t = ix.search(raw, k=1)
    assert t.column_names == ["query", "episode_index", "frame_index", "distance"]
    assert t.column("query").to_pylist() == [0, 1, 2]
    assert np.all(t.column("distance").to_numpy() < 1e-5)
    got = [ix.row(e, f) for e, f in zip(t.column("episode_index").to_pylist(), t.column("frame_index").to_pylist())]
    # frames with equal state (aloha's episodes start alike) tie at 0: the answer's vector equals the query's
    np.testing.assert_allclose(ix.vectors[got], ix.vectors[some], atol=1e-6)
    assert state.total_frames == len(ix)
    with pytest.raises(QueryError, match="not a frame"):
        ix.row(3, 10_000)
    with pytest.raises(QueryError, match="not a frame"):
        ix.row(99, 0)
    with pytest.raises(QueryError, match=r"expected \[M, 14\]"):
        ix.search(np.zeros(3))
    with pytest.raises(QueryError, match="k must be"):
        ix.query(3, 4, k=0)


def test_similarity_index_threaded_build_recall(tmp_path):
    """threads=0 (all cores) builds an index whose answers are as good (recall@10 >= 0.95 against exact)."""
    root = dataset_path("aloha_multicam_v30")
    ex = prf.SimilarityIndex(root, exact=True)
    ann = prf.SimilarityIndex(root, cache_dir=tmp_path, threads=0)
    rng = np.random.default_rng(1)
    hits = 0
    picks = rng.choice(len(ex), size=60, replace=False)
    for r in picks:
        e, f = int(ex.episode_index[r]), int(ex.frame_index[r])
        kth = ex.query(e, f, k=10).column("distance").to_numpy()[-1]
        hits += int((ann.query(e, f, k=10).column("distance").to_numpy() <= kth + 1e-5).sum())
    assert hits / (10 * len(picks)) >= 0.95
