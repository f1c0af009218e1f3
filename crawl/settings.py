"""Scrapy settings: polite by default, a `fast` profile for crawling one's own servers.

Precedence (lowest first): POLITE < FAST (with `fast=True`) < explicit overrides (CLI options, `settings=`).
"""

from __future__ import annotations

from typing import Any

from corpus.crawl import __version__

USER_AGENT = "corpus-crawler/{version} (+{contact})"
DEFAULT_CONTACT = "https://github.com/corpus-toolkit/corpus"

POLITE: dict[str, Any] = {
    "ROBOTSTXT_OBEY": True,
    # AutoThrottle adapts the delay to the server's latency; never faster than DOWNLOAD_DELAY.
    "AUTOTHROTTLE_ENABLED": True,
    "AUTOTHROTTLE_START_DELAY": 1.0,
    "AUTOTHROTTLE_MAX_DELAY": 30.0,
    "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
    "CONCURRENT_REQUESTS": 32,  # across all domains
    "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
    "DOWNLOAD_DELAY": 1.0,
    "DOWNLOAD_DELAY_JITTER": 0.5,  # +-50%, so requests do not arrive in lockstep
    "DOWNLOAD_TIMEOUT": 30,
    # Scrapy starts this many asyncio tasks for every response's output; our callbacks yield one document
    # and a few requests, and the default (100) made task bookkeeping a third of the crawler's CPU.
    "CONCURRENT_ITEMS": 4,
    "DOWNLOAD_MAXSIZE": 5 * 1024 * 1024,  # also bounds gzip decompression (HttpCompressionMiddleware)
    "DOWNLOAD_WARNSIZE": 0,
    "RETRY_ENABLED": True,
    "RETRY_TIMES": 2,
    "REDIRECT_MAX_TIMES": 5,
    "METAREFRESH_MAXDELAY": 5,
    "COOKIES_ENABLED": False,
    "TELNETCONSOLE_ENABLED": False,
    "LOG_LEVEL": "ERROR",  # every failure is counted in stats; the log stays for the unexpected
    "LOG_INSTALL_ROOT_HANDLER": True,
    "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
    # Depth is enforced by the spider (sitemap URLs count as seeds), so Scrapy's limit stays off.
    "DEPTH_LIMIT": 0,
    "DEPTH_STATS_VERBOSE": False,
    "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
    "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
    # Depth, URL length and scope are the spider's own rules; Scrapy's spider middlewares for them would
    # only add per-item overhead.
    "SPIDER_MIDDLEWARES": {
        "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
        "scrapy.spidermiddlewares.urllength.UrlLengthMiddleware": None,
    },
    "DOWNLOADER_MIDDLEWARES": {
        "scrapy.downloadermiddlewares.redirect.RedirectMiddleware": None,
        "corpus.crawl.middlewares.LoopAwareRedirectMiddleware": 600,
        "corpus.crawl.middlewares.SkipDoneMiddleware": 60,
        "corpus.crawl.warc.WarcMiddleware": 585,  # after gzip decoding (590), before meta-refresh (580)
    },
    # Crawl-specific knobs (read by our components).
    "CORPUS_SHARD_DOCS": 1000,  # roll a shard after this many documents...
    "CORPUS_SHARD_BYTES": 64 * 1024 * 1024,  # ...or this many bytes of text and html...
    "CORPUS_SHARD_SECONDS": 60.0,  # ...or when the oldest buffered document is this old
    "CORPUS_EXTRACT_TIMEOUT": 10.0,  # seconds per page before extraction is abandoned
    "CORPUS_EXTRACT_WORKERS": 0,  # 0: extract in the crawler process; N: a pool of N processes
    "CORPUS_IDLE_CLOSE": 10.0,  # distributed: close after the shared frontier was empty this long
}

FAST: dict[str, Any] = {
    "AUTOTHROTTLE_ENABLED": False,
    "DOWNLOAD_DELAY": 0,
    "DOWNLOAD_DELAY_JITTER": 0,
    "CONCURRENT_REQUESTS": 64,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 64,
    "DOWNLOAD_TIMEOUT": 15,
    "REACTOR_THREADPOOL_MAXSIZE": 20,
}


def user_agent(contact: str | None = None) -> str:
    """Names the tool and a contact URL, so site owners can find who is crawling them."""
    return USER_AGENT.format(version=__version__, contact=contact or DEFAULT_CONTACT)


def build_settings(fast: bool = False, contact: str | None = None, **overrides: Any) -> dict[str, Any]:
    settings = dict(POLITE)
    settings["DOWNLOADER_MIDDLEWARES"] = dict(POLITE["DOWNLOADER_MIDDLEWARES"])
    settings["SPIDER_MIDDLEWARES"] = dict(POLITE["SPIDER_MIDDLEWARES"])
    if fast:
        settings.update(FAST)
    settings["USER_AGENT"] = user_agent(contact)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return settings
