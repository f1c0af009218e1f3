"""Per-site boilerplate removal: lines that repeat across many pages of the same site.

Navigation, cookie banners and footers survive main-text extraction on some sites; they show up as the
same line on many pages of one host. Two jobs around a barrier: `BoilerplateCount` hashes the distinct
lines of every page per site (each rank writes its counts), `BoilerplateRemove` adds up every rank's
counts and removes, from each page, the lines found on at least `min_docs` pages and at least
`min_fraction` of the pages of its site. Documents without a `url` are left alone; a page left empty is
dropped (`boilerplate_only`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from corpus.core.document import Document
from corpus.core.io import atomic_write_bytes
from corpus.core.stage import BARRIER, Barrier, RankContext, Stage

_BLANK_LINES = re.compile(r"\n{3,}")


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def site_of(doc: Document) -> str | None:
    url = doc.metadata.get("url")
    if not isinstance(url, str) or not url:
        return None
    host = urlsplit(url).hostname
    return host.removeprefix("www.") if host else None


def _line_key(line: str) -> str:
    return " ".join(line.split()).lower()


class BoilerplateLines(Stage):
    """Removes lines repeated on many pages of the same site (see the module docstring)."""

    def __init__(self, min_docs: int = 3, min_fraction: float = 0.1, min_site_docs: int = 3) -> None:
        if min_docs < 2:
            raise ValueError("min_docs must be at least 2 (a line on one page is not repeated)")
        self.min_docs = min_docs
        self.min_fraction = min_fraction
        self.min_site_docs = min_site_docs

    def expand(self) -> list[Stage | Barrier]:
        count = BoilerplateCount()
        count.id = f"{self.id}_count"
        remove = BoilerplateRemove(self.min_docs, self.min_fraction, self.min_site_docs)
        remove.id = self.id
        remove.count_id = count.id
        return [count, BARRIER, remove]


def _folder(ctx: RankContext, stage_id: str) -> Path:
    return ctx.work_dir / "boilerplate" / stage_id


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


class BoilerplateCount(Stage):
    """Counts, per site, on how many pages each distinct line occurs (this rank only)."""

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        pairs: list[tuple[int, int]] = []
        site_docs: dict[int, int] = {}
        for doc in docs:
            site = site_of(doc)
            if site is not None:
                site_hash = _hash(site)
                site_docs[site_hash] = site_docs.get(site_hash, 0) + 1
                lines = {_hash(_line_key(line)) for line in doc.text.split("\n") if line.strip()}
                pairs.extend((site_hash, h) for h in lines)
            yield doc
        array = np.array(pairs, dtype=np.uint64).reshape(-1, 2)
        keys, counts = _count_pairs(array)
        folder = _folder(ctx, self.id)
        atomic_write_bytes(folder / f"{ctx.rank:05d}.keys.npy", _npy(keys))
        atomic_write_bytes(folder / f"{ctx.rank:05d}.counts.npy", _npy(counts))
        sites = {str(k): v for k, v in site_docs.items()}
        atomic_write_bytes(folder / f"{ctx.rank:05d}.sites.json", json.dumps(sites, sort_keys=True).encode())


def _count_pairs(pairs: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    if len(pairs) == 0:
        return pairs.reshape(-1, 2), np.zeros(0, dtype=np.int64)
    keys, inverse = np.unique(pairs, axis=0, return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=weights, minlength=len(keys)).astype(np.int64)
    return keys, counts


class BoilerplateRemove(Stage):
    """Removes the lines that the counts of every rank mark as boilerplate of the page's site."""

    count_id: str = "boilerplate_count"

    def __init__(self, min_docs: int = 3, min_fraction: float = 0.1, min_site_docs: int = 3) -> None:
        self.min_docs = min_docs
        self.min_fraction = min_fraction
        self.min_site_docs = min_site_docs

    def _boilerplate(self, ctx: RankContext) -> set[tuple[int, int]]:
        folder = _folder(ctx, self.count_id)
        keys = [np.load(folder / f"{r:05d}.keys.npy") for r in range(ctx.world_size)]
        counts = [np.load(folder / f"{r:05d}.counts.npy") for r in range(ctx.world_size)]
        site_docs: dict[int, int] = {}
        for r in range(ctx.world_size):
            for key, n in json.loads((folder / f"{r:05d}.sites.json").read_text()).items():
                site_docs[int(key)] = site_docs.get(int(key), 0) + n
        merged, totals = _count_pairs(np.concatenate(keys), np.concatenate(counts))
        frequent = totals >= self.min_docs
        result = set()
        for (site, line), n in zip(merged[frequent].tolist(), totals[frequent].tolist(), strict=True):
            pages = site_docs.get(site, 0)
            if pages >= self.min_site_docs and n / pages >= self.min_fraction:
                result.add((site, line))
        return result

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        boilerplate = self._boilerplate(ctx)
        stats = ctx.stats_for(self)
        for doc in docs:
            site = site_of(doc)
            if site is None or not boilerplate:
                yield doc
                continue
            site_hash = _hash(site)
            lines = doc.text.split("\n")
            kept = [line for line in lines if not line.strip()
                    or (site_hash, _hash(_line_key(line))) not in boilerplate]
            removed = sum(1 for line in lines if line.strip()) - sum(1 for line in kept if line.strip())
            if removed:
                stats.add("lines_removed", removed)
                doc.metadata["boilerplate_lines_removed"] = removed
                doc.text = _BLANK_LINES.sub("\n\n", "\n".join(kept)).strip()
            if not doc.text.strip():
                ctx.drop(doc, self, "boilerplate_only")
                continue
            yield doc
