"""Two crawler processes share one frontier through a real redis-server on 127.0.0.1: together they fetch
every page of the site, and no page twice."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from corpus.core.io import read_documents
from corpus.crawl.runner import crawl
from tests.crawl.faultserver import FaultServer, Reply, html

PARA = ("<p>The night train left the capital at ten and reached the mountains before dawn, where the passengers "
        "woke to snow on the pine trees and the smell of coffee from the dining car.</p>")
PAGES = 36


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=10)


def test_two_crawlers_fetch_every_page_exactly_once(redis_url: str, tmp_path: Path) -> None:
    routes = {"/": Reply(body=html("Index", PARA, [f"/t/{i}.html" for i in range(0, PAGES, 6)]).encode())}
    for i in range(PAGES):  # a mesh: each page links onward, so the frontier grows while both crawl
        links = [f"/t/{(i + k) % PAGES}.html" for k in (1, 2, 7)]
        routes[f"/t/{i}.html"] = Reply(body=html(f"Train {i}", PARA.replace("ten", f"ten past {i}"), links).encode(),
                                       delay=0.05)
    with FaultServer(routes) as server:
        def worker(name: str) -> dict:
            return crawl([server.url + "/"], tmp_path / name, max_pages=None, depth=6, fast=True, progress=False,
                         sitemaps=False, redis_url=redis_url, redis_key="trains",
                         settings={"CONCURRENT_REQUESTS": 2, "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
                                   "CORPUS_IDLE_CLOSE": 1.5})

        with ThreadPoolExecutor(2) as pool:
            stats = list(pool.map(worker, ["w1", "w2"]))
        fetched = Counter(server.requests())
    expected = {"/"} | {f"/t/{i}.html" for i in range(PAGES)}
    assert set(fetched) == expected
    assert max(fetched.values()) == 1, [p for p, n in fetched.items() if n > 1]
    assert all(s.get("corpus/pages", 0) > 0 for s in stats)  # both processes did part of the work
    outputs = [{d.metadata["url"].split("/", 3)[3] for d in read_documents(tmp_path / name)} for name in ("w1", "w2")]
    assert not outputs[0] & outputs[1]
    assert {"/" + p for p in outputs[0] | outputs[1]} == expected
