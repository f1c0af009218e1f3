"""Exact deduplication across all shards: hash every document, then keep the first occurrence.

Two jobs around a barrier: `ExactDedupSignatures` writes each rank's hashes (in document order);
`ExactDedupFilter` reads every rank's hashes and drops a document when an earlier one (lower rank, or
earlier in the same rank) has the same hash. The kept document is the first in input order, so the
result does not depend on how many workers ran.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from corpus.document import Document
from corpus.io import atomic_write_bytes
from corpus.stage import BARRIER, Barrier, RankContext, Stage

_SPACE = re.compile(r"\s+")


def text_hash(text: str, normalise: bool = True) -> int:
    if normalise:
        text = _SPACE.sub(" ", text.lower()).strip()
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class ExactDedup(Stage):
    """Removes documents whose (case- and whitespace-normalised) text is identical to an earlier one."""

    def __init__(self, normalise: bool = True) -> None:
        self.normalise = normalise

    def expand(self) -> list[Stage | Barrier]:
        signatures = ExactDedupSignatures(self.normalise)
        signatures.id = f"{self.id}_signatures"
        dedup_filter = ExactDedupFilter()
        dedup_filter.id = self.id
        dedup_filter.signatures_id = signatures.id
        return [signatures, BARRIER, dedup_filter]


def _folder(ctx: RankContext, stage_id: str) -> Path:
    return ctx.work_dir / "exact_dedup" / stage_id


class ExactDedupSignatures(Stage):
    def __init__(self, normalise: bool = True) -> None:
        self.normalise = normalise

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        hashes: list[int] = []
        ids: list[str] = []
        for doc in docs:
            hashes.append(text_hash(doc.text, self.normalise))
            ids.append(doc.id)
            yield doc
        folder = _folder(ctx, self.id)
        atomic_write_bytes(folder / f"{ctx.rank:05d}.npy", _npy(np.array(hashes, dtype=np.uint64)))
        atomic_write_bytes(folder / f"{ctx.rank:05d}.ids.json", json.dumps(ids).encode())


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


class ExactDedupFilter(Stage):
    signatures_id: str = "exact_dedup_signatures"

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        folder = _folder(ctx, self.signatures_id)
        ranks = [np.load(folder / f"{r:05d}.npy") for r in range(ctx.world_size)]
        offsets = np.cumsum([0] + [len(h) for h in ranks])
        all_hashes = np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.uint64)
        # np.unique returns the index of each hash's first occurrence in rank-then-position order.
        _, first_index, inverse = np.unique(all_hashes, return_index=True, return_inverse=True)
        mine = slice(offsets[ctx.rank], offsets[ctx.rank + 1])
        first_of_mine = first_index[inverse[mine]]
        stats = ctx.stats_for(self)
        id_cache: dict[int, list[str]] = {}
        for position, doc in enumerate(docs):
            first = int(first_of_mine[position])
            if first == offsets[ctx.rank] + position:
                yield doc
                continue
            owner = int(np.searchsorted(offsets, first, side="right") - 1)
            if owner not in id_cache:
                id_cache[owner] = json.loads((folder / f"{owner:05d}.ids.json").read_text())
            doc.metadata["duplicate_of"] = id_cache[owner][first - offsets[owner]]
            stats.add("duplicates")
            ctx.drop(doc, self, "exact_duplicate")
