"""Extraction: charset repair, binary sniffing, the per-page time limit, metadata, and re-extraction of
stored HTML as a curate stage (crawl with --store-html or --no-extract, then curate)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from corpus.core.config import load_config
from corpus.core.document import Document
from corpus.core.executors import LocalExecutor
from corpus.core.io import read_documents
from corpus.crawl.decode import decode_html, looks_binary
from corpus.crawl.extract import ExtractionTimeout, ExtractOptions, ExtractStage, call_with_timeout, process_page
from corpus.crawl.runner import crawl
from tests.crawl.faultserver import FaultServer, Reply, html

ARTICLE = ("<p>The orchestra rehearsed the symphony for three weeks before the premiere, and the conductor "
           "insisted that every section play its part alone before the whole ensemble came together.</p>") * 3
PAGE = (f"<html><head><title>Rehearsal notes</title><meta name='author' content='Ada Lovelace'>"
        f"<meta property='og:site_name' content='Concert Hall'>"
        f"<meta name='date' content='2024-03-05'></head><body><nav><a href='/a'>Home</a> <a href='/b#x'>B</a>"
        f"</nav><article><h1>Rehearsal notes</h1>{ARTICLE}</article><footer>Contact us</footer></body></html>")


def test_charsets_are_repaired() -> None:
    text = "Le café est très bon, où les élèves étudient ça."
    assert decode_html(text.encode("latin-1")).text == text
    assert decode_html(text.encode("latin-1")).how == "detected"
    japanese = "東京は日本の首都です。今日はとてもいい天気ですね。"
    assert decode_html(japanese.encode("shift_jis")).text == japanese
    lying = decode_html(f"<meta charset='utf-8'>{text}".encode("latin-1"))
    assert text in lying.text and lying.how == "declared_wrong"
    assert decode_html(text.encode("cp1252"), "text/html; charset=windows-1252").how == "declared"
    assert decode_html(f"<meta charset='iso-8859-1'>{text}".encode()).text.endswith(text)  # valid UTF-8 wins


def test_binary_bodies_are_recognised() -> None:
    assert looks_binary(os.urandom(4000))
    assert looks_binary(b"%PDF-1.7\n...")
    assert not looks_binary(PAGE.encode())
    assert not looks_binary("東京".encode("utf-16"))  # a BOM says it is text


def test_process_page_finds_links_text_and_metadata() -> None:
    result = process_page(PAGE.encode(), "text/html", "http://hall.test/notes/", ExtractOptions())
    assert result.links == ["http://hall.test/a", "http://hall.test/b"]
    assert "conductor insisted" in (result.text or "") and "Contact us" not in (result.text or "")
    assert result.metadata["title"] == "Rehearsal notes"
    assert result.metadata["author"] == "Ada Lovelace"
    assert result.metadata["sitename"] == "Concert Hall"
    assert result.metadata["date"] == "2024-03-05"
    empty = process_page(b"<html><body><a href='/x'><img src='x.png'></a></body></html>", None, "http://h.test/",
                         ExtractOptions())
    assert empty.text is None and empty.reason == "extract_no_text" and empty.links == ["http://h.test/x"]


def test_time_limit_interrupts_a_stuck_extraction() -> None:
    def spin() -> None:
        while True:
            pass

    started = time.monotonic()
    with pytest.raises(ExtractionTimeout):
        call_with_timeout(spin, 0.2)
    assert time.monotonic() - started < 2
    assert call_with_timeout(lambda: 42, 0.2) == 42
    slow = ("<html><body>" + "<div><span>w</span> <a href='#t'>l</a></div>" * 8_000 + "</body></html>").encode()
    assert process_page(slow, None, "http://h.test/", ExtractOptions(timeout=0.3)).reason == "extract_timeout"


def test_extract_stage_reextracts_stored_html() -> None:
    stage = ExtractStage(favor="recall")
    doc = Document("d1", "", {"url": "http://hall.test/notes/", "html": PAGE})
    assert stage.keep(doc) is True
    assert "conductor insisted" in doc.text and "html" not in doc.metadata
    assert doc.metadata["title"] == "Rehearsal notes"
    assert stage.keep(Document("d2", "", {})) == (False, "extract_no_html")
    assert stage.keep(Document("d3", "", {"html": "<html><body></body></html>"})) == (False, "extract_no_text")


def test_crawl_raw_html_then_extract_in_curate(tmp_path: Path) -> None:
    routes = {"/": Reply(body=PAGE.replace("/a'", "/s/1.html'").encode())}
    routes["/s/1.html"] = Reply(body=html("Second", ARTICLE.replace("orchestra", "choir")).encode())
    with FaultServer(routes) as server:
        crawl([server.url + "/"], tmp_path / "raw", max_pages=10, depth=1, fast=True, progress=False,
              sitemaps=False, extract=False)
    raw = list(read_documents(tmp_path / "raw"))
    assert len(raw) == 2 and all(d.text == "" and d.metadata["html"].startswith("<") for d in raw)

    config = tmp_path / "extract.yaml"
    config.write_text("name: reextract\nstages:\n  - stage: extract_html\n    favor: balanced\n")
    LocalExecutor(workers=1, progress=False).run(load_config(config), tmp_path / "raw", tmp_path / "curated")
    curated = {d.metadata["url"].rsplit("/", 1)[1]: d for d in read_documents(tmp_path / "curated")}
    assert "choir" in curated["1.html"].text and "orchestra" in curated[""].text
    assert curated[""].metadata["title"] == "Rehearsal notes" and "html" not in curated[""].metadata
