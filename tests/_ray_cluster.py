"""A real local Ray cluster for the tests: ``ray start --head --block`` on 127.0.0.1 with 2 CPUs, a free
port and its own temp dir, stopped (by its process id) at the end of the session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest


def ray_or_skip():
    """``ray`` (with Ray Data), or skip when it is not installed and ``CI`` is not set (in CI, where
    prf[all] installs it, a missing Ray fails)."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("Ray Data is not installed (pip install 'prf[ray]')")
    return ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    def __init__(self, num_cpus: int = 2):
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.tmp = tempfile.mkdtemp(prefix="prf-ray-", dir="/tmp")  # short: Ray's socket paths are limited
        ray_bin = Path(sys.executable).with_name("ray")
        if not ray_bin.exists():
            ray_bin = Path(shutil.which("ray") or "ray")
        self.log = open(Path(self.tmp) / "ray-start.log", "w")
        # token authentication off for this private 127.0.0.1 cluster (the driver uses the same setting)
        os.environ["RAY_AUTH_MODE"] = "disabled"
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        self.proc = subprocess.Popen(
            [str(ray_bin), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={self.port}",
             f"--num-cpus={num_cpus}", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
             f"--ray-client-server-port={_free_port()}",
             f"--temp-dir={self.tmp}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.ray_bin, self.env, self.nodes = ray_bin, env, []

    def add_node(self, num_cpus: int = 1, resources: dict | None = None) -> None:
        """A second (third...) node joining the head: ``ray start --address=HEAD --block``, its own
        raylet and object store on this machine, as a worker machine's would be."""
        import json

        self.nodes.append(subprocess.Popen(
            [str(self.ray_bin), "start", f"--address={self.address}", "--block", "--node-ip-address=127.0.0.1",
             f"--num-cpus={num_cpus}", "--num-gpus=0", "--disable-usage-stats",
             f"--resources={json.dumps(resources or {})}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True))

    def wait_for_nodes(self, n: int, timeout_s: float = 90) -> None:
        """Until ``n`` nodes are alive (this process connected)."""
        import ray

        deadline = time.monotonic() + timeout_s
        while sum(x["Alive"] for x in ray.nodes()) < n:
            dead = [p.returncode for p in self.nodes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"{n} Ray nodes not up (exited: {dead}): "
                                   f"{(Path(self.tmp) / 'ray-start.log').read_text()[-2000:]}")
            time.sleep(1)

    def connect(self, **kw):
        import ray

        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ray start exited {self.proc.returncode}: "
                                   f"{(Path(self.tmp) / 'ray-start.log').read_text()[-2000:]}")
            try:
                ray.init(address=self.address, log_to_driver=False, **kw)
                return
            except Exception:  # noqa: BLE001 - the head is not up yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def stop(self) -> None:
        import ray

        ray.shutdown()
        for p in self.nodes:  # worker nodes first, then the head
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, 9)
            except ProcessLookupError:
                pass
            p.wait(10)
        self.proc.terminate()  # ray start --block stops the processes it started
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, 9)  # what is left of its own process group (start_new_session)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


_SHARED: LocalCluster | None = None


def shared_cluster(config):
    """One cluster for every Ray test module of the session, stopped when pytest ends (``config``:
    pytest's config, whose cleanup stops it); a generator for a module fixture: this process is
    connected during the module only (Ray's driver threads do not outlive it)."""
    import ray

    global _SHARED
    if _SHARED is not None and not ray.is_initialized():
        _SHARED.connect()
    if _SHARED is None:
        ray_or_skip()
        _SHARED = LocalCluster(num_cpus=2)
        try:
            _SHARED.connect()
        except BaseException:
            _SHARED.stop()
            _SHARED = None
            raise
        config.add_cleanup(_SHARED.stop)
    yield _SHARED
    ray.shutdown()
