"""Crawls a real HTTP server on 127.0.0.1 serving a small site made here."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.demo.server import SiteServer
from corpus.errors import CorpusError
from corpus.io import read_documents, read_manifest
from crawl.runner import crawl

PARA = (
    "<p>The garden was quiet in the early morning, and the gardener walked slowly between the rows of "
    "tomatoes that had grown tall over the summer. She checked each plant for signs of blight and pulled "
    "the weeds that had appeared since the last rain.</p>"
)


def page(title: str, body: str, links: str = "") -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<nav>{links}</nav><article><h1>{title}</h1>{body}</article></body></html>")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "en").mkdir(parents=True)
    (root / "private").mkdir()
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n")
    links = "<a href='/en/a.html'>a</a> <a href='/private/secret.html'>secret</a> <a href='http://elsewhere.test/'>x</a>"
    (root / "index.html").write_text(page("Home", PARA, links))
    (root / "en" / "a.html").write_text(page("Page A", PARA * 2, "<a href='/en/b.html'>b</a>"))
    (root / "en" / "b.html").write_text(page("Page B", PARA.replace("garden", "orchard"), "<a href='/en/c.html'>c</a>"))
    (root / "en" / "c.html").write_text(page("Page C", PARA.replace("garden", "meadow")))
    (root / "private" / "secret.html").write_text(page("Secret", "<p>THIS PAGE IS DISALLOWED</p>"))
    return root


def test_crawl_follows_links_obeys_robots_and_writes_shards(site: Path, tmp_path: Path) -> None:
    with SiteServer(site) as server:
        stats = crawl([server.url], tmp_path / "out", max_pages=50, depth=5, fast=True, progress=False)
        requested = server.requests
    assert "/private/secret.html" not in requested
    assert stats["robotstxt/forbidden"] == 1
    docs = {d.metadata["url"].split("/", 3)[3]: d for d in read_documents(tmp_path / "out")}
    assert set(docs) == {"", "en/a.html", "en/b.html", "en/c.html"}
    assert "orchard" in docs["en/b.html"].text
    assert docs["en/a.html"].metadata["title"] == "Page A"
    assert docs["en/c.html"].metadata["depth"] == 3
    assert read_manifest(tmp_path / "out" / "data")["documents"] == 4


def test_depth_and_max_pages_bound_the_crawl(site: Path, tmp_path: Path) -> None:
    with SiteServer(site) as server:
        crawl([server.url], tmp_path / "d1", max_pages=50, depth=1, fast=True, progress=False)
        assert not {"/en/b.html", "/en/c.html"} & set(server.requests)
    with SiteServer(site) as server:
        crawl([server.url], tmp_path / "m2", max_pages=2, depth=5, fast=True, progress=False)
        pages = [p for p in server.requests if p not in ("/robots.txt", "/sitemap.xml")]
        assert pages == ["/", "/en/a.html"]


def test_bad_seed_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not an http"):
        crawl(["ftp://x"], tmp_path / "out")
