"""A crawl stopped by Ctrl-C (SIGINT) or killed outright (SIGKILL) and started again ends with every page
exactly once, and never fetches again a page whose document was already written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from corpus.core.io import list_shards, read_documents, verify_manifest
from corpus.crawl.runner import crawl
from tests.crawl.faultserver import FaultServer, Reply, html

PARA = ("<p>Every morning the ferry crossed the bay with farmers, teachers and children on their way to the "
        "town on the other side, and the captain greeted each of them by name as they came aboard.</p>")
PAGES = 30
SLOW = {"CONCURRENT_REQUESTS": 2, "CONCURRENT_REQUESTS_PER_DOMAIN": 2, "CORPUS_SHARD_DOCS": 4}


def site() -> FaultServer:
    routes = {"/": Reply(body=html("Index", PARA, [f"/p/{i}.html" for i in range(PAGES)]).encode())}
    for i in range(PAGES):
        links = [f"/p/{(i + 1) % PAGES}.html", "/"]
        routes[f"/p/{i}.html"] = Reply(body=html(f"Page {i}", PARA.replace("ferry", f"ferry {i}"), links).encode(),
                                       delay=0.06)
    return FaultServer(routes)


def start_cli(url: str, out: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "corpus.cli", "crawl", url, "-o", str(out), "--fast", "--max-pages", "0",
            "--depth", "3", "--no-sitemaps"]
    for key, value in SLOW.items():
        args += ["-s", f"{key}={value}"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_shards(out: Path, count: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(list((out / "data").glob("crawl-*.parquet"))) >= count:
            return
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.05)
    raise AssertionError("the crawl published no shards in time")


def published_urls(out: Path) -> set[str]:
    return {d.metadata["url"] for d in read_documents(out / "data")}


def finish_and_check(server: FaultServer, out: Path, before: set[str]) -> None:
    """Resume, then check the output holds every page exactly once and nothing written was fetched again."""
    assert 0 < len(before) < PAGES + 1
    already = len(server.requests())
    crawl([server.url + "/"], out, max_pages=None, depth=3, fast=True, progress=False, sitemaps=False,
          settings=SLOW)
    second = server.requests()[already:]
    paths = Counter(d.metadata["url"].split("/", 3)[3] for d in read_documents(out / "data"))
    assert set(paths) == {""} | {f"p/{i}.html" for i in range(PAGES)}
    assert max(paths.values()) == 1, [p for p, n in paths.items() if n > 1]
    refetched = {server.url + path for path in second} & before
    assert not refetched
    assert verify_manifest(out / "data") == []
    assert not [p for p in (out / "data").iterdir() if ".tmp-" in p.name]  # no temp files left
    assert len(list_shards(out / "data")) > 2


def test_ctrl_c_stops_gracefully_and_the_rerun_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with site() as server:
        proc = start_cli(server.url + "/", out)
        wait_for_shards(out, 2, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err.decode()
        assert "run the same command again to resume" in " ".join(err.decode().split())
        finish_and_check(server, out, published_urls(out))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
def test_sigkill_loses_nothing_and_the_rerun_resumes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with site() as server:
        proc = start_cli(server.url + "/", out)
        wait_for_shards(out, 2, proc)
        crawler_pid = int((out / "_job" / "lock").read_text())
        os.kill(crawler_pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 1 and "killed by signal 9" in " ".join(err.decode().split())
        finish_and_check(server, out, published_urls(out))


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting for a reaper has stopped running)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux only (PR_SET_PDEATHSIG)")
def test_sigkill_of_corpus_crawl_leaves_no_crawler_behind_and_the_rerun_resumes(tmp_path: Path) -> None:
    """A scheduler, a container stop or the OOM killer SIGKILLs `corpus crawl`: its crawler child must stop too,
    so it neither fetches on nor holds the job folder's lock, and the resume ends with every page exactly once."""
    out = tmp_path / "out"
    with site() as server:
        proc = start_cli(server.url + "/", out)
        wait_for_shards(out, 2, proc)
        crawler_pid = int((out / "_job" / "lock").read_text())
        assert crawler_pid != proc.pid and _alive(crawler_pid)
        proc.kill()
        proc.wait(timeout=30)  # not communicate(): that would wait for the child too, which holds the pipe
        # At once, not after a graceful shutdown: the crawler is killed with its parent (PR_SET_PDEATHSIG).
        deadline = time.monotonic() + 0.5
        while _alive(crawler_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(crawler_pid), "the crawler outlived the corpus crawl that started it"
        proc.communicate(timeout=30)
        finish_and_check(server, out, published_urls(out))
