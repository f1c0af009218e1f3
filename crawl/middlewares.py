"""Downloader middlewares: redirect loops counted as such, and no refetching of pages a resumed crawl did."""

from __future__ import annotations

from typing import Any

from scrapy.downloadermiddlewares.redirect import RedirectMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request

from corpus.crawl.urls import canonicalize


class LoopAwareRedirectMiddleware(RedirectMiddleware):
    """Scrapy's redirects, but a chain that comes back to a URL it already visited stops at once as a
    `redirect loop` (Scrapy would either exhaust REDIRECT_MAX_TIMES or silently drop it as a duplicate)."""

    def _redirect(self, redirected: Request, request: Request, reason: Any) -> Request:
        chain = {canonicalize(u) for u in (*request.meta.get("redirect_urls", []), request.url)}
        if canonicalize(redirected.url) in chain:
            raise IgnoreRequest(f"redirect loop at {request.url}")
        return super()._redirect(redirected, request, reason)


class SkipDoneMiddleware:
    """A redirect that lands on a page an earlier run of this crawl already finished is not fetched again
    (first-hand requests for such pages are never scheduled at all)."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> SkipDoneMiddleware:
        return cls(crawler)

    def process_request(self, request: Request, spider: Any = None) -> None:
        state = getattr(self.crawler.spider, "state", None)
        if state is not None and request.meta.get("redirect_urls") and canonicalize(request.url) in state.done_urls:
            raise IgnoreRequest(f"already done in an earlier run: {request.url}")
