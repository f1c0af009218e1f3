"""A live progress line for crawls: pages done (of --max-pages), pages/s, documents written, errors."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from scrapy import signals
from twisted.internet.task import LoopingCall


class CrawlProgress:
    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("crawl"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.1f} pages/s, {task.fields[docs]} docs, {task.fields[errors]} errors"),
            TimeElapsedColumn(), console=self.console, transient=False,
        )
        total = crawler.settings.getint("CORPUS_PROGRESS_TOTAL") or None
        self.task = self.progress.add_task("crawl", total=total, docs=0, errors=0, rate=0.0)
        self.started = time.monotonic()
        self.timer = LoopingCall(self.update)

    @classmethod
    def from_crawler(cls, crawler: Any) -> CrawlProgress:
        ext = cls(crawler)
        crawler.signals.connect(ext.opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.closed, signal=signals.spider_closed)
        return ext

    def opened(self, spider: Any) -> None:
        self.started = time.monotonic()
        self.progress.start()
        self.timer.start(0.5)

    def update(self) -> None:
        stats = self.crawler.stats.get_stats()
        pages = int(stats.get("corpus/pages", 0))
        errors = sum(v for k, v in stats.items()
                     if k.startswith("corpus/errors/") and k != "corpus/errors/robots_blocked")
        rate = pages / max(time.monotonic() - self.started, 1e-6)
        self.progress.update(self.task, completed=pages, docs=int(stats.get("corpus/documents", 0)),
                             errors=int(errors), rate=rate)

    def closed(self, spider: Any, reason: str) -> None:
        if self.timer.running:
            self.timer.stop()
        self.update()
        self.progress.stop()
