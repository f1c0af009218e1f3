"""The site spider: follow links within the seeds' domains, extract main text, yield documents."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import scrapy
from scrapy.http import HtmlResponse, Response
from scrapy.linkextractors import LinkExtractor

from corpus.document import stable_id
from crawl.extract import extract_page


class SiteSpider(scrapy.Spider):
    name = "site"

    def __init__(
        self,
        seeds: list[str],
        allowed_domains: list[str] | None = None,
        max_pages: int | None = None,
        favor_precision: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.seeds = seeds
        # Offsite filtering (Scrapy's middleware) reads this attribute.
        self.allowed_domains = allowed_domains or sorted({urlsplit(u).hostname or "" for u in seeds})
        self.max_pages = max_pages
        self.favor_precision = favor_precision
        self.requested = 0
        self.seen: set[str] = set(seeds)
        self.links = LinkExtractor(unique=True)

    def in_scope(self, url: str) -> bool:
        host = urlsplit(url).hostname or ""
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)

    def _budget(self) -> bool:
        """True while another request fits under --max-pages."""
        if self.max_pages is not None and self.requested >= self.max_pages:
            return False
        self.requested += 1
        return True

    async def start(self):  # noqa: ANN201 - Scrapy's async start() protocol
        for url in self.seeds:
            if self._budget():
                yield scrapy.Request(url, callback=self.parse)

    def parse(self, response: Response) -> Iterator[Any]:
        stats = self.crawler.stats
        if not isinstance(response, HtmlResponse):
            content_type = response.headers.get("Content-Type", b"").decode("latin-1").split(";")[0] or "unknown"
            stats.inc_value(f"corpus/skipped_content_type/{content_type}")
            return
        result = extract_page(response.text, response.url, favor_precision=self.favor_precision)
        if result.text is None:
            stats.inc_value(f"corpus/extract_failed/{result.reason}")
        else:
            stats.inc_value("corpus/documents")
            yield {
                "id": stable_id(url=response.url),
                "text": result.text,
                "metadata": {
                    "url": response.url,
                    "domain": urlsplit(response.url).hostname,
                    "status": response.status,
                    "depth": response.meta.get("depth", 0),
                    "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "source": "crawl",
                    **result.metadata,
                },
            }
        for link in self.links.extract_links(response):
            if link.url in self.seen or not self.in_scope(link.url):
                continue
            self.seen.add(link.url)
            if not self._budget():
                break
            yield response.follow(link.url, callback=self.parse)
