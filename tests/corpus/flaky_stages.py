"""Stages for executor tests: one slow enough to be killed mid-run, one that fails on a document; and a task
function that reports how a worker process is set up."""

from __future__ import annotations

import time
from typing import Any

from corpus.core.document import Document
from corpus.core.stage import Filter, Transform


class Slow(Transform):
    def __init__(self, seconds: float = 0.01) -> None:
        self.seconds = seconds

    def apply(self, doc: Document) -> Document:
        time.sleep(self.seconds)
        return doc


class FailOn(Filter):
    """Raises on documents whose id is in `ids` (a stage bug that only some inputs trigger)."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = set(ids)

    def keep(self, doc: Document) -> bool:
        if doc.id in self.ids:
            raise ValueError(f"cannot handle {doc.id}")
        return True


def arrow_allocator(task: Any) -> dict[str, Any]:
    """The allocator behind Arrow's default memory pool in the process that runs `task`."""
    import pyarrow as pa

    return {"rank": task.rank, "allocator": pa.default_memory_pool().backend_name}
