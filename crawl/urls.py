"""URL canonicalisation and scope rules, so one page under two spellings is fetched once."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from w3lib.url import canonicalize_url, url_query_cleaner

from corpus.core.errors import CorpusError

# Query parameters that only track clicks; the same page with or without them is one page.
TRACKING_PARAMS = (
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "utm_id",
    "gclid", "fbclid", "msclkid", "mc_cid", "mc_eid", "_ga", "yclid",
)
DEFAULT_PORTS = {"http": 80, "https": 443}
HTML_TYPES = ("text/html", "application/xhtml+xml")


@functools.lru_cache(maxsize=100_000)  # navigation links repeat on every page of a site
def canonicalize(url: str) -> str:
    """Sorted query, no fragment, no tracking parameters, lower-case host, no default port."""
    url = canonicalize_url(url_query_cleaner(url, TRACKING_PARAMS, remove=True, keep_fragments=False))
    parts = urlsplit(url)
    if parts.port is not None and DEFAULT_PORTS.get(parts.scheme) == parts.port:
        host = parts.hostname or ""
        netloc = (f"{parts.username}@" if parts.username else "") + host
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    return url


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CorpusError(f"{url!r}: not an http(s) URL")
    return url


def compile_patterns(patterns: Iterable[str] | None, option: str) -> list[re.Pattern[str]]:
    compiled = []
    for pattern in patterns or ():
        try:
            compiled.append(re.compile(pattern))
        except re.error as err:
            raise CorpusError(f"{option} {pattern!r}: not a valid regular expression ({err})") from None
    return compiled


class UrlRules:
    """Which URLs a crawl may follow: allowed domains (and their subdomains), allow and deny regexes.

    A URL is followed when its host is allowed, it matches at least one allow pattern (if any are given)
    and no deny pattern. Patterns are searched (`re.search`) in the canonical URL.
    """

    def __init__(self, domains: Iterable[str], allow: Iterable[str] | None = None,
                 deny: Iterable[str] | None = None) -> None:
        self.domains = sorted({d.lower().lstrip(".") for d in domains if d})
        self.allow = compile_patterns(allow, "--allow")
        self.deny = compile_patterns(deny, "--deny")

    def verdict(self, url: str) -> str | None:
        """None when `url` may be followed, else the reason it may not (a stats key)."""
        host = (urlsplit(url).hostname or "").lower()
        if self.domains and not any(host == d or host.endswith("." + d) for d in self.domains):
            return "offsite"
        if self.allow and not any(p.search(url) for p in self.allow):
            return "not_allowed"
        if any(p.search(url) for p in self.deny):
            return "denied"
        return None


def is_html(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() in HTML_TYPES


def media_type(content_type: str | bytes | None) -> str:
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    return (content_type or "").split(";")[0].strip().lower() or "unknown"
