"""Scrapy settings: polite by default, a `fast` profile for crawling one's own servers."""

from __future__ import annotations

from typing import Any

USER_AGENT = "corpus-crawler/0.1 (+{contact})"
DEFAULT_CONTACT = "https://github.com/corpus-toolkit/corpus"

POLITE: dict[str, Any] = {
    "ROBOTSTXT_OBEY": True,
    "AUTOTHROTTLE_ENABLED": True,
    "AUTOTHROTTLE_START_DELAY": 1.0,
    "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.0,
    "CONCURRENT_REQUESTS": 16,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
    "DOWNLOAD_DELAY": 0.5,
    "DOWNLOAD_TIMEOUT": 30,
    "DOWNLOAD_MAXSIZE": 10 * 1024 * 1024,
    "DOWNLOAD_WARNSIZE": 0,
    "RETRY_ENABLED": True,
    "RETRY_TIMES": 2,
    "REDIRECT_MAX_TIMES": 5,
    "COOKIES_ENABLED": False,
    "TELNETCONSOLE_ENABLED": False,
    "LOG_LEVEL": "WARNING",
    "REQUEST_FINGERPRINTER_IMPLEMENTATION": "2.7",
    "DEPTH_PRIORITY": 1,  # breadth-first: shallow pages first, so --max-pages keeps the most central ones
    "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
    "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
}

FAST: dict[str, Any] = {
    "AUTOTHROTTLE_ENABLED": False,
    "DOWNLOAD_DELAY": 0,
    "CONCURRENT_REQUESTS": 64,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 64,
    "DOWNLOAD_TIMEOUT": 15,
}


def build_settings(fast: bool = False, contact: str | None = None, **overrides: Any) -> dict[str, Any]:
    settings = dict(POLITE)
    if fast:
        settings.update(FAST)
    settings["USER_AGENT"] = USER_AGENT.format(contact=contact or DEFAULT_CONTACT)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    return settings
