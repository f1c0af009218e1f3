"""Crawls a real HTTP server on 127.0.0.1 serving a small site made here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.core.errors import CorpusError
from corpus.core.io import read_documents, read_manifest
from corpus.crawl.runner import crawl, read_seeds
from corpus.crawl.settings import build_settings
from corpus.demo.server import SiteServer

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


def _xml(urls: list[str], index: bool = False) -> bytes:
    tag, item = ("sitemapindex", "sitemap") if index else ("urlset", "url")
    entries = "".join(f"<{item}><loc>{u}</loc></{item}>" for u in urls)
    return f'<?xml version="1.0"?><{tag} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</{tag}>'.encode()


def test_sitemaps_from_robots_nested_and_gzipped_find_unlinked_pages(tmp_path: Path) -> None:
    import gzip

    from tests.crawl.faultserver import FaultServer, Reply, html

    with FaultServer() as server:
        base = server.url
        xml = {"Content-Type": "application/xml"}
        server.routes.update({
            "/robots.txt": Reply(body=f"User-agent: *\nDisallow: /private/\nSitemap: {base}/maps/index.xml\n".encode(),
                                 headers={"Content-Type": "text/plain"}),
            "/": Reply(body=page("Home", PARA).encode()),
            "/maps/index.xml": Reply(body=_xml([f"{base}/maps/a.xml", f"{base}/maps/b.xml.gz"], index=True),
                                     headers=xml),
            "/maps/a.xml": Reply(body=_xml([f"{base}/orphan/1.html", f"{base}/private/x.html"]), headers=xml),
            "/maps/b.xml.gz": Reply(body=gzip.compress(_xml([f"{base}/orphan/2.html?utm_source=map"])),
                                    headers={"Content-Type": "application/octet-stream"}),
        })
        for n in (1, 2):
            server.routes[f"/orphan/{n}.html"] = Reply(body=html(f"Orphan {n}", PARA * 2).encode())
        crawl([base + "/"], tmp_path / "out", max_pages=50, depth=2, fast=True, progress=False, extract_workers=1,
              store_html=True)
        requested = server.requests(exclude=())
    docs = {d.metadata["url"].split("/", 3)[3]: d for d in read_documents(tmp_path / "out")}
    assert set(docs) == {"", "orphan/1.html", "orphan/2.html"}  # tracking parameter dropped from the URL
    assert docs["orphan/2.html"].metadata["depth"] == 0
    assert "Orphan 2" in docs["orphan/2.html"].metadata["html"] and docs["orphan/2.html"].text  # --store-html
    assert "/private/x.html" not in requested  # sitemap entries obey robots.txt too
    assert "/sitemap.xml" not in requested  # robots.txt named the sitemap, no guessing needed
    summary = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert summary["sitemaps"]["sitemapindex"] == 1 and summary["sitemaps"]["urlset"] == 2


def test_seeds_file_allow_deny_and_canonical_urls(tmp_path: Path) -> None:
    from tests.crawl.faultserver import FaultServer, Reply, html

    links = ["/docs/p?b=2&a=1", "/docs/p?a=1&b=2#intro", "/docs/p?a=1&b=2&utm_campaign=x", "/docs/draft-1",
             "/blog/post", "/docs/q", "/docs/file.pdf"]
    routes = {"/docs/": Reply(body=html("Docs", PARA, links).encode()),
              "/blog/": Reply(body=page("Blog", PARA).encode())}
    for path in ("/docs/p?a=1&b=2", "/docs/q", "/docs/draft-1", "/blog/post"):
        routes[path] = Reply(body=html(path, PARA * 2).encode())
    with FaultServer(routes) as server:
        seeds = tmp_path / "seeds.txt"
        seeds.write_text(f"# two sections\n{server.url}/docs/\n\n{server.url}/blog/\n")
        crawl(read_seeds(seeds), tmp_path / "out", max_pages=50, depth=2, fast=True, progress=False,
              sitemaps=False, allow=[r"/docs/"], deny=[r"draft"])
        requested = server.requests()
    assert requested.count("/docs/p?a=1&b=2") == 1  # three spellings of one page, fetched once
    assert "/docs/draft-1" not in requested  # denied
    assert "/blog/" in requested  # a seed is always fetched; --allow/--deny filter what is discovered
    assert "/blog/post" not in requested  # not allowed by any --allow pattern
    assert not [r for r in requested if r.endswith(".pdf")]  # not a page
    summary = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert summary["skipped"]["denied"] == 1 and summary["skipped"]["not_allowed"] == 1
    assert summary["duplicates_skipped"]["links_already_seen"] >= 2


def test_seeds_file_errors_name_the_line(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("http://ok.test/\nnot a url\n")
    with pytest.raises(CorpusError, match=r"seeds.txt:2: 'not a url': not an http"):
        read_seeds(seeds)
    with pytest.raises(CorpusError, match="does not exist"):
        read_seeds(tmp_path / "missing.txt")
    with pytest.raises(CorpusError, match="--deny '\\(': not a valid regular expression"):
        crawl(["http://ok.test/"], tmp_path / "out", deny=["("])


def test_polite_defaults_and_fast_profile() -> None:
    polite = build_settings(contact="https://example.org/about-our-crawler")
    assert polite["ROBOTSTXT_OBEY"] and polite["AUTOTHROTTLE_ENABLED"]
    assert polite["DOWNLOAD_DELAY"] >= 1 and polite["CONCURRENT_REQUESTS_PER_DOMAIN"] <= 2
    assert polite["USER_AGENT"].startswith("corpus-crawler/") and "https://example.org/about-our-crawler" in polite[
        "USER_AGENT"]
    fast = build_settings(fast=True)
    assert fast["DOWNLOAD_DELAY"] == 0 and not fast["AUTOTHROTTLE_ENABLED"] and fast["ROBOTSTXT_OBEY"]
    assert build_settings(fast=True, DOWNLOAD_DELAY=3)["DOWNLOAD_DELAY"] == 3  # explicit settings win


def test_ignoring_robots_warns(site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with SiteServer(site) as server:
        crawl([server.url], tmp_path / "out", max_pages=10, depth=1, fast=True, progress=False, obey_robots=False,
              sitemaps=False)
        assert "/private/secret.html" in server.requests
    assert "robots.txt is being ignored" in capsys.readouterr().err
