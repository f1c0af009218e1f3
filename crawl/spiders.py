"""The site spider: seeds and sitemaps, in-scope link following, extraction, one document per page.

Depth is the spider's own (`corpus_depth` in the request meta): seeds and pages listed in sitemaps are
depth 0, so Scrapy's DepthMiddleware (which would count robots.txt and sitemap hops) is not used for it.
`--max-pages` is a budget of page requests (robots.txt and sitemaps are not pages).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider, IgnoreRequest
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap, sitemap_urls_from_robots

from corpus.core.document import stable_id
from corpus.crawl.extract import ExtractOptions, ExtractorPool
from corpus.crawl.state import CrawlState
from corpus.crawl.urls import UrlRules, canonicalize, is_html, media_type

MAX_SITEMAP_NESTING = 5
MAX_URL_LENGTH = 2083  # Scrapy's URLLENGTH_LIMIT default (the old Internet Explorer limit)
TRANSIENT = ("timeout", "connection_refused", "connection_lost", "dns", "data_loss")


def classify_failure(failure: Any) -> str:
    """A short stats key for why a request produced no response for the spider."""
    from scrapy import exceptions as sx
    from twisted.internet import error as tx
    from twisted.internet.defer import CancelledError
    from twisted.web._newclient import ResponseFailed

    exc = failure.value
    message = str(exc)
    if isinstance(exc, HttpError):
        return f"http_{exc.response.status}"
    if isinstance(exc, IgnoreRequest):
        for needle, reason in (("robots.txt", "robots_blocked"), ("redirect loop", "redirect_loop"),
                               ("max redirections", "redirect_max"), ("decompression", "decompressed_too_large"),
                               ("offsite", "offsite"), ("already done", "already_done")):
            if needle in message:
                return reason
        return "ignored"
    timeouts = (tx.TimeoutError, tx.TCPTimedOutError, TimeoutError, getattr(sx, "DownloadTimeoutError", TimeoutError))
    if isinstance(exc, timeouts):
        return "timeout"
    if isinstance(exc, getattr(sx, "DownloadCancelledError", CancelledError) | CancelledError):
        # Scrapy cancels a download when the body outgrows DOWNLOAD_MAXSIZE (with a message when
        # Content-Length announced it, without one when the body was streamed).
        return "too_large" if "max size" in message or not message else "cancelled"
    if isinstance(exc, tx.ConnectionRefusedError | getattr(sx, "DownloadConnectionRefusedError", tx.ConnectError)):
        return "connection_refused"
    if isinstance(exc, tx.DNSLookupError | getattr(sx, "CannotResolveHostError", tx.DNSLookupError)):
        return "dns"
    if isinstance(exc, getattr(sx, "ResponseDataLossError", ResponseFailed)):
        return "data_loss"
    if isinstance(exc, tx.ConnectionLost | tx.ConnectionDone | ResponseFailed):
        return "connection_lost"
    return type(exc).__name__


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class SiteSpider(scrapy.Spider):
    name = "corpus"

    def __init__(
        self,
        seeds: list[str],
        allowed_domains: list[str] | None = None,
        max_pages: int | None = None,
        depth: int | None = None,
        allow: list[str] | None = None,
        deny: list[str] | None = None,
        sitemaps: bool = False,
        store_html: bool = False,
        extract: bool = True,
        favor: str = "precision",
        favor_precision: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.seeds = [canonicalize(u) for u in seeds]
        domains = allowed_domains or sorted({urlsplit(u).hostname or "" for u in seeds})
        self.rules = UrlRules(domains, allow, deny)
        self.allowed_domains = self.rules.domains  # Scrapy's offsite middleware also guards redirects
        self.max_pages = max_pages or None
        self.max_depth = depth
        self.sitemaps = sitemaps
        self.store_html = store_html
        if favor_precision is not None:
            favor = "precision" if favor_precision else "balanced"
        self.options = ExtractOptions(favor=favor, keep_html=store_html or not extract, extract=extract)
        self.requested = 0
        self.sitemaps_seen: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> SiteSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.setup(crawler)
        return spider

    def setup(self, crawler: Any) -> None:
        settings = crawler.settings
        if self.max_depth is None:
            self.max_depth = settings.getint("CORPUS_DEPTH", 3)
        options = self.options
        options.timeout = settings.getfloat("CORPUS_EXTRACT_TIMEOUT", 10.0)
        options.fast = settings.getbool("CORPUS_EXTRACT_FAST", False)
        options.include_comments = settings.getbool("CORPUS_INCLUDE_COMMENTS", False)
        options.include_tables = settings.getbool("CORPUS_INCLUDE_TABLES", True)
        options.min_chars = settings.getint("CORPUS_MIN_CHARS", 1)
        self.extractor = ExtractorPool(settings.getint("CORPUS_EXTRACT_WORKERS", 0), options)
        self.redis = None
        self.redis_key = settings.get("CORPUS_REDIS_KEY", "corpus")
        if settings.get("REDIS_URL"):
            import redis

            self.redis = redis.Redis.from_url(settings.get("REDIS_URL"))
            self.idle_close = settings.getfloat("CORPUS_IDLE_CLOSE", 10.0)
            crawler.signals.connect(self.on_idle, signal=signals.spider_idle)
        job_dir = None if self.redis is not None else settings.get("CORPUS_JOB_DIR")
        self.state = CrawlState(settings.get("CORPUS_OUTPUT"), job_dir, settings.get("CORPUS_FORMAT", "parquet"),
                                prefix=settings.get("CORPUS_SHARD_PREFIX", "crawl"))
        journal = self.state.journal
        self.seen: set[str] = set(journal.scheduled) if journal else set()
        self.seen |= self.state.done_urls
        self.requested = len(journal.scheduled) if journal else 0
        self.last_activity = time.time()
        crawler.signals.connect(self.on_closed, signal=signals.spider_closed)

    # --- scheduling ---------------------------------------------------------------------------------

    def _take_budget(self) -> bool:
        if self.max_pages is None:
            return True
        if self.redis is not None:  # one budget shared by every process of a distributed crawl
            return int(self.redis.incr(f"{self.redis_key}:requested")) <= self.max_pages
        if self.requested >= self.max_pages:
            return False
        self.requested += 1
        return True

    def schedule(self, url: str, depth: int, seed: bool = False) -> scrapy.Request | None:
        """A request for `url` if it is new, in scope, within depth and within budget; else counted.
        Seeds skip the --allow/--deny patterns (the user named them) but not the domain rule."""
        stats = self.crawler.stats
        try:
            url = canonicalize(url)
        except ValueError:
            stats.inc_value("corpus/skipped/bad_url")
            return None
        if url in self.seen:
            stats.inc_value("corpus/duplicates/url")
            return None
        if len(url) > MAX_URL_LENGTH:  # session ids and calendar parameters piling up
            stats.inc_value("corpus/skipped/url_too_long")
            return None
        verdict = self.rules.verdict(url)
        if verdict is not None and not (seed and verdict != "offsite"):
            self.seen.add(url)
            stats.inc_value(f"corpus/skipped/{verdict}")
            return None
        if depth > self.max_depth:
            stats.inc_value("corpus/skipped/depth_limit")
            return None
        if not self._take_budget():
            stats.inc_value("corpus/skipped/max_pages")
            return None
        self.seen.add(url)
        self.state.scheduled(url, depth)
        return self.page_request(url, depth)

    def page_request(self, url: str, depth: int) -> scrapy.Request:
        return scrapy.Request(url, callback=self.parse, errback=self.page_failed, priority=-depth,
                              meta={"corpus_url": url, "corpus_depth": depth})

    async def start(self) -> AsyncIterator[Any]:
        pending = self.state.pending()
        if pending:
            self.crawler.stats.set_value("corpus/resumed_pending", len(pending))
        for url, depth in pending:
            yield self.page_request(url, depth)
        for url in self.seeds:
            request = self.schedule(url, 0, seed=True)
            if request is not None:
                yield request
        if self.sitemaps:
            for base in sorted({origin(u) for u in self.seeds}):
                yield scrapy.Request(f"{base}/robots.txt", callback=self.parse_robots, errback=self.robots_failed,
                                     priority=20, meta={"dont_obey_robotstxt": True, "corpus_kind": "robots"})

    # --- sitemaps -----------------------------------------------------------------------------------

    def sitemap_request(self, url: str, nesting: int = 0) -> scrapy.Request | None:
        url = canonicalize(url)
        if url in self.sitemaps_seen or nesting > MAX_SITEMAP_NESTING or self.rules.verdict(url) == "offsite":
            return None
        self.sitemaps_seen.add(url)
        return scrapy.Request(url, callback=self.parse_sitemap, errback=self.sitemap_failed, priority=10,
                              meta={"corpus_kind": "sitemap", "corpus_nesting": nesting})

    def parse_robots(self, response: Response) -> Iterator[Any]:
        listed = list(sitemap_urls_from_robots(response.body, base_url=response.url))
        self.crawler.stats.inc_value("corpus/sitemaps/from_robots", len(listed))
        for url in listed or [f"{origin(response.url)}/sitemap.xml"]:
            request = self.sitemap_request(url)
            if request is not None:
                yield request

    def robots_failed(self, failure: Any) -> Iterator[Any]:
        request = self.sitemap_request(f"{origin(failure.request.url)}/sitemap.xml")
        if request is not None:
            yield request

    def sitemap_failed(self, failure: Any) -> None:
        self.crawler.stats.inc_value(f"corpus/sitemaps/failed/{classify_failure(failure)}")

    def parse_sitemap(self, response: Response) -> Iterator[Any]:
        stats = self.crawler.stats
        body = response.body
        if body[:2] == b"\x1f\x8b":  # .xml.gz served without Content-Encoding
            try:
                body = gunzip(body, max_size=self.crawler.settings.getint("DOWNLOAD_MAXSIZE"))
            except Exception:
                stats.inc_value("corpus/sitemaps/failed/bad_gzip")
                return
        try:
            sitemap = Sitemap(body)
        except Exception:
            stats.inc_value("corpus/sitemaps/failed/not_xml")
            return
        stats.inc_value(f"corpus/sitemaps/{sitemap.type or 'unknown'}")
        nesting = response.meta.get("corpus_nesting", 0)
        for entry in sitemap:
            loc = (entry.get("loc") or "").strip()
            if not loc:
                continue
            if sitemap.type == "sitemapindex":
                request = self.sitemap_request(loc, nesting + 1)
            else:
                stats.inc_value("corpus/sitemaps/urls")
                request = self.schedule(loc, 0)
            if request is not None:
                yield request

    # --- pages --------------------------------------------------------------------------------------

    def _finish(self, response_or_request: Any, transient: bool = False) -> None:
        url = response_or_request.meta.get("corpus_url")
        if url and not transient:
            self.state.finished(url)

    async def parse(self, response: Response) -> AsyncIterator[Any]:
        self.activity()
        stats = self.crawler.stats
        depth = response.meta.get("corpus_depth", 0)
        header = response.headers.get("Content-Type")
        content_type = header.decode("latin-1") if header else None
        kind = media_type(content_type)
        if not (is_html(content_type) or (content_type is None and isinstance(response, scrapy.http.HtmlResponse))):
            stats.inc_value(f"corpus/skipped/content_type/{kind}")
            self._finish(response)
            return
        result = await self.extractor.extract(response.body, content_type, response.url)
        stats.inc_value("corpus/page_cpu_seconds", result.seconds)
        stats.inc_value("corpus/extract_cpu_seconds", result.extract_seconds)
        if result.charset and result.charset != "utf8":
            stats.inc_value(f"corpus/charset/{result.charset}")
        for link in result.links:
            request = self.schedule(link, depth + 1)
            if request is not None:
                yield request
        if result.reason == "binary_content":
            stats.inc_value("corpus/skipped/binary_content")
            self._finish(response)
            return
        if result.text is None:
            stats.inc_value(f"corpus/extract_failed/{result.reason}")
            self._finish(response)
            return
        url = canonicalize(response.url)
        metadata: dict[str, Any] = {
            "url": url,
            "domain": urlsplit(url).hostname,
            "status": response.status,
            "depth": depth,
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "source": "crawl",
            "content_type": kind,
            "encoding": result.encoding,
            **result.metadata,
        }
        requested = response.meta.get("corpus_url")
        if requested and requested != url:
            metadata["requested_url"] = requested
        if "warc_record_id" in response.meta:
            metadata["warc_file"] = response.meta["warc_file"]
            metadata["warc_record_id"] = response.meta["warc_record_id"]
        if result.html is not None:
            metadata["html"] = result.html
        yield {"id": stable_id(url=url), "text": result.text, "metadata": metadata}

    def page_failed(self, failure: Any) -> None:
        self.activity()
        reason = classify_failure(failure)
        self.crawler.stats.inc_value(f"corpus/errors/{reason}")
        url = failure.request.meta.get("corpus_url", failure.request.url)
        if failure.request.meta.get("corpus_depth") == 0 and url in self._seed_urls():
            # Named by the user, so said by name at the end (one line each), not only counted.
            failed = self.crawler.stats.get_value("corpus/failed_seeds") or []
            self.crawler.stats.set_value("corpus/failed_seeds", [*failed, {"url": url, "reason": reason}])
        transient = reason in TRANSIENT or reason.startswith("http_5") or reason == "http_429"
        self._finish(failure.request, transient=transient)

    def _seed_urls(self) -> set[str]:
        if not hasattr(self, "_seed_set"):
            self._seed_set = set(self.seeds)
        return self._seed_set

    # --- distributed crawling and shutdown ----------------------------------------------------------

    def activity(self) -> None:
        """One page finished (with or without a document)."""
        self.crawler.stats.inc_value("corpus/pages")
        self.last_activity = time.time()
        if self.redis is not None:
            self.redis.set(f"{self.redis_key}:active", self.last_activity)

    def on_idle(self, spider: Any = None) -> None:
        """Distributed: stay open while the shared frontier has work or another process was busy lately."""
        assert self.redis is not None
        if self.redis.zcard(f"{self.redis_key}:requests"):
            raise DontCloseSpider
        last = max(float(self.redis.get(f"{self.redis_key}:active") or 0), self.last_activity)
        if time.time() - last < self.idle_close:
            raise DontCloseSpider

    def on_closed(self, spider: Any = None, reason: str | None = None) -> None:
        self.extractor.close()
        self.state.close()
