"""Exact and URL deduplication: one key per document, clusters of equal keys, one keeper per cluster.

Both are two jobs around a barrier (see `corpus.curate.dedup_index`): signatures write each rank's keys,
then the filter drops every cluster member but the keeper (`keep`: first seen, longest, or highest
quality score), records `duplicate_of` on the rejects and `<kind>_cluster_id` / `<kind>_cluster_size`
on every clustered document. The result does not depend on how many workers ran.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from corpus.core.document import Document
from corpus.core.stage import RankContext
from corpus.curate.dedup_index import KeyDedup

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_TRACKING = re.compile(r"^(utm_[a-z]+|fbclid|gclid|mc_cid|mc_eid)$")


def text_hash(text: str, normalise: bool = True) -> int:
    """64-bit hash of the text; with `normalise`, case and runs of whitespace do not matter."""
    if normalise:
        text = " ".join(text.lower().split())  # str.split: the same whitespace as regex \s, much faster
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def normalise_url(url: str) -> str:
    """The form two URLs of the same page share: lower-case scheme and host, no default port, no fragment,
    no tracking parameters, sorted query, and no trailing slash on the path."""
    from w3lib.url import canonicalize_url

    try:
        parts = urlsplit(canonicalize_url(url.strip()))
    except ValueError:
        return url.strip()
    host = (parts.hostname or "").lower()
    if parts.port and str(parts.port) != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    query = "&".join(p for p in parts.query.split("&") if p and not _TRACKING.match(p.split("=", 1)[0]))
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), host, path, query, ""))


class ExactDedup(KeyDedup):
    """Removes documents whose text is identical to another's (after lower-casing and collapsing
    whitespace when `normalise`); the first one is kept unless `keep` says otherwise."""

    kind = "exact"
    reason = "exact_duplicate"

    def __init__(self, normalise: bool = True, keep: str = "first", quality_key: str | None = "quality_score",
                 index_dir: str | None = None, update_index: bool = True) -> None:
        super().__init__(keep, quality_key, index_dir, update_index)
        self.normalise = normalise

    def make_keys(self, docs: list[Document], ctx: RankContext) -> tuple[np.ndarray, np.ndarray | None]:
        keys = np.array([text_hash(d.text, self.normalise) for d in docs], dtype=np.uint64).reshape(-1, 1)
        return keys, None

    def key_params(self) -> dict[str, Any]:
        return {**super().key_params(), "normalise": self.normalise}


class UrlDedup(KeyDedup):
    """Removes documents whose URL (normalised: see `normalise_url`) another document already has;
    documents without a URL are kept. `keep: longest` keeps the fullest fetch of a page."""

    kind = "url"
    reason = "url_duplicate"

    def __init__(self, field: str = "url", keep: str = "first", quality_key: str | None = "quality_score",
                 index_dir: str | None = None, update_index: bool = True) -> None:
        super().__init__(keep, quality_key, index_dir, update_index)
        self.field = field

    def make_keys(self, docs: list[Document], ctx: RankContext) -> tuple[np.ndarray, np.ndarray | None]:
        urls = [d.metadata.get(self.field) for d in docs]
        valid = np.array([isinstance(u, str) and bool(u.strip()) for u in urls], dtype=bool)
        keys = np.array([text_hash(normalise_url(u), normalise=False) if ok else 0
                         for u, ok in zip(urls, valid.tolist(), strict=True)], dtype=np.uint64)
        return keys.reshape(-1, 1), valid

    def key_params(self) -> dict[str, Any]:
        return {**super().key_params(), "field": self.field}
