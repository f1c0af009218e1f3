"""One crawl of a local server that serves every fault a real web serves: each is counted under its own
reason, none stops the crawl, no good page is lost."""

from __future__ import annotations

import json
import os
from pathlib import Path

from corpus.core.io import read_documents
from corpus.crawl.runner import crawl
from tests.crawl.faultserver import FaultServer, Reply, gzip_bomb, html

PARA = ("<p>The river ran quickly past the old mill, where the miller and his daughter worked from dawn until "
        "dusk grinding the wheat that farmers brought from the surrounding valleys every autumn.</p>")
FR = "<p>Le café est très bon à Paris, où les élèves étudient ça tous les matins avant les cours.</p>" * 3
JA = "<p>東京は日本の首都です。今日はとてもいい天気ですね。私は毎朝コーヒーを飲みながら新聞を読みます。</p>" * 3
HTML = {"Content-Type": "text/html"}  # no charset: the crawler must find it


def page(title: str, links: list[str] | None = None) -> bytes:
    return html(title, PARA * 3, links).encode()


def calendar(path: str) -> Reply:
    month = int(path.rstrip("/").rsplit("/", 1)[1])
    return Reply(body=page(f"Calendar {month}", [f"/calendar/{month + 1}"]))


FAULTS = {
    "/missing.html": Reply(404, b"<html><body>gone</body></html>"),
    "/error.html": Reply(500, b"<html><body>oops</body></html>"),
    "/flaky.html": Reply(503, b"busy", times=1, then=Reply(body=page("Flaky but fine"))),
    "/hang.html": Reply(hang=True),
    "/redirect/1": Reply(301, headers={"Location": "/redirect/2"}),
    "/redirect/2": Reply(302, headers={"Location": "/redirect/final.html"}),
    "/redirect/final.html": Reply(body=page("After two redirects")),
    "/loop/a": Reply(302, headers={"Location": "/loop/b"}),
    "/loop/b": Reply(302, headers={"Location": "/loop/a"}),
    "/calendar/1": None,  # served by the prefix route below
    "/huge.html": Reply(body=b"<html><body>" + b"<p>big</p>" * 120_000 + b"</body></html>"),
    "/huge-stream.html": Reply(body=b"<html><body>" + b"<p>big</p>" * 120_000 + b"</body></html>", stream=True),
    "/bomb.html": Reply(body=gzip_bomb(20_000_000), headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}),
    "/binary.html": Reply(body=os.urandom(30_000), headers=HTML),
    "/data.json": Reply(body=b'{"a": 1}', headers={"Content-Type": "application/json"}),
    "/latin1.html": Reply(body=f"<html><body><article>{FR}</article></body></html>".encode("latin-1"), headers=HTML),
    "/sjis.html": Reply(body=f"<html><body><article>{JA}</article></body></html>".encode("shift_jis"), headers=HTML),
    "/liar.html": Reply(body=f"<html><head><meta charset='utf-8'></head><body><article>{FR}</article></body></html>"
                        .encode("latin-1"), headers=HTML),
    "/malformed.html": Reply(body=("<html><body><div><p>Unclosed paragraph about the harbour <b>bold <i>nested"
                                   "<table><tr><td>cell</div></span>" + PARA * 3 + "<<<>>> </body></p>").encode()),
    # Many small blocks: trafilatura needs seconds for this page, past the 1 s extraction limit.
    "/slow-extract.html": Reply(body=("<html><body>" + "<div><span>w</span> <a href='#top'>l</a></div>" * 8_000
                                      + "</body></html>").encode()),
}
ENTRY = ["/missing.html", "/error.html", "/flaky.html", "/hang.html", "/redirect/1", "/loop/a", "/calendar/1",
         "/huge.html", "/huge-stream.html", "/bomb.html", "/binary.html", "/data.json", "/latin1.html", "/sjis.html",
         "/liar.html", "/malformed.html", "/slow-extract.html"]
GOOD = ["/good/1.html", "/good/2.html", "/good/3.html"]


def test_every_fault_is_counted_and_none_stops_the_crawl(tmp_path: Path) -> None:
    routes = {path: reply for path, reply in FAULTS.items() if reply is not None}
    routes["/"] = Reply(body=page("Index", [*ENTRY, *GOOD]))
    routes.update({p: Reply(body=page(f"Good {p}")) for p in GOOD})
    with FaultServer(routes, prefixes={"/calendar/": calendar}) as server:
        crawl([server.url + "/"], tmp_path / "out", max_pages=200, depth=3, fast=True, progress=False,
              sitemaps=False, extract_timeout=1.0, extract_workers=1,
              settings={"DOWNLOAD_TIMEOUT": 1, "RETRY_TIMES": 1, "DOWNLOAD_MAXSIZE": 400_000})
        requested = server.requests()
    summary = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert summary["finish_reason"] == "finished"
    errors = summary["errors"]
    assert errors["http_404"] == 1
    assert errors["http_500"] == 1  # after its retry
    assert errors["timeout"] == 1
    assert errors["redirect_loop"] == 1
    assert errors["too_large"] == 2  # with and without Content-Length
    assert errors["decompressed_too_large"] == 1
    assert summary["skipped"]["binary_content"] == 1
    assert summary["skipped"]["content_type/application/json"] == 1
    assert summary["skipped"]["depth_limit"] >= 1
    assert summary["extraction_failures"]["extract_timeout"] == 1
    assert summary["charset_repairs"]["detected"] == 2  # latin-1 and Shift-JIS without any declaration
    assert summary["charset_repairs"]["declared_wrong"] == 1
    assert summary["retries"] >= 3  # 500 and 503 and the hang
    assert summary["responses"]["by_status"]["500"] == 2 and summary["responses"]["by_status"]["503"] == 1

    # Retries: the 500 page was tried twice, the flaky page succeeded the second time.
    assert requested.count("/error.html") == 2
    assert requested.count("/flaky.html") == 2
    # The calendar trap stopped at --depth: /calendar/1 is depth 1, /calendar/3 depth 3.
    assert "/calendar/3" in requested and "/calendar/4" not in requested

    docs = {d.metadata["url"].split("/", 3)[3]: d for d in read_documents(tmp_path / "out")}
    assert {"", "good/1.html", "good/2.html", "good/3.html", "flaky.html", "redirect/final.html",
            "malformed.html", "latin1.html", "sjis.html", "liar.html"} <= set(docs)
    assert not {"missing.html", "error.html", "binary.html", "huge.html", "bomb.html", "data.json"} & set(docs)
    assert "très bon" in docs["latin1.html"].text
    assert "東京は日本の首都です" in docs["sjis.html"].text
    assert "élèves" in docs["liar.html"].text
    assert "harbour" in docs["malformed.html"].text
    final = docs["redirect/final.html"].metadata
    assert final["requested_url"].endswith("/redirect/1")
    assert final["title"] == "After two redirects"
