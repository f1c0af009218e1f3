"""A real two-node Ray cluster on 127.0.0.1 for the distributed tests, started with `ray start` and
stopped afterwards (every process it started, found by its private temp dir, is gone at the end)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:  # makes `tests.distributed.stages` importable under plain `pytest` too
    sys.path.insert(0, ROOT)


@dataclass
class Cluster:
    address: str
    env: dict[str, str]  # what a driver process needs: the auth token, PYTHONPATH for the test stages
    temp_dir: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(temp_dir: str) -> str:
    return (Path(temp_dir) / "nodes.log").read_text(errors="replace")[-2000:]


def _processes_under(temp_dir: str) -> list[int]:
    """Pids of processes whose command line names our temp dir (gcs, raylets, workers, agents)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if temp_dir.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _stop(nodes: list[subprocess.Popen], temp_dir: str) -> None:
    for node in reversed(nodes):  # `ray start --block` shuts its node down on SIGTERM
        if node.poll() is None:
            node.terminate()
    for node in nodes:
        try:
            node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
    deadline = time.time() + 10
    while _processes_under(temp_dir) and time.time() < deadline:
        time.sleep(0.2)
    for pid in _processes_under(temp_dir):  # anything that outlived its node
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _ray_with_current_auth():
    """Ray, reading the auth settings now in os.environ (it caches them when first used)."""
    import ray

    try:  # Ray >= 2.52 has token authentication
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:
        return ray
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    return ray


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    pytest.importorskip("ray", reason="the distributed extra (ray) is not installed")
    ray_bin = str(Path(sys.executable).with_name("ray"))
    # Short path: Ray's Unix socket paths live under it and must stay under ~100 characters.
    temp_dir = tempfile.mkdtemp(prefix="corpus-ray-", dir="/tmp")
    port = _free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",  # nothing joins or submits without this run's token
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
    }
    common = ["--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", f"--temp-dir={temp_dir}",
              "--object-store-memory=80000000", "--disable-usage-stats"]
    logs = open(Path(temp_dir) / "nodes.log", "ab")
    nodes = [subprocess.Popen([ray_bin, "start", "--head", f"--port={port}", "--include-dashboard=false", *common],
                              env=env, stdout=logs, stderr=logs, start_new_session=True)]
    address = f"127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_USAGE_STATS_ENABLED")}
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if nodes[0].poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"Ray head did not start: {_log_tail(temp_dir)}") from None
                time.sleep(0.2)
        nodes.append(subprocess.Popen([ray_bin, "start", f"--address={address}", *common], env=env, stdout=logs,
                                      stderr=logs, start_new_session=True))
        os.environ.update({k: env[k] for k in saved})
        ray = _ray_with_current_auth()
        ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": env["PYTHONPATH"]}},
                 logging_level="WARNING")
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            if nodes[1].poll() is not None or time.time() > deadline:
                raise RuntimeError(f"second Ray node did not join: {_log_tail(temp_dir)}")
            time.sleep(0.2)
        yield Cluster(address, {k: env[k] for k in (*saved, "PYTHONPATH")}, temp_dir)
    finally:
        if "ray" in sys.modules:
            sys.modules["ray"].shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _stop(nodes, temp_dir)
        logs.close()
        shutil.rmtree(temp_dir, ignore_errors=True)
