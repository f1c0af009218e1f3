"""A live progress line for crawls (pages, documents, errors) and a summary table at the end."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from scrapy import signals


class CrawlProgress:
    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("crawl"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[docs]} docs, {task.fields[errors]} errors"), TimeElapsedColumn(),
            console=self.console, transient=True,
        )
        self.task = self.progress.add_task("crawl", total=crawler.settings.getint("CORPUS_PROGRESS_TOTAL") or None,
                                           docs=0, errors=0)

    @classmethod
    def from_crawler(cls, crawler: Any) -> CrawlProgress:
        ext = cls(crawler)
        crawler.signals.connect(ext.opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.response, signal=signals.response_received)
        crawler.signals.connect(ext.update, signal=signals.item_scraped)
        crawler.signals.connect(ext.update, signal=signals.spider_error)
        crawler.signals.connect(ext.closed, signal=signals.spider_closed)
        return ext

    def opened(self, spider: Any) -> None:
        self.progress.start()

    def response(self, response: Any, request: Any, spider: Any) -> None:
        if not response.url.endswith("/robots.txt"):
            self.progress.advance(self.task)
        self.update()

    def update(self, *args: Any, **kwargs: Any) -> None:
        stats = self.crawler.stats
        self.progress.update(self.task, docs=stats.get_value("corpus/documents", 0),
                             errors=stats.get_value("log_count/ERROR", 0))

    def closed(self, spider: Any, reason: str) -> None:
        self.progress.stop()
        stats = self.crawler.stats.get_stats()
        table = Table(title=f"crawl finished ({reason})")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for key in ("downloader/response_count", "corpus/documents", "robotstxt/forbidden",
                    "offsite/filtered", "retry/count", "log_count/ERROR"):
            table.add_row(key, str(stats.get(key, 0)))
        for key, value in sorted(stats.items()):
            if key.startswith(("corpus/extract_failed/", "corpus/skipped_content_type/",
                               "downloader/response_status_count/")):
                table.add_row(key, str(value))
        self.console.print(table)
