"""Edits of the shared datasets used by tests/test_edit.py and tests/test_edit_lerobot.py, and the
comparison of an edited dataset with its sources.

Each case builds one or more outputs and says, for every output episode, which source episode it
came from (``(source root, source episode, episodes= to open the source with)``). Samples of the
output must equal prf's reading of that source episode: numeric features and frame/timestamp columns
bit-equal, ``episode_index``/``index`` re-based, task strings equal, frames bit-equal where remuxed and
within the parity tolerance (mean |diff| <= 0.5, max <= 8) in re-encoded GOPs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

import prf
from conftest import LEROBOT

PUSHT30, PUSHT21 = LEROBOT / "pusht_sim_v30", LEROBOT / "pusht_sim_v21"
SO101, ALOHA, G1 = LEROBOT / "so101_wrist_v30", LEROBOT / "aloha_multicam_v30", LEROBOT / "g1_cam_high_v21_subset"
G1_PRESENT = [1, 2]


def _src(root: Path, eps) -> list[tuple[Path, int, list[int] | None]]:
    opened = G1_PRESENT if root == G1 else None
    return [(root, int(e), opened) for e in eps]


def _all(root: Path) -> list[int]:
    return G1_PRESENT if root == G1 else list(prf.DatasetMeta(root).episodes)


def odd_dataset(root: Path, codec: str = "auto", size: int = 64) -> Path:
    """A prf-written dataset whose odd-length episodes start inside GOPs (re-encode needed); with
    ``codec="h264"``, x264's stream has a B-frame delay (dts one frame before pts) and its parameter
    sets in avcC, which spliced re-encoded GOPs must respect."""
    rng = np.random.default_rng(0)
    feats = {"observation.state": {"dtype": "float32", "shape": [2]},
             "observation.images.cam": {"dtype": "video", "shape": [size, size, 3]}}
    yy, xx = np.mgrid[0:size, 0:size]

    def ep(e, n):
        fr = np.stack([((xx * 4 + yy * 2 + t * 7 + e * 30) % 256).astype(np.uint8)[..., None].repeat(3, 2)
                       for t in range(n)])
        return {"observation.state": rng.normal(size=(n, 2)).astype(np.float32), "observation.images.cam": fr,
                "task": f"t{e % 2}"}

    return prf.write_lerobot_dataset(root, feats, [ep(e, n) for e, n in enumerate([11, 8, 13, 9, 10])], 10,
                                     progress=False, video_codec=codec)


def odd_hevc_dataset(root: Path, open_gop: bool = False) -> Path:
    """:func:`odd_dataset` (128x128: libx265 needs frames of at least its 64-pixel CTU) with its video
    transcoded to HEVC by PyAV's libx265 (closed GOPs of 4 frames with B-frames, the same pts); a codec prf has no
    encoder for, so a GOP cut mid-way is copied whole (``padded_frames``), not re-encoded. ``open_gop``:
    x265's default open GOPs of 2 frames instead (each B-frame decoded after the next GOP's keyframe, so
    a keyframe's dts lies frames before its pts; LeRobot's PyAV reader cannot read such a file)."""
    import json

    import av

    odd_dataset(root.with_name(root.name + "_src"), codec="h264", size=128)
    shutil.copytree(root.with_name(root.name + "_src"), root)
    for mp4 in (root / "videos").rglob("*.mp4"):
        tmp = mp4.with_suffix(".hevc.mp4")
        with av.open(str(mp4)) as src, av.open(str(tmp), "w") as dst:
            s_in = src.streams.video[0]
            s_out = dst.add_stream("libx265", rate=10)
            s_out.width, s_out.height, s_out.pix_fmt = s_in.width, s_in.height, "yuv420p"
            s_out.time_base = s_in.time_base
            gop = "keyint=2:min-keyint=2:open-gop=1" if open_gop else "keyint=4:min-keyint=4:open-gop=0"
            s_out.options = {"crf": "10", "preset": "ultrafast",
                             "x265-params": f"{gop}:scenecut=0:bframes=2:log-level=error"}
            for fr in src.decode(s_in):
                fr.pict_type = av.video.frame.PictureType.NONE
                dst.mux(s_out.encode(fr))
            dst.mux(s_out.encode(None))
        tmp.replace(mp4)
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"]["observation.images.cam"]["info"]["video.codec"] = "hevc"
    info_path.write_text(json.dumps(info, indent=4))
    return root


def v20_dataset(root: Path) -> Path:
    """pusht_sim_v21 as LeRobot v2.0 stored it: no ``meta/episodes_stats.jsonl``, the dataset's stats in
    ``meta/stats.json`` (here aggregated from the v2.1 file), ``codebase_version`` ``v2.0``; the same
    data and videos. ``../shared`` holds no v2.0 dataset."""
    import json

    from prf.stats import aggregate_stats, read_episode_stats, stats_to_json

    shutil.copytree(PUSHT21, root)
    per = read_episode_stats(prf.DatasetMeta(root))
    (root / "meta" / "stats.json").write_text(json.dumps(stats_to_json(aggregate_stats(per.values()))))
    (root / "meta" / "episodes_stats.jsonl").unlink()
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["codebase_version"] = "v2.0"
    info_path.write_text(json.dumps(info, indent=4))
    return root


def build_cases(tmp: Path) -> dict[str, tuple[Path, list, bool]]:
    """name -> (output root, per output episode its source, whether GOPs were re-encoded)."""
    c: dict[str, tuple[Path, list, bool]] = {}
    kw = {"progress": False}
    # delete
    for name, root, drop in [("delete_pusht_v30", PUSHT30, [3, 7]), ("delete_so101", SO101, [2]),
                             ("delete_aloha", ALOHA, [0, 5]), ("delete_pusht_v21", PUSHT21, [0, 23])]:
        prf.delete_episodes(root, tmp / name, drop, **kw)
        c[name] = (tmp / name, _src(root, [e for e in _all(root) if e not in drop]), False)
    g1_meta = prf.DatasetMeta(G1)
    prf.delete_episodes(G1, tmp / "delete_g1", [e for e in g1_meta.episodes if e not in G1_PRESENT], **kw)
    c["delete_g1"] = (tmp / "delete_g1", _src(G1, G1_PRESENT), False)
    prf.delete_episodes(ALOHA, tmp / "delete_aloha_compact", [1], compact=True, **kw)
    c["delete_aloha_compact"] = (tmp / "delete_aloha_compact", _src(ALOHA, [e for e in range(12) if e != 1]), False)
    # split
    s = prf.split_dataset(ALOHA, tmp / "split_aloha", {"train": 0.75, "val": 0.25}, seed=0, **kw)
    for part, info in s["splits"].items():
        c[f"split_aloha_{part}"] = (tmp / "split_aloha" / part, _src(ALOHA, info["episodes_from_source"]), False)
    prf.split_dataset(PUSHT21, tmp / "split_pusht_v21", {"a": [1, 4, 5], "b": [0, 2]}, **kw)
    c["split_pusht_v21_a"] = (tmp / "split_pusht_v21" / "a", _src(PUSHT21, [1, 4, 5]), False)
    prf.split_dataset(SO101, tmp / "split_so101", {"train": 0.5, "val": 0.5}, **kw)
    c["split_so101_val"] = (tmp / "split_so101" / "val", _src(SO101, [3, 4, 5]), False)
    # merge
    prf.merge_datasets([PUSHT30, PUSHT21], tmp / "merge_pusht", **kw)
    c["merge_pusht"] = (tmp / "merge_pusht", _src(PUSHT30, _all(PUSHT30)) + _src(PUSHT21, _all(PUSHT21)), False)
    prf.merge_datasets([tmp / "split_aloha" / "val", tmp / "split_aloha" / "train"], tmp / "merge_aloha", **kw)
    c["merge_aloha"] = (tmp / "merge_aloha", c["split_aloha_val"][1] + c["split_aloha_train"][1], False)
    prf.merge_datasets([SO101, tmp / "delete_so101"], tmp / "merge_so101", **kw)
    c["merge_so101"] = (tmp / "merge_so101", _src(SO101, _all(SO101)) + c["delete_so101"][1], False)
    # subset: episodes / features / cameras
    prf.subset_dataset(ALOHA, tmp / "subset_aloha", drop_features=["observation.images.angle"], episodes=[2, 3, 9],
                       **kw)
    c["subset_aloha"] = (tmp / "subset_aloha", _src(ALOHA, [2, 3, 9]), False)
    prf.subset_dataset(SO101, tmp / "subset_so101", features=["observation.state", "observation.images.wrist"], **kw)
    c["subset_so101"] = (tmp / "subset_so101", _src(SO101, _all(SO101)), False)
    prf.subset_dataset(G1, tmp / "subset_g1", episodes=[2], **kw)
    c["subset_g1"] = (tmp / "subset_g1", _src(G1, [2]), False)
    # upgrade
    prf.upgrade_dataset(PUSHT21, tmp / "upgrade_pusht", **kw)
    c["upgrade_pusht"] = (tmp / "upgrade_pusht", _src(PUSHT21, _all(PUSHT21)), False)
    prf.upgrade_dataset(G1, tmp / "upgrade_g1", episodes=G1_PRESENT, **kw)
    c["upgrade_g1"] = (tmp / "upgrade_g1", _src(G1, G1_PRESENT), False)
    v20 = v20_dataset(tmp / "pusht_v20")
    prf.upgrade_dataset(v20, tmp / "upgrade_pusht_v20", episodes=[0, 3, 4, 9], **kw)  # stats computed
    c["upgrade_pusht_v20"] = (tmp / "upgrade_pusht_v20", _src(PUSHT21, [0, 3, 4, 9]), False)
    # append (in place): pusht v30 + v2.1 episodes, aloha train + val
    shutil.copytree(PUSHT30, tmp / "append_pusht")
    prf.append_episodes(tmp / "append_pusht", PUSHT21, episodes=[0, 5], **kw)
    c["append_pusht"] = (tmp / "append_pusht", _src(PUSHT30, _all(PUSHT30)) + _src(PUSHT21, [0, 5]), False)
    shutil.copytree(tmp / "split_aloha" / "train", tmp / "append_aloha")
    prf.append_episodes(tmp / "append_aloha", tmp / "split_aloha" / "val", **kw)
    c["append_aloha"] = (tmp / "append_aloha", c["split_aloha_train"][1] + c["split_aloha_val"][1], False)
    # GOPs cut mid-way: re-encoded
    odd = odd_dataset(tmp / "odd")
    prf.delete_episodes(odd, tmp / "delete_odd", [0], **kw)
    c["delete_odd"] = (tmp / "delete_odd", _src(odd, [1, 2, 3, 4]), True)
    odd264 = odd_dataset(tmp / "odd_h264", codec="h264")
    r = prf.delete_episodes(odd264, tmp / "delete_odd_h264", [1], **kw)
    assert r["reencoded_frames"] > 0, r  # the case must splice re-encoded GOPs into the x264 stream
    c["delete_odd_h264"] = (tmp / "delete_odd_h264", _src(odd264, [0, 2, 3, 4]), True)
    # HEVC (no prf encoder): GOPs cut mid-way are copied whole, frames bit-equal
    import av

    if "libx265" in av.codecs_available:
        hevc = odd_hevc_dataset(tmp / "odd_hevc")
        r = prf.delete_episodes(hevc, tmp / "delete_odd_hevc", [0, 2], **kw)
        assert r["reencoded_frames"] == 0 and r["padded_frames"] > 0, r
        c["delete_odd_hevc"] = (tmp / "delete_odd_hevc", _src(hevc, [1, 3, 4]), False)
    return c


def sample_indices(root: Path, per_episode: int = 3) -> list[int]:
    """A few global indices per episode of ``root``: first, middle, last (and a few more)."""
    meta = prf.DatasetMeta(root)
    out: list[int] = []
    for ep in meta.episodes.values():
        n = ep.length
        picks = sorted({0, n // 2, n - 1, *([1, n - 2] if per_episode > 3 else [])})
        out += [ep.dataset_from_index + k for k in picks if 0 <= k < n]
    return out


def expected(root: Path, mapping: list, indices: list[int]) -> dict[str, np.ndarray]:
    """prf's reading of the sources at the frames that ``indices`` of the output came from, with
    ``episode_index``/``index`` as the output must have them."""
    meta = prf.DatasetMeta(root)
    eps = list(meta.episodes.values())
    starts = np.array([e.dataset_from_index for e in eps])
    opened: dict = {}
    rows = []
    for i in indices:
        k = int(np.searchsorted(starts, i, side="right")) - 1
        src_root, src_ep, sel = mapping[k]
        key = (str(src_root), tuple(sel) if sel else None)
        if key not in opened:
            opened[key] = prf.open_dataset(src_root, episodes=sel)
        ds = opened[key]
        se = ds.meta.episodes[src_ep]
        rows.append((key, se.dataset_from_index + (i - eps[k].dataset_from_index), k, i))
    out: dict[str, list] = {}
    for key, gi, k, i in rows:
        ds = opened[key]
        pos = _position(ds, gi)
        b = ds.get_batch([pos])
        for name, v in b.items():
            out.setdefault(name, []).append(np.asarray(v)[0])
        out["episode_index"][-1] = np.int64(k)
        out["index"][-1] = np.int64(i)
    return {k: np.asarray(v) for k, v in out.items()}


def _position(ds, global_index: int) -> int:
    """Position in ``ds`` (an episode selection) of the frame with global ``index``."""
    meta = ds.meta
    pos = 0
    for e in ds.episodes:
        ep = meta.episodes[int(e)]
        if ep.dataset_from_index <= global_index < ep.dataset_to_index:
            return pos + global_index - ep.dataset_from_index
        pos += ep.length
    raise AssertionError(f"index {global_index} is not in the selection")


def compare(got: dict, ref: dict, cameras: list[str], reencoded: bool, what: str) -> int:
    """Assert equality as the module docstring says; returns the largest frame |diff|."""
    worst = 0
    for key, r in ref.items():
        if key not in got:
            continue
        g = got[key]
        if key == "task":
            assert [str(x) for x in g] == [str(x) for x in r], f"{what}: task"
        elif key in cameras:
            d = np.abs(np.asarray(g).astype(np.int16) - np.asarray(r).astype(np.int16))
            worst = max(worst, int(d.max()))
            if reencoded:
                assert d.max() <= 8 and d.reshape(len(d), -1).mean(1).max() <= 0.5, f"{what}: {key}"
            else:
                assert d.max() == 0, f"{what}: {key} differs (max |diff| {d.max()}) where it was remuxed"
        elif key.endswith("_is_pad") or key == "task_index":
            continue
        else:
            g = np.asarray(g)
            assert g.shape == r.shape or g.reshape(r.shape).shape == r.shape, f"{what}: {key} {g.shape} {r.shape}"
            assert np.array_equal(g.reshape(r.shape), r.astype(g.dtype)), f"{what}: {key}"
    return worst
