"""Issue 11 item 6: parquet files prf writes carry page checksums, and prf's reader verifies them, so a
flipped byte in a data page is a typed error naming the file instead of silently changed values.
Files without checksums (LeRobot's own writer, third-party datasets) cannot be checked (documented in
``prf.format.read_parquet``)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

import prf
from prf.errors import DataFileError
from prf.writer import write_lerobot_dataset
from conftest import dataset_path


def _rewrite_rebot(root):
    """Re-write the real rebot_novideo_v30 recording with prf's writer (state/action of its episode)."""
    src = prf.open_dataset(dataset_path("rebot_novideo_v30"))
    b = src.get_batch(np.arange(len(src)))
    feats = {k: {"dtype": "float32", "shape": list(b[k].shape[1:])} for k in ("observation.state", "action")}
    ep = {k: b[k] for k in feats} | {"task": "rebot"}
    return write_lerobot_dataset(root, features=feats, episodes=[ep], fps=src.meta.fps, progress=False), b


def _silent_flip(path, column):
    """Flip one byte inside ``column``'s pages such that a reader that does not verify checksums still
    returns a table, with changed values (the silent corruption this guards against)."""
    import pyarrow as pa

    md = pq.ParquetFile(path).metadata
    col_idx = pq.read_schema(path).names.index(column)
    leaf = [i for i in range(md.num_columns)
            if (md.row_group(0).column(i).path_in_schema + ".").startswith(column + ".")][0]
    cc = md.row_group(0).column(leaf)
    start = cc.dictionary_page_offset if cc.has_dictionary_page else cc.data_page_offset
    end = start + cc.total_compressed_size
    data = path.read_bytes()
    original = pq.read_table(pa.BufferReader(data)).column(col_idx).to_pylist()
    for off in range(end - 1, start, -1):  # from the chunk's end backwards: value bytes before headers
        trial = bytearray(data)
        trial[off] ^= 0x5A
        try:
            got = pq.read_table(pa.BufferReader(bytes(trial))).column(col_idx).to_pylist()
        except Exception:
            continue
        if got != original:
            path.write_bytes(bytes(trial))
            return original
    raise AssertionError(f"no silent flip found in {path} column {column}")


def test_prf_written_data_has_checksums_and_a_flip_is_an_error(tmp_path):
    root, _ = _rewrite_rebot(tmp_path / "ds")
    data_file = next((root / "data").rglob("*.parquet"))
    assert prf.open_dataset(root)[0]["observation.state"].shape == (7,)
    _silent_flip(data_file, "observation.state")
    # without verification the values change silently (what prf did before) ...
    with pytest.raises(OSError, match="checksum"):
        pq.read_table(data_file, page_checksum_verification=True)
    # ... prf's reader says which file is corrupt
    with pytest.raises(DataFileError, match=str(data_file).replace(".", r"\.")) as ei:
        prf.open_dataset(root)
    assert "checksum" in str(ei.value).lower()


def test_prf_written_metadata_tables_have_checksums(tmp_path):
    root, _ = _rewrite_rebot(tmp_path / "ds")
    ep_file = next((root / "meta" / "episodes").rglob("*.parquet"))
    _silent_flip(ep_file, "dataset_to_index")  # a column read at open
    with pytest.raises(DataFileError, match="checksum"):
        prf.open_dataset(root)


def test_log_to_lerobot_output_has_checksums(tmp_path):
    """The ingest path (log -> LeRobot) writes through the same writer: its data pages are checked too."""
    src = dataset_path("rebot_novideo_v30")
    frame = prf.RoboticsDataFrame({"/joints": _joint_table()})
    root = prf.log_to_lerobot(frame, tmp_path / "from_log", fps=10, state=["/joints"], progress=False)
    data_file = next((root / "data").rglob("*.parquet"))
    _silent_flip(data_file, "observation.state")
    with pytest.raises(DataFileError, match="checksum"):
        prf.open_dataset(root)
    assert src.is_dir()


def _joint_table():
    import pyarrow as pa

    t = np.arange(200, dtype=np.int64) * 50_000_000 + 1_700_000_000_000_000_000
    b = prf.open_dataset(dataset_path("rebot_novideo_v30")).get_batch(np.arange(200))
    cols = {"log_time": pa.array(t), "publish_time": pa.array(t)}
    for j in range(b["observation.state"].shape[1]):
        cols[f"q{j}"] = pa.array(b["observation.state"][:, j].astype(np.float64))
    return pa.table(cols)


def test_third_party_files_without_checksums_still_read():
    """LeRobot writes no page checksums: those files read as before (they cannot be checked)."""
    ds = prf.open_dataset(dataset_path("pusht_sim_v30"))
    assert len(ds) == 3850
