"""A stage for the distributed tests: kills its own worker process once, the first time it runs on a rank."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path

from corpus.core.document import Document
from corpus.core.stage import RankContext, Stage


class KillOnce(Stage):
    """Passes documents through; on rank `rank`, after `after` documents, SIGKILLs its own process
    unless `marker` exists (it writes the marker, with the killed pid, first: so only the first try dies)."""

    def __init__(self, marker: str, rank: int = 1, after: int = 5) -> None:
        self.marker, self.rank, self.after = marker, rank, after

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        for n, doc in enumerate(docs):
            if ctx.rank == self.rank and n == self.after and not Path(self.marker).exists():
                Path(self.marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            yield doc
