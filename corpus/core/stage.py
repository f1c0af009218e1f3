"""Stages: the unit of work in a pipeline.

A stage turns an iterator of documents into an iterator of documents for one rank. The executor
counts what goes in and out of every stage and times it, so subclasses only say what is special:
a `Filter` says which documents to keep and why not; a `Transform` rewrites one document.
Constructors only store arguments (stages are pickled to worker processes); models load on first use.
"""

from __future__ import annotations

import itertools
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.stats import StageStats


class Barrier:
    """Marks where a stage needs every rank to finish first (e.g. dedup signatures before filtering)."""


BARRIER = Barrier()


@dataclass
class RankContext:
    """What a stage may know about where it runs, and where it reports drops and errors."""

    rank: int = 0
    world_size: int = 1
    job: str = "main"
    work_dir: Path = field(default_factory=lambda: Path("."))
    strict: bool = False
    stats: dict[str, StageStats] = field(default_factory=dict)
    on_reject: Callable[[Document, str, str], None] | None = None
    on_error: Callable[[Document, str, BaseException], None] | None = None

    def stats_for(self, stage: Stage) -> StageStats:
        if stage.id not in self.stats:
            self.stats[stage.id] = StageStats(stage.id, type(stage).__name__)
        return self.stats[stage.id]

    def drop(self, doc: Document, stage: Stage, reason: str) -> None:
        self.stats_for(stage).add(f"dropped/{reason}")
        if self.on_reject is not None:
            self.on_reject(doc, stage.id, reason)

    def error(self, doc: Document, stage: Stage, exc: BaseException) -> None:
        """A stage failed on one document: record it, drop the document (kept in rejects), go on."""
        if self.strict:
            raise CorpusError(f"stage {stage.id!r} failed on document {doc.id!r}: {type(exc).__name__}: {exc} "
                              "(without --strict the run records it under errors/ and goes on)") from exc
        self.stats_for(stage).add(f"errors/{type(exc).__name__}")
        if self.on_error is not None:
            self.on_error(doc, stage.id, exc)
        self.drop(doc, stage, "error")


class Stage:
    """Base class; `id` is set from the pipeline config (defaults to the class name)."""

    _id: str | None = None

    @property
    def id(self) -> str:
        return self._id or type(self).__name__

    @id.setter
    def id(self, value: str) -> None:
        self._id = value

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        raise NotImplementedError

    def expand(self) -> list[Stage | Barrier]:
        """Stages that need a global view override this to split themselves around a barrier."""
        return [self]

    def count(self, key: str, amount: float = 1) -> None:
        """Add to one of this stage's counters (e.g. `pii/email`); a no-op outside a run."""
        stats = getattr(self, "stats", None)
        if stats is not None:
            stats.add(key, amount)


class Filter(Stage):
    """Keeps or drops each document; the reason for every drop is counted and kept with the reject."""

    batch_size: int = 1
    stats: StageStats  # set by run(); filters may add their own counters (e.g. `lang/en`)

    def keep(self, doc: Document) -> bool | tuple[bool, str]:
        raise NotImplementedError

    def keep_batch(self, docs: list[Document]) -> list[bool | tuple[bool, str]]:
        return [self.keep(doc) for doc in docs]

    def default_reason(self) -> str:
        return f"{self.id}_filtered"

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        self.stats = ctx.stats_for(self)
        iterator = iter(docs)
        while batch := list(itertools.islice(iterator, self.batch_size)):
            try:
                results = self.keep_batch(batch)
            except Exception:
                # Find the document(s) it fails on: each is recorded (or, with --strict, named in the error).
                results = [self._keep_one(doc, ctx) for doc in batch]
            for doc, result in zip(batch, results, strict=True):
                if result is None:  # already dropped as an error
                    continue
                keep, reason = result if isinstance(result, tuple) else (result, self.default_reason())
                if keep:
                    yield doc
                else:
                    ctx.drop(doc, self, reason)

    def _keep_one(self, doc: Document, ctx: RankContext) -> bool | tuple[bool, str] | None:
        try:
            return self.keep(doc)
        except Exception as exc:
            ctx.error(doc, self, exc)
            return None


class Transform(Stage):
    """Rewrites documents one at a time (normalisation, redaction)."""

    stats: StageStats  # set by run(); transforms may add their own counters

    def apply(self, doc: Document) -> Document:
        raise NotImplementedError

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        self.stats = ctx.stats_for(self)
        for doc in docs:
            try:
                yield self.apply(doc)
            except Exception as exc:
                ctx.error(doc, self, exc)


class FunctionStage(Stage):
    """Wraps a plain `fn(docs, ctx) -> Iterator[Document]` so it can sit in a pipeline."""

    def __init__(self, fn: Callable[[Iterable[Document], RankContext], Iterator[Document]]) -> None:
        self.fn = fn
        self.id = getattr(fn, "__name__", "function")

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        return self.fn(docs, ctx)


def format_error(exc: BaseException) -> dict[str, Any]:
    return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=5)}
