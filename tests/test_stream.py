"""Streaming (``prf.open_dataset(url, streaming=True)``) from a real HTTP server on 127.0.0.1 serving
../shared/data/lerobot with byte ranges (tests/_range_server.py), counting requests and bytes on the
server side: parity with the local dataset and with LeRobot's oracle samples, bytes fetched for an
epoch against the bytes of the GOPs and row groups it needs, no whole-file GET of a data or video
file, and injected faults (dropped connections, 503s, a file replaced mid-epoch)."""

from __future__ import annotations

import json
import struct

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prf
import prf.stream
from conftest import LEROBOT, dataset_path
from _range_server import Faults, RangeServer
from prf.decode import build_index
from prf.errors import StreamError
from prf.sampling import EpisodePoolSampler

STREAM_ORACLES = ["so101_wrist_v30", "aloha_multicam_v30", "g1_cam_high_v21_subset", "pusht_sim_v30"]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PRF_CACHE", str(tmp_path / "cache"))
    prf.stream.clear_cache()
    yield
    prf.stream.configure(cache_bytes=prf.stream._ranges.CACHE_BYTES)


@pytest.fixture(scope="module")
def server():
    with RangeServer(LEROBOT) as srv:
        yield srv


def _oracle(name):
    root = dataset_path(name)
    return json.loads((root / "oracle.json").read_text()), np.load(root / "oracle.npz")


def _open_pair(url, name, **kw):
    oj, o = _oracle(name)
    kw = dict(delta_timestamps=oj["delta_timestamps"], episodes=oj.get("episodes_filter"), **kw)
    return prf.open_dataset(f"{url}/{name}", streaming=True, **kw), prf.open_dataset(dataset_path(name), **kw), o


def _assert_same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        if k == "task":
            assert list(a[k]) == list(b[k])
        else:
            assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
            assert np.array_equal(a[k], b[k]), k


def _no_whole_file_get(srv, name):
    bad = [e for e in srv.requests(name) if e.method == "GET" and e.range is None
           and not e.path.startswith(f"{name}/meta")]
    assert not bad, bad


@pytest.mark.parametrize("name", STREAM_ORACLES)
def test_streamed_oracle_equals_lerobot_and_local(server, name):
    streamed, local, o = _open_pair(server.url, name)
    assert streamed.streaming and not getattr(local, "streaming", False)
    got = streamed.get_batch(o["indices"])
    _assert_same(got, local.get_batch(o["indices"]))  # bit for bit, frames included
    checked = 0
    for key in o.files:  # and LeRobot's own samples, as tests/test_parity.py checks the local ones
        if key in ("indices", "dataset_position") or "@" in key or key.startswith("lerobot0"):
            continue
        ref = o[key]
        if key == "task":
            assert list(got["task"]) == ref.tolist()
        elif key in streamed.cameras:
            diff = np.abs(got[key].transpose(0, 1, 4, 2, 3).astype(np.int16) - ref.astype(np.int16))
            assert diff.max() <= 8 and diff.reshape(-1, diff[0, 0].size).mean(axis=1).max() <= 0.5
        else:
            assert got[key].dtype == ref.dtype and np.array_equal(got[key], ref), key
        checked += 1
    assert checked >= 10
    _no_whole_file_get(server, name)


def test_index_from_sample_tables_equals_full_demux(server):
    """The mp4 index built from the moov only (mdat read as zeros, never fetched) is the demux's."""
    name = "aloha_multicam_v30"
    ds = prf.open_dataset(f"{server.url}/{name}", streaming=True)
    for cam in ds.video_cameras:
        for path in ds._video_files[cam]:
            rel = path.split(f"/{name}/", 1)[1]
            prf.stream.clear_cache()  # the open fetched the sample tables already: again, counted
            server.reset()
            remote = build_index(path)
            assert remote.same_as(build_index(LEROBOT / name / rel)), rel
            sent = server.bytes_sent(f"{name}/{rel}")
            assert 0 < sent < 64 * 1024, (rel, sent)  # the moov and box headers, no packet payload


def _needed_video_bytes(path, frames):
    """Bytes of the GOPs holding ``frames`` in a local mp4 (full demux), plus its non-mdat boxes."""
    rows = []
    with av.open(str(path)) as c:
        for p in c.demux(c.streams.video[0]):
            if p.pts is not None:
                rows.append((p.pts, p.is_keyframe, p.pos, p.size))
    rows.sort()
    arr = np.asarray(rows, dtype=np.int64)
    keys = np.flatnonzero(arr[:, 1])
    bounds = np.concatenate([keys, [len(arr)]])
    g = np.unique(np.searchsorted(keys, frames, side="right") - 1)
    covered = set()
    for j in g.tolist():
        sl = arr[bounds[j]:bounds[j + 1]]
        covered.add((int(sl[:, 2].min()), int((sl[:, 2] + sl[:, 3]).max())))
    data = path.read_bytes()
    boxes, off = 0, 0
    while off < len(data):
        size, typ = struct.unpack(">I4s", data[off:off + 8])
        size = struct.unpack(">Q", data[off + 8:off + 16])[0] if size == 1 else size
        boxes += 16 if typ == b"mdat" else size
        off += size
    return sum(b - a for a, b in covered) + boxes


def _needed_parquet_bytes(path, episodes):
    pf = pq.ParquetFile(path)
    md = pf.metadata
    col = [i for i in range(md.num_columns) if md.schema.column(i).path == "episode_index"][0]
    n = md.serialized_size + 8
    for g in range(md.num_row_groups):
        st = md.row_group(g).column(col).statistics
        if any(st.min <= e <= st.max for e in episodes):
            rg = md.row_group(g)
            n += sum(rg.column(i).total_compressed_size for i in range(rg.num_columns))
    return n


@pytest.mark.parametrize("name,episodes", [("aloha_multicam_v30", [3, 4, 8]), ("so101_wrist_v30", [2, 3]),
                                           ("g1_cam_high_v21_subset", [1, 2])])
def test_epoch_bytes_within_1_3x_of_needed_gops_and_row_groups(name, episodes):
    with RangeServer(LEROBOT) as srv:
        ds = prf.open_dataset(f"{srv.url}/{name}", streaming=True, episodes=episodes)
        local = prf.open_dataset(dataset_path(name), episodes=episodes)
        srv.reset()
        loader = ds.loader(batch_size=32, shuffle=True, num_workers=2)
        assert isinstance(loader.sampler, EpisodePoolSampler)  # the streaming default
        n = 0
        for batch in loader:
            _assert_same(batch, local.get_batch(_positions(local, batch)))
            n += len(batch["task"])
        assert n == len(ds)
        needed = 0
        for rel in local.meta.files_of(episodes, local.video_cameras):
            p = LEROBOT / name / rel
            if rel.endswith(".parquet"):
                needed += _needed_parquet_bytes(p, episodes)
            else:
                cam = next(c for c in local.video_cameras if f"/{c}/" in f"/{rel}")
                frames = _frames_of(local, cam, rel)
                needed += _needed_video_bytes(p, frames)
        fetched = srv.bytes_sent(f"{name}/data") + srv.bytes_sent(f"{name}/videos")
        print(f"{name} episodes {episodes}: fetched {fetched} bytes, needed {needed} ({fetched / needed:.3f}x)")
        assert fetched <= 1.3 * needed
        whole = sum((LEROBOT / name / r).stat().st_size for r in local.meta.files_of(episodes, local.video_cameras))
        assert fetched < whole  # the other episodes' bytes stayed on the server
        _no_whole_file_get(srv, name)


def _positions(ds, batch):
    """Dataset positions of a batch's samples (from their episode and frame index)."""
    ords = np.searchsorted(np.asarray(ds.episodes), batch["episode_index"])
    return ds.episode_starts[ords] + batch["frame_index"]


def _frames_of(ds, cam, rel):
    """Frame indices of video ``rel`` that the selected episodes' samples decode."""
    path = [p for p in ds._video_files[cam] if p.endswith(rel)][0]
    fid = ds._video_files[cam].index(path)
    idx = build_index(path)
    out = []
    for o in np.flatnonzero(ds._video_file_of[cam] == fid).tolist():
        pos = np.arange(ds.episode_starts[o], ds.episode_starts[o] + ds.episode_lengths[o])
        t = ds.column("timestamp")[pos].astype(np.float64) + ds._from_ts[cam][o]
        out.append(idx.nearest(t)[0])
    return np.unique(np.concatenate(out))


def test_faults_drops_and_503s_give_the_same_samples():
    name = "aloha_multicam_v30"
    with RangeServer(LEROBOT, Faults(drop=0.15, error503=0.15, seed=3)) as srv:
        before = prf.stream.stream_stats()["retries"]
        streamed, local, o = _open_pair(srv.url, name)
        _assert_same(streamed.get_batch(o["indices"]), local.get_batch(o["indices"]))
        assert prf.stream.stream_stats()["retries"] > before
        assert any(e.status == 503 for e in srv.log) and any(e.status == -1 for e in srv.log)


def test_persistent_failure_raises_stream_error_naming_url_and_range(monkeypatch):
    name = "so101_wrist_v30"
    monkeypatch.setattr(prf.stream._transport, "RETRIES", 2)
    monkeypatch.setattr(prf.stream._transport, "BACKOFF_S", 0.001)
    with RangeServer(LEROBOT) as srv:
        ds = prf.open_dataset(f"{srv.url}/{name}", streaming=True)
        srv.faults.error503 = 1.0
        with pytest.raises(StreamError) as e:
            ds[100]
        assert srv.url in str(e.value) and "bytes " in str(e.value) and "503" in str(e.value)
        assert e.value.url.startswith(srv.url) and e.value.end > e.value.start


@pytest.mark.parametrize("same_size", [False, True])
def test_file_replaced_mid_epoch_raises(same_size):
    name = "so101_wrist_v30"
    with RangeServer(LEROBOT) as srv:
        ds = prf.open_dataset(f"{srv.url}/{name}", streaming=True)
        ds.get_batch(np.arange(0, 20))  # first episode's frames: fetched and cached
        rel = f"{name}/" + ds.meta.files_of(None, ds.video_cameras)[-1]
        body = (LEROBOT / rel).read_bytes()
        srv.faults.replaced[rel] = body[:-7] + b"changed" if same_size else body + b"more"
        with pytest.raises(StreamError, match="changed on the server"):
            for start in range(0, len(ds), 97):
                ds.get_batch(np.arange(start, min(start + 5, len(ds))))
        with pytest.raises(StreamError):  # and no byte of that file is served any more, cached or not
            ds.get_batch(np.arange(0, 5))


def test_small_cache_cap_still_exact(server):
    """A range cache far smaller than one file: ranges are evicted and fetched again, samples stay exact."""
    prf.stream.configure(cache_bytes=96 * 1024)
    streamed, local, o = _open_pair(server.url, "so101_wrist_v30")
    _assert_same(streamed.get_batch(o["indices"][:16]), local.get_batch(o["indices"][:16]))
    assert prf.stream.stream_stats()["cached_bytes"] <= 96 * 1024


def test_samplers_resume_and_rank_shards_on_a_streamed_dataset(server):
    name = "pusht_sim_v30"
    ds = prf.open_dataset(f"{server.url}/{name}", streaming=True)
    local = prf.open_dataset(dataset_path(name))
    seen = []
    for rank in (0, 1):
        a = ds.loader(batch_size=16, shuffle=True, seed=5, rank=rank, world_size=2)
        b = local.loader(batch_size=16, sampler=EpisodePoolSampler(local, seed=5, rank=rank, world_size=2))
        it = iter(a)
        first = next(it)
        state = a.state_dict()
        rest = list(it)
        ref = list(b)
        _assert_same(first, ref[0])
        for x, y in zip(rest, ref[1:]):
            _assert_same(x, y)
        resumed = ds.loader(batch_size=16, shuffle=True, seed=5, rank=rank, world_size=2)
        resumed.load_state_dict(state)
        again = list(resumed)
        assert len(again) == len(rest)
        for x, y in zip(again, rest):
            _assert_same(x, y)
        seen.append(np.concatenate([first["index"]] + [r["index"] for r in rest]))
    assert set(np.concatenate(seen).tolist()) >= set(range(len(local)))


def test_fsspec_url_streams_through_cat_file():
    """A non-HTTP fsspec URL (here ``memory://``; ``s3://``, ``gs://``, ``hf://`` take the same path)."""
    import fsspec

    name = "pusht_sim_v30"
    fs = fsspec.filesystem("memory")
    src = dataset_path(name)
    for p in src.rglob("*"):
        if p.is_file():
            fs.pipe_file(f"/bench/{name}/{p.relative_to(src).as_posix()}", p.read_bytes())
    oj, o = _oracle(name)
    before = prf.stream.stream_stats()["requests"]
    ds = prf.open_dataset(f"memory://bench/{name}", streaming=True, delta_timestamps=oj["delta_timestamps"])
    local = prf.open_dataset(src, delta_timestamps=oj["delta_timestamps"])
    _assert_same(ds.get_batch(o["indices"]), local.get_batch(o["indices"]))
    assert prf.stream.stream_stats()["requests"] > before


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(1, 120)), max_size=12),
       st.integers(0, 450), st.integers(1, 100))
def test_range_segments_assemble_exactly(inserts, a, n):
    """Invariant of the range cache: any cached bytes read back equal the file's, gaps are exactly
    what no insert covered."""
    from prf.stream._ranges import _Segments

    data = bytes(np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8))
    segs = _Segments()
    covered = np.zeros(600, bool)
    for s, k in inserts:
        segs.insert(s, data[s:s + k])
        covered[s:s + k] = True
    b = min(a + n, 600)
    gaps = segs.gaps(a, b)
    hole = np.zeros(600, bool)
    for x, y in gaps:
        hole[x:y] = True
    assert np.array_equal(hole[a:b], ~covered[a:b])
    got = segs.assemble(a, b, short=False)
    assert (got is None) == bool(gaps) and (got is None or got == data[a:b])
    short = segs.assemble(a, b, short=True)
    assert (short is None) == (not covered[a]) if a < b else True
    if short is not None:
        assert short == data[a:a + len(short)] and len(short) >= 1


def test_torch_dataloader_workers_read_a_streamed_dataset(server):
    """Worker processes (forkserver) find the stream through the mirror root's marker file."""
    torch = pytest.importorskip("torch")
    import prf.torch

    name = "pusht_sim_v30"
    ds = prf.open_dataset(f"{server.url}/{name}", streaming=True)
    local = prf.open_dataset(dataset_path(name))
    dl = torch.utils.data.DataLoader(prf.torch.Dataset(ds), batch_size=8, num_workers=2)
    for j, b in enumerate(dl):
        ref = local.get_batch(np.arange(8 * j, 8 * j + 8))
        for k in ref:
            if k != "task":
                assert np.array_equal(b[k].numpy(), ref[k]), k
        if j == 2:
            break


def test_parquet_only_dataset_streams(server):
    name = "rebot_novideo_v30"
    ds = prf.open_dataset(f"{server.url}/{name}", streaming=True)
    local = prf.open_dataset(dataset_path(name))
    assert len(ds) == len(local)
    _assert_same(ds.get_batch(np.arange(len(ds))), local.get_batch(np.arange(len(local))))
    _no_whole_file_get(server, name)


def test_repo_id_streams_as_hf_url(monkeypatch):
    """A Hub repo id with ``streaming=True`` is read as ``hf://datasets/<id>@<revision>`` (no network
    here: the URL handed to the streaming open is checked)."""
    import prf._open as opener

    seen = []

    def fake(url):
        seen.append(url)
        raise RuntimeError("stop")

    monkeypatch.setattr(opener, "_stream_url", fake)
    with pytest.raises(RuntimeError, match="stop"):
        prf.open_dataset("lerobot/pusht", streaming=True, revision="v3.0")
    assert seen == ["hf://datasets/lerobot/pusht@v3.0"]


def test_missing_remote_file_is_missing_files_error(tmp_path):
    """A data/video file the metadata names but the server lacks (404): MissingFilesError, as locally."""
    import shutil

    name = "pusht_sim_v30"
    shutil.copytree(dataset_path(name) / "meta", tmp_path / name / "meta")
    with RangeServer(tmp_path) as srv:
        with pytest.raises(prf.errors.MissingFilesError):
            prf.open_dataset(f"{srv.url}/{name}", streaming=True)


def test_frame_cache_on_a_streamed_dataset_is_a_clear_error(server, tmp_path):
    ds = prf.open_dataset(f"{server.url}/pusht_sim_v30", streaming=True)
    with pytest.raises(StreamError, match="decoded-frame cache"):
        ds.loader(batch_size=4, cache_dir=tmp_path / "frames")


def test_http_transport_follows_redirects_and_checks_the_version(server):
    from prf.stream._transport import HTTPTransport, Version

    rel = "so101_wrist_v30/data/chunk-000/file-000.parquet"
    body = (LEROBOT / rel).read_bytes()
    t = HTTPTransport(f"{server.url}/redirect/{rel}")
    v = t.version()
    assert v.size == len(body) and v.etag
    assert t.read(100, 5000, v) == body[100:5000]
    with pytest.raises(StreamError, match="changed on the server"):
        t.read(0, 10, Version(v.size, '"another"'))  # If-Match fails: 412
    with pytest.raises(StreamError, match="changed on the server"):
        t.read(0, 10, Version(v.size + 1, None))  # Content-Range total differs


def _samplers(ds):
    from prf.sampling import (EpisodeChunkSampler, FilteredSampler, SequentialSampler, ShuffleSampler,
                              WeightedSampler)

    n = len(ds)
    return {
        "sequential": SequentialSampler(n),
        "shuffle": ShuffleSampler(n, seed=1),
        "filtered": FilteredSampler(ds, episodes=ds.episodes[1::2], shuffle=True, seed=2),
        "chunks": EpisodeChunkSampler(ds, 8, seed=3),
        "pool": EpisodePoolSampler(ds, pool_size=2, seed=4),
        "weighted": WeightedSampler(ds, np.linspace(1, 2, len(ds.episodes)), num_samples=64, seed=5),
    }


@pytest.mark.parametrize("kind", ["sequential", "shuffle", "filtered", "chunks", "pool", "weighted"])
def test_every_sampler_gives_the_local_batches(server, kind):
    name = "pusht_sim_v30"
    oj, _ = _oracle(name)
    ds = prf.open_dataset(f"{server.url}/{name}", streaming=True, delta_timestamps=oj["delta_timestamps"])
    local = prf.open_dataset(dataset_path(name), delta_timestamps=oj["delta_timestamps"])
    a = list(ds.loader(batch_size=16, sampler=_samplers(ds)[kind], num_workers=2))
    b = list(local.loader(batch_size=16, sampler=_samplers(local)[kind], num_workers=2))
    assert len(a) == len(b) > 0
    for x, y in zip(a[:12], b[:12]):
        _assert_same(x, y)


@pytest.mark.parametrize("output", ["torch", "mlx", "jax", "keras"])
def test_adapters_on_a_streamed_dataset(server, output):
    """``ds.loader(output=...)`` gives each framework's arrays with the local dataset's values."""
    name = "pusht_sim_v30"
    ds = prf.open_dataset(f"{server.url}/{name}", streaming=True)
    local = prf.open_dataset(dataset_path(name))
    try:
        got = next(iter(ds.loader(batch_size=8, output=output)))
    except prf.errors.PluginError as e:
        pytest.skip(str(e))
    ref = local.get_batch(np.arange(8))
    for k in ("observation.state", "action", "observation.image", "index"):
        assert np.array_equal(np.asarray(got[k]), ref[k]), (output, k)


def test_failure_inside_the_decoder_then_recovery(monkeypatch):
    """Without the GOP prefetch every byte is read from inside PyAV (short reads on demand): a failure
    there is a StreamError (not a VideoError), and once the server recovers the frames are exact."""
    import prf.decode.pyav as pyav_backend

    monkeypatch.setattr(pyav_backend, "prefetch_frames", lambda path, frames: 0)
    monkeypatch.setattr(prf.stream._transport, "RETRIES", 1)
    monkeypatch.setattr(prf.stream._transport, "BACKOFF_S", 0.001)
    name = "so101_wrist_v30"
    with RangeServer(LEROBOT) as srv:
        ds = prf.open_dataset(f"{srv.url}/{name}", streaming=True)
        local = prf.open_dataset(dataset_path(name))
        pos = np.array([5, 400, 900, 1500])
        srv.faults.error503 = 1.0
        with pytest.raises(StreamError, match="503"):
            ds.get_batch(pos)
        srv.faults.error503 = 0.0
        _assert_same(ds.get_batch(pos), local.get_batch(pos))
        gets = [e for e in srv.requests(f"{name}/videos") if e.method == "GET"]
        assert gets and all(e.range is not None for e in gets)
