"""Web archives: rotating WARC output for crawls, and ingestion of WARC and WET files (Common Crawl's).

Writing: every fetched response becomes one gzip-member `response` record in `<prefix>-<time>-<pid>-<n>.warc.gz`.
The file being written is named `.warc.gz.open` and renamed when it rotates or the crawl closes; a file left
`.open` by a killed crawl is cut back to its last complete record and renamed when the next crawl starts.

Reading: `iter_archive` streams records of one file (gzip or not; warcio); HTML `response` records are
extracted like crawled pages, WET `conversion` records are already plain text.
"""

from __future__ import annotations

import hashlib
import http
import io
import os
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corpus.core.document import Document, stable_id
from corpus.crawl import __version__
from corpus.crawl.extract import ExtractOptions, process_page
from corpus.crawl.urls import canonicalize, is_html, media_type

SKIP_HTTP_HEADERS = {"content-encoding", "transfer-encoding", "content-length"}


def recover_open_file(path: Path) -> Path:
    """Cut an interrupted `.open` WARC back to its last complete gzip member and give it its final name."""
    data = path.read_bytes()
    good = pos = 0
    while pos < len(data):
        inflater = zlib.decompressobj(31)
        try:
            inflater.decompress(data[pos:])
        except zlib.error:
            break
        if not inflater.eof:
            break  # a member cut short by the crash
        pos = len(data) - len(inflater.unused_data)
        good = pos
    with open(path, "r+b") as handle:
        handle.truncate(good)
    final = path.with_name(path.name.removesuffix(".open"))
    if good:
        os.replace(path, final)
    else:
        path.unlink()
    return final


def gzip_intact(path: Path) -> bool:
    """True when a gzip file is a chain of complete members (warcio stops quietly at a truncated one)."""
    inflater = zlib.decompressobj(31)
    inside = False
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            data = block
            while data:
                try:
                    inflater.decompress(data, 1 << 22)
                except zlib.error:
                    return False
                inside = True
                if inflater.eof:
                    data = inflater.unused_data
                    inflater = zlib.decompressobj(31)
                    inside = False
                else:
                    data = inflater.unconsumed_tail
    return not inside


class WarcWriter:
    """Appends response records to rotating gzipped WARC files under `folder`."""

    def __init__(self, folder: str | os.PathLike, prefix: str = "corpus", max_bytes: int = 1 << 30) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.serial = 0
        self.handle: io.BufferedWriter | None = None
        self.path: Path | None = None
        self.files: list[str] = []
        for leftover in sorted(self.folder.glob("*.warc.gz.open")):
            recover_open_file(leftover)

    def _open(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        name = f"{self.prefix}-{stamp}-{os.getpid()}-{self.serial:05d}.warc.gz"
        self.serial += 1
        self.path = self.folder / name
        self.handle = open(self.folder / f"{name}.open", "wb")
        from warcio.warcwriter import WARCWriter

        self.writer = WARCWriter(self.handle, gzip=True)
        info = self.writer.create_warcinfo_record(name, {"software": f"corpus-crawler/{__version__}",
                                                         "format": "WARC File Format 1.1"})
        self.writer.write_record(info)

    def write_response(self, url: str, status: int, headers: list[tuple[str, str]], body: bytes) -> tuple[str, str]:
        """Write one response; returns (file name, WARC-Record-ID)."""
        from warcio.statusandheaders import StatusAndHeaders

        if self.handle is None:
            self._open()
        assert self.handle is not None and self.path is not None
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        kept = [(k, v) for k, v in headers if k.lower() not in SKIP_HTTP_HEADERS]
        kept.append(("Content-Length", str(len(body))))  # the body is stored decoded
        record = self.writer.create_warc_record(
            url, "response", payload=io.BytesIO(body),
            http_headers=StatusAndHeaders(f"{status} {phrase}", kept, protocol="HTTP/1.1"),
        )
        self.writer.write_record(record)
        name = self.path.name
        if self.handle.tell() >= self.max_bytes:
            self._finish()
        return name, record.rec_headers.get_header("WARC-Record-ID")

    def _finish(self) -> None:
        if self.handle is None or self.path is None:
            return
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.folder / f"{self.path.name}.open", self.path)
        self.files.append(self.path.name)
        self.handle = None

    def sync(self) -> None:
        if self.handle is not None:
            self.handle.flush()
            os.fsync(self.handle.fileno())

    def close(self) -> None:
        self._finish()


class WarcMiddleware:
    """Downloader middleware: writes every response it sees (gzip already decoded) to the crawl's WARC files
    and tells the spider where (`warc_file`, `warc_record_id` in the request meta)."""

    def __init__(self, crawler: Any, folder: str, max_bytes: int) -> None:
        self.crawler = crawler
        self.writer = WarcWriter(folder, max_bytes=max_bytes)

    @classmethod
    def from_crawler(cls, crawler: Any) -> WarcMiddleware:
        from scrapy import signals
        from scrapy.exceptions import NotConfigured

        folder = crawler.settings.get("CORPUS_WARC_DIR")
        if not folder:
            raise NotConfigured
        middleware = cls(crawler, folder, crawler.settings.getint("CORPUS_WARC_MAX_BYTES", 1 << 30))
        crawler.signals.connect(middleware.opened, signal=signals.spider_opened)
        crawler.signals.connect(middleware.closed, signal=signals.spider_closed)
        return middleware

    def opened(self, spider: Any) -> None:
        state = getattr(spider, "state", None)
        if state is not None:
            state.sync_hooks.append(self.writer.sync)

    def closed(self, spider: Any) -> None:
        self.writer.close()

    def process_response(self, request: Any, response: Any, spider: Any = None) -> Any:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, values in response.headers.items()
                   for v in values]
        name, record_id = self.writer.write_response(response.url, response.status, headers, response.body)
        request.meta["warc_file"] = name
        request.meta["warc_record_id"] = record_id
        self.crawler.stats.inc_value("corpus/warc/records")
        return response


# --- reading archives ---------------------------------------------------------------------------------


def archive_key(path: Path) -> str:
    """A short stable name for an input file, used to name its shards and its completion marker."""
    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]


def _records(path: Path) -> Iterator[Any]:
    """WARC records of a file: plain, gzipped per record (the standard), or gzipped as one stream (which
    warcio refuses; such files are read again through gzip, skipping the records already seen)."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.exceptions import ArchiveLoadFailed

    done = 0
    try:
        with open(path, "rb") as handle:
            for record in ArchiveIterator(handle, arc2warc=True):
                done += 1
                yield record
        return
    except ArchiveLoadFailed as err:
        if "non-chunked gzip" not in str(err):
            raise
    import gzip

    with gzip.open(path, "rb") as handle:
        for number, record in enumerate(ArchiveIterator(handle, arc2warc=True)):
            if number >= done:
                yield record


def iter_archive(path: Path, options: ExtractOptions, max_bytes: int, counts: Counter[str]) -> Iterator[Document]:
    """Documents from one WARC/WET file, streaming; every record not turned into a document is counted."""
    for record in _records(path):
        kind = record.rec_type
        counts[f"records/{kind}"] += 1
        url = record.rec_headers.get_header("WARC-Target-URI")
        if kind not in ("response", "conversion") or not url:
            continue
        base = {
            "url": url,
            "domain": (url.split("/")[2] if "://" in url else None),
            "fetched_at": record.rec_headers.get_header("WARC-Date"),
            "warc_file": path.name,
            "warc_record_id": record.rec_headers.get_header("WARC-Record-ID"),
        }
        body = record.content_stream().read(max_bytes + 1)
        if len(body) > max_bytes:
            counts["skipped/too_large"] += 1
            continue
        if kind == "conversion":  # WET: the text Common Crawl already extracted
            text = body.decode("utf-8", "replace").strip()
            if not text:
                counts["extract_failed/extract_no_text"] += 1
                continue
            meta = {**base, "source": "wet"}
            language = record.rec_headers.get_header("WARC-Identified-Content-Language")
            if language:
                meta["language_hint"] = language
            yield Document(stable_id(url=url), text, meta)
            continue
        if record.http_headers is None:
            counts["skipped/no_http_headers"] += 1
            continue
        status = int(record.http_headers.get_statuscode() or 0)
        content_type = record.http_headers.get_header("Content-Type")
        if status != 200:
            counts[f"skipped/status_{status}"] += 1
            continue
        if not is_html(content_type):
            counts[f"skipped/content_type/{media_type(content_type)}"] += 1
            continue
        result = process_page(body, content_type, url, options, want_links=False)
        counts["extract_cpu_seconds"] += result.seconds  # type: ignore[assignment]
        if result.charset and result.charset != "utf8":
            counts[f"charset/{result.charset}"] += 1
        if result.reason == "binary_content":
            counts["skipped/binary_content"] += 1
            continue
        if result.text is None:
            counts[f"extract_failed/{result.reason}"] += 1
            continue
        meta = {**base, "url": canonicalize(url), "status": status, "source": "warc",
                "content_type": media_type(content_type), "encoding": result.encoding, **result.metadata}
        if result.html is not None:
            meta["html"] = result.html
        yield Document(stable_id(url=meta["url"]), result.text, meta)


def ingest_file(path: str, data_dir: str, fmt: str, options: ExtractOptions, max_bytes: int,
                shard_docs: int) -> dict[str, Any]:
    """Turn one archive into shards `warc-<key>-<n>` (run in a worker process); returns counts and shards."""
    from corpus.core.io import FORMATS, write_shard

    source = Path(path)
    key = archive_key(source)
    counts: Counter[str] = Counter()
    shards: list[dict[str, Any]] = []
    seen: set[str] = set()
    buffer: list[Document] = []
    started = time.process_time()

    def publish() -> None:
        if buffer:
            info = write_shard(Path(data_dir) / f"warc-{key}-{len(shards):04d}{FORMATS[fmt]}", buffer)
            shards.append({"name": info.name, "documents": info.documents, "sha256": info.sha256,
                           "bytes": info.bytes})
            buffer.clear()

    error = None
    try:
        for doc in iter_archive(source, options, max_bytes, counts):
            if doc.id in seen:
                counts["duplicates/document"] += 1
                continue
            seen.add(doc.id)
            buffer.append(doc)
            counts["documents"] += 1
            if len(buffer) >= shard_docs:
                publish()
    except Exception as exc:  # a truncated or corrupt archive: keep what was read, report the file
        error = f"{type(exc).__name__}: {exc}"
    with open(source, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    if error is None and gzipped and not gzip_intact(source):
        error = "truncated or corrupt gzip data (the records before the damage were kept)"
    if error is not None:
        counts["errors/unreadable_archive"] += 1
    publish()
    counts["cpu_seconds"] += time.process_time() - started  # type: ignore[assignment]
    return {"path": str(source), "key": key, "counts": dict(counts), "shards": shards, "error": error}
