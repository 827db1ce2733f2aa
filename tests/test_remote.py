"""Datasets opened by fsspec URL (``s3://``, ``gs://``, ``https://``...): ``meta/`` and only the selected
episodes' files are copied into ``$PRF_CACHE/remote``, and samples equal the local dataset's.

No network here: the URLs point at fsspec's in-memory filesystem (``memory://``), which goes through
the same fsspec calls as any remote one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import prf
from prf.errors import MetadataError

fsspec = pytest.importorskip("fsspec")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lerobot"


@pytest.fixture
def memfs(monkeypatch, tmp_path):
    monkeypatch.setenv("PRF_CACHE", str(tmp_path / "cache"))
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")
    src = DATA / "pusht_sim_v21"
    for p in sorted(src.rglob("*")):
        if p.is_file() and p.relative_to(src).parts[0] in ("meta", "data", "videos"):
            fs.pipe_file(f"/bucket/pusht/{p.relative_to(src).as_posix()}", p.read_bytes())
    yield fs
    fs.store.clear()


def _copied(tmp_path: Path) -> set[str]:
    roots = list((tmp_path / "cache" / "remote").glob("*/pusht"))
    assert len(roots) == 1
    return {p.relative_to(roots[0]).as_posix() for p in roots[0].rglob("*") if p.is_file()}


def test_url_copies_meta_and_only_selected_episodes(memfs, tmp_path):
    local = prf.open_dataset(DATA / "pusht_sim_v21", episodes=[2, 5], delta_timestamps={"action": [0.0, 0.1]})
    ds = prf.open_dataset("memory://bucket/pusht", episodes=[2, 5], delta_timestamps={"action": [0.0, 0.1]})
    copied = _copied(tmp_path)
    assert {n for n in copied if not n.startswith("meta/")} == {
        p.relative_to(local.meta.root).as_posix() for e in (2, 5) for p in local.meta.episode_files(e)}
    assert len(ds) == len(local)
    a, b = ds.get_batch(np.arange(len(ds))), local.get_batch(np.arange(len(local)))
    for k in b:
        if k == "task":
            assert a[k] == b[k]
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_url_copy_is_reused_and_refreshed_when_the_source_changes(memfs, tmp_path):
    prf.open_dataset("memory://bucket/pusht", episodes=[0])
    root = next((tmp_path / "cache" / "remote").glob("*/pusht"))
    data = root / "data" / "chunk-000" / "episode_000000.parquet"
    stamp = data.stat().st_mtime_ns
    prf.open_dataset("memory://bucket/pusht", episodes=[0])
    assert data.stat().st_mtime_ns == stamp  # same size: not copied again
    data.write_bytes(b"truncated")  # a damaged local copy (another size) is fetched again
    ds = prf.open_dataset("memory://bucket/pusht", episodes=[0])
    assert ds[0]["observation.state"].shape == (2,)
    assert not list(root.rglob("*.part"))  # no temp files left behind


def test_url_without_a_dataset_is_a_clear_error(memfs):
    memfs.pipe_file("/bucket/empty/readme.txt", b"nothing here")
    with pytest.raises(MetadataError, match="no meta/ folder"):
        prf.open_dataset("memory://bucket/empty")


def test_file_url_opens_in_place(tmp_path):
    ds = prf.open_dataset(f"file://{DATA / 'so101_wrist_v30'}")
    assert ds.meta.root == DATA / "so101_wrist_v30"
    assert not (tmp_path / "cache").exists()
