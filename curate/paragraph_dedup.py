"""Paragraph (or line) dedup across documents: boilerplate that many pages repeat, removed from each.

As in CCNet and Dolma, each paragraph is hashed after light normalisation (lower case, digits as 0,
no punctuation, single spaces). By default the first occurrence in the corpus (input order) is kept and
every later one removed, including repeats inside one document; with `keep_first: false` every
occurrence of a paragraph found in at least `min_docs` documents is removed (pure boilerplate
stripping). A document left with fewer than `min_doc_chars` characters is dropped.

Jobs: each rank writes its (hash, document) pairs sorted on disk; the first filter rank merges them in
bounded chunks and writes each rank the list of (document, hash) to remove; every rank applies its own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from corpus.core.document import Document
from corpus.core.stage import BARRIER, Barrier, RankContext, Stage
from corpus.curate.dedup_index import Run, load_run, merge_runs, run_once, save_npy, save_npz

UNITS = ("paragraph", "line")
_DIGIT = re.compile(r"\d")
_NOT_WORD = re.compile(r"[\W_]+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


def split_units(text: str, unit: str) -> list[str]:
    return _PARAGRAPH_BREAK.split(text) if unit == "paragraph" else text.split("\n")


def paragraph_hash(paragraph: str) -> int:
    normal = _NOT_WORD.sub(" ", _DIGIT.sub("0", paragraph.lower())).strip()
    return int.from_bytes(hashlib.blake2b(normal.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class ParagraphDedup(Stage):
    """Removes paragraphs (`unit: paragraph`, split on blank lines) or lines (`unit: line`) that repeat
    across documents. Paragraphs shorter than `min_chars` (normalised) are never touched."""

    def __init__(self, unit: str = "paragraph", keep_first: bool = True, min_docs: int = 2, min_chars: int = 1,
                 min_doc_chars: int = 1) -> None:
        if unit not in UNITS:
            raise ValueError(f"unit must be one of {', '.join(UNITS)}, not {unit!r}")
        if min_docs < 2:
            raise ValueError("min_docs must be at least 2")
        self.unit, self.keep_first, self.min_docs = unit, keep_first, min_docs
        self.min_chars, self.min_doc_chars = min_chars, min_doc_chars

    def expand(self) -> list[Stage | Barrier]:
        signatures, dedup_filter = ParagraphSignatures(self), ParagraphFilter(self)
        signatures.id = f"{self.id}_signatures"
        dedup_filter.id = self.id
        return [signatures, BARRIER, dedup_filter]

    def hashes(self, text: str) -> list[int | None]:
        """One hash per unit; None for units too short to consider."""
        return [paragraph_hash(p) if len(p.strip()) >= self.min_chars else None for p in split_units(text, self.unit)]

    def folder(self, ctx: RankContext) -> Path:
        return ctx.work_dir / "dedup" / self.id

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        raise RuntimeError(f"stage {self.id!r} must be expanded into jobs (use build_jobs)")


class ParagraphSignatures(Stage):
    """Job 1: each document's distinct paragraph hashes, as this rank's sorted run."""

    def __init__(self, parent: ParagraphDedup) -> None:
        self.parent = parent

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        keys: list[int] = []
        positions: list[int] = []
        count = 0
        for position, doc in enumerate(docs):
            distinct = {h for h in self.parent.hashes(doc.text) if h is not None}
            keys.extend(distinct)
            positions.extend([position] * len(distinct))
            count += 1
            yield doc
        key_array = np.array(keys, dtype=np.uint64)
        order = np.argsort(key_array, kind="stable")
        folder = self.parent.folder(ctx) / "sig"
        name = f"{ctx.rank:05d}"
        save_npz(folder / f"{name}.docs.npz", count=np.array([count]))
        save_npy(folder / f"{name}.pos.npy", np.array(positions, dtype=np.uint32)[order].reshape(1, -1))
        save_npy(folder / f"{name}.keys.npy", key_array[order].reshape(1, -1))


def find_repeats(sig: Path, out: Path, world_size: int, keep_first: bool, min_docs: int) -> dict[str, Any]:
    """Merge every rank's runs; per rank, write the (document, hash) pairs whose paragraph must go."""
    runs: list[Run] = []
    bases = [0]
    for rank in range(world_size):
        name = f"{rank:05d}"
        runs.append(load_run(sig, name, bases[-1]))
        bases.append(bases[-1] + int(np.load(sig / f"{name}.docs.npz")["count"][0]))
    remove_doc, remove_hash = [], []
    repeated = 0
    for keys, gidx in merge_runs(runs, 0):
        starts = np.ones(len(keys), dtype=bool)
        starts[1:] = keys[1:] != keys[:-1]
        group = np.cumsum(starts) - 1
        sizes = np.bincount(group)
        many = sizes[group] >= (2 if keep_first else min_docs)
        repeated += int(np.count_nonzero(sizes >= 2))
        drop = many & ~starts if keep_first else many  # entries are sorted by document: start = first doc
        remove_doc.append(gidx[drop])
        remove_hash.append(keys[drop])
    docs = np.concatenate(remove_doc) if remove_doc else np.zeros(0, np.int64)
    hashes = np.concatenate(remove_hash) if remove_hash else np.zeros(0, np.uint64)
    owner = np.searchsorted(bases, docs, side="right") - 1
    out.mkdir(parents=True, exist_ok=True)
    for rank in range(world_size):
        mine = owner == rank
        save_npz(out / f"{rank:05d}.npz", pos=docs[mine] - bases[rank], hash=hashes[mine])
    return {"documents": bases[-1], "repeated_paragraphs": repeated, "removals_planned": int(len(docs))}


class ParagraphFilter(Stage):
    """Job 2: remove this rank's repeated paragraphs; drop documents left (nearly) empty."""

    def __init__(self, parent: ParagraphDedup) -> None:
        self.parent = parent

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        parent = self.parent
        folder = parent.folder(ctx)
        summary = run_once(folder / "repeats", lambda: find_repeats(
            folder / "sig", folder / "repeats", ctx.world_size, parent.keep_first, parent.min_docs))
        stats = ctx.stats_for(self)
        if ctx.rank == 0:
            for key, value in summary.items():
                stats.add(f"repeats/{key}", value)
        with np.load(folder / "repeats" / f"{ctx.rank:05d}.npz") as saved:
            plan = {key: saved[key] for key in saved.files}
        remove: dict[int, set[int]] = {}
        for pos, h in zip(plan["pos"].tolist(), plan["hash"].tolist(), strict=True):
            remove.setdefault(pos, set()).add(h)
        separator = "\n\n" if parent.unit == "paragraph" else "\n"
        for position, doc in enumerate(docs):
            gone = remove.get(position, set())
            pieces = split_units(doc.text, parent.unit)
            hashes = parent.hashes(doc.text)
            kept, seen, removed_chars = [], set(), 0
            for piece, h in zip(pieces, hashes, strict=True):
                repeat = h is not None and (h in gone or (parent.keep_first and h in seen))
                if h is not None:
                    seen.add(h)
                stats.add("paragraphs")
                if repeat:
                    stats.add("paragraphs_removed")
                    removed_chars += len(piece)
                else:
                    kept.append(piece)
            if removed_chars:
                stats.add("chars_removed", removed_chars)
                doc.text = separator.join(kept).strip()
                doc.metadata["paragraph_dedup_removed_chars"] = removed_chars
            if len(doc.text.strip()) < parent.min_doc_chars:
                ctx.drop(doc, self, "paragraph_duplicate_empty")
                continue
            yield doc
