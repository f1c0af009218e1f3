"""Web archives: a crawl's rotating WARC output, recovery of a WARC cut short by a crash, and ingestion of
WARC and WET files (made here with warcio) into shards."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from corpus.core.errors import CorpusError
from corpus.core.io import read_documents, read_manifest
from corpus.crawl.runner import crawl, crawl_archives
from corpus.crawl.warc import WarcWriter
from tests.crawl.faultserver import FaultServer, Reply, html

PARA = ("<p>The lighthouse keeper climbed the stairs every evening to light the lamp, and from the top he could "
        "see the fishing boats returning to the harbour before the storm reached the coast.</p>")


def records(folder: Path) -> dict[str, tuple[str, str]]:
    """WARC-Record-ID -> (file name, target URI) for every response record under `folder`."""
    found = {}
    for path in sorted(folder.glob("*.warc.gz")):
        with open(path, "rb") as handle:
            for record in ArchiveIterator(handle):
                if record.rec_type == "response":
                    found[record.rec_headers.get_header("WARC-Record-ID")] = (
                        path.name, record.rec_headers.get_header("WARC-Target-URI"))
    return found


def test_crawl_writes_rotating_warc_files_that_documents_point_into(tmp_path: Path) -> None:
    routes = {"/": Reply(body=html("Index", PARA, [f"/a/{i}.html" for i in range(8)] + ["/data.json"]).encode())}
    routes.update({f"/a/{i}.html": Reply(body=html(f"Article {i}", PARA * 3).encode()) for i in range(8)})
    routes["/data.json"] = Reply(body=b'{"x": 1}', headers={"Content-Type": "application/json"})
    with FaultServer(routes) as server:
        crawl([server.url + "/"], tmp_path / "out", max_pages=50, depth=1, fast=True, progress=False, sitemaps=False,
              warc_out=tmp_path / "warc", warc_max_bytes=2_000)
    files = sorted((tmp_path / "warc").iterdir())
    assert len(files) > 2 and all(f.name.endswith(".warc.gz") for f in files)  # rotated, none left .open
    found = records(tmp_path / "warc")
    assert any(uri.endswith("/data.json") for _, uri in found.values())  # every response, not only pages
    docs = list(read_documents(tmp_path / "out"))
    assert len(docs) == 9
    for doc in docs:
        name, uri = found[doc.metadata["warc_record_id"]]
        assert name == doc.metadata["warc_file"] and uri == doc.metadata["url"]


def test_a_warc_cut_short_by_a_crash_is_repaired_on_the_next_start(tmp_path: Path) -> None:
    writer = WarcWriter(tmp_path, max_bytes=1 << 30)
    for i in range(3):
        writer.write_response(f"http://site.test/{i}", 200, [("Content-Type", "text/html")], b"<p>x</p>" * 50)
    writer.sync()
    assert writer.path is not None
    open_file = tmp_path / f"{writer.path.name}.open"
    data = open_file.read_bytes()
    open_file.write_bytes(data[:-20])  # SIGKILL in the middle of the last record
    WarcWriter(tmp_path)  # the next crawl starts
    assert not list(tmp_path.glob("*.open"))
    assert sorted(uri for _, uri in records(tmp_path).values()) == ["http://site.test/0", "http://site.test/1"]


def write_warc(path: Path, pages: dict[str, tuple[int, str, bytes]], compress: bool = True) -> None:
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=compress)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "test"}))
        for url, (status, content_type, body) in pages.items():
            headers = StatusAndHeaders(f"{status} X", [("Content-Type", content_type)], protocol="HTTP/1.1")
            request = io.BytesIO(b"GET / HTTP/1.1\r\n\r\n")
            writer.write_record(writer.create_warc_record(url, "request", payload=request))
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(body),
                                                          http_headers=headers))


def write_wet(path: Path, texts: dict[str, str]) -> None:
    """Gzipped as one stream (as some tools write them), not per record as Common Crawl does."""
    with gzip.open(path, "wb") as raw:
        writer = WARCWriter(raw, gzip=False)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "test"}))
        for url, text in texts.items():
            record = writer.create_warc_record(url, "conversion", payload=io.BytesIO(text.encode()),
                                               warc_content_type="text/plain",
                                               warc_headers_dict={"WARC-Identified-Content-Language": "eng"})
            writer.write_record(record)


def archives(folder: Path) -> Path:
    folder.mkdir()
    page = html("Stored page", PARA * 3).encode()
    write_warc(folder / "a.warc.gz", {
        "http://one.test/a": (200, "text/html; charset=utf-8", page),
        "http://one.test/b": (200, "text/html", html("Other stored page", PARA.replace("lighthouse", "mill") * 3)
                              .encode("latin-1")),
        "http://one.test/logo.png": (200, "image/png", b"\x89PNG...."),
        "http://one.test/gone": (404, "text/html", b"<html><body>missing</body></html>"),
    })
    write_warc(folder / "b.warc", {"http://two.test/": (200, "text/html", page)}, compress=False)
    write_wet(folder / "c.warc.wet.gz", {"http://three.test/x": "Plain text that Common Crawl extracted.\nLine two.",
                                         "http://three.test/empty": ""})
    return folder


def test_from_warc_ingests_warc_and_wet_in_parallel_and_resumes(tmp_path: Path) -> None:
    folder = archives(tmp_path / "archives")
    out = tmp_path / "out"
    summary = crawl_archives([str(folder / "*.warc*")], out, workers=2, progress=False)
    docs = {d.metadata["url"]: d for d in read_documents(out / "data")}
    assert set(docs) == {"http://one.test/a", "http://one.test/b", "http://two.test/", "http://three.test/x"}
    assert "lighthouse keeper" in docs["http://one.test/a"].text
    assert docs["http://one.test/a"].metadata["title"] == "Stored page"
    assert docs["http://one.test/a"].metadata["warc_file"] == "a.warc.gz"
    assert docs["http://one.test/a"].metadata["warc_record_id"].startswith("<urn:uuid:")
    assert docs["http://three.test/x"].text.startswith("Plain text") and docs["http://three.test/x"].metadata[
        "source"] == "wet"
    assert summary["skipped"] == {"content_type/image/png": 1, "status_404": 1}
    assert summary["extraction_failures"] == {"extract_no_text": 1}
    assert summary["records"]["request"] == 5 and summary["records"]["conversion"] == 2
    assert read_manifest(out / "data")["documents"] == 4

    # A rerun skips finished files; a file whose run did not finish is read again, exactly once.
    marker = next((out / "_job" / "warc").glob("*.json"))
    shard_names = [s["name"] for s in json.loads(marker.read_text())["shards"]]
    marker.unlink()
    crawl_archives([str(folder)], out, workers=1, progress=False)
    urls = [d.metadata["url"] for d in read_documents(out / "data")]
    assert sorted(urls) == sorted(docs)
    assert all((out / "data" / name).exists() for name in shard_names)


def test_a_corrupt_archive_is_reported_and_the_others_are_read(tmp_path: Path) -> None:
    folder = archives(tmp_path / "archives")
    data = (folder / "a.warc.gz").read_bytes()
    (folder / "a.warc.gz").write_bytes(data[: len(data) // 2] + b"\x00garbage" * 50)
    summary = crawl_archives([str(folder)], tmp_path / "out", workers=1, progress=False)
    assert [Path(f["path"]).name for f in summary["files_failed"]] == ["a.warc.gz"]
    urls = {d.metadata["url"] for d in read_documents(tmp_path / "out" / "data")}
    assert {"http://two.test/", "http://three.test/x"} <= urls


def test_from_warc_with_nothing_to_read_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file"):
        crawl_archives([str(tmp_path / "nothing-*.warc.gz")], tmp_path / "out", progress=False)
