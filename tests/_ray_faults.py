"""Fault injection for tests/test_ray_bulk.py: a Ray ``worker_process_setup_hook`` (run in every worker
process of a job) that makes each task's worker die once, killed with SIGKILL, mid-job.

The hook wraps prf functions inside the worker: ``prf.ingest.convert._replace_dir`` (the rename that
finishes a conversion: the worker dies with the converted files in their temporary folder) and
``prf.ingest.log_to_lerobot`` (the worker dies after writing its part, before the task returns). A
marker file per input (created with O_EXCL) makes the second attempt, Ray's retry, run normally."""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path


def _first_attempt(marker_dir: str, what: str, key: str) -> bool:
    marker = Path(marker_dir) / f"{what}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    marker.write_text(key)
    return True


def kill_once_hook(marker_dir: str, convert_out: str):
    """A setup hook for ``ray.init(runtime_env={"worker_process_setup_hook": ...})``; conversions are
    killed only when they write into ``convert_out`` (not log_to_lerobot's own temporary ones)."""

    def setup() -> None:
        import prf.ingest
        import prf.ingest.convert as convert

        real_replace = convert.replace_dir

        def replace_dir(tmp, dst):
            if Path(dst).parent == Path(convert_out) and _first_attempt(marker_dir, "convert", str(dst)):
                os.kill(os.getpid(), signal.SIGKILL)  # the converted files are left in tmp
            return real_replace(tmp, dst)

        convert.replace_dir = replace_dir
        real_to_lerobot = prf.ingest.log_to_lerobot

        def log_to_lerobot(source, root, **kw):
            out = real_to_lerobot(source, root, **kw)
            if _first_attempt(marker_dir, "lerobot", str(source)):
                os.kill(os.getpid(), signal.SIGKILL)  # the part is written; the task never returns
            return out

        prf.ingest.log_to_lerobot = log_to_lerobot

    return setup


def kill_read_once_hook(marker_dir: str):
    """A setup hook making every read task of ``prf.ray.read_dataset`` die (SIGKILL) once, after it
    yielded its first block."""

    def setup() -> None:
        import prf.ray._source as source

        real = source.read_group

        def read_group(src, episodes, *a, **kw):
            for k, block in enumerate(real(src, episodes, *a, **kw)):
                if k == 1 and _first_attempt(marker_dir, "read", repr(list(episodes))):
                    os.kill(os.getpid(), signal.SIGKILL)  # one block out, the task dies mid-way
                yield block

        source.read_group = read_group

    return setup
