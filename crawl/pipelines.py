"""Item pipeline: documents go to shards that are published during the crawl, not only at its end.

Documents are buffered and written as one shard (temp file, fsync, rename) when the buffer reaches
CORPUS_SHARD_DOCS documents, CORPUS_SHARD_BYTES bytes, or CORPUS_SHARD_SECONDS of age, and at close. Before
a shard is published the frontier journal and open WARC files are synced (see corpus.crawl.state), so a crash at
any point loses only unpublished documents, whose pages the resumed crawl fetches again.
"""

from __future__ import annotations

import time
from typing import Any

from twisted.internet.task import LoopingCall

from corpus.core.document import Document
from corpus.core.io import write_shard
from corpus.crawl.state import CrawlState


class ShardPipeline:
    def __init__(self, crawler: Any) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self.max_docs = settings.getint("CORPUS_SHARD_DOCS", 1000)
        self.max_bytes = settings.getint("CORPUS_SHARD_BYTES", 64 << 20)
        self.max_age = settings.getfloat("CORPUS_SHARD_SECONDS", 60.0)
        self.buffer: list[Document] = []
        self.buffer_bytes = 0
        self.oldest = 0.0
        self.timer: LoopingCall | None = None
        self.state: CrawlState | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> ShardPipeline:
        return cls(crawler)

    def open_spider(self, spider: Any = None) -> None:
        self.state = self.crawler.spider.state
        if self.max_age > 0:
            self.timer = LoopingCall(self._publish_if_old)
            self.timer.start(min(self.max_age / 2, 5.0), now=False)

    def process_item(self, item: dict[str, Any], spider: Any = None) -> dict[str, Any]:
        assert self.state is not None
        stats = self.crawler.stats
        if item["id"] in self.state.doc_ids:
            stats.inc_value("corpus/duplicates/document")
            return item
        self.state.doc_ids.add(item["id"])
        doc = Document(item["id"], item["text"], item["metadata"])
        if not self.buffer:
            self.oldest = time.monotonic()
        self.buffer.append(doc)
        self.buffer_bytes += len(doc.text) + len(doc.metadata.get("html") or "")
        stats.inc_value("corpus/documents")
        if len(self.buffer) >= self.max_docs or self.buffer_bytes >= self.max_bytes:
            self.publish()
        return item

    def _publish_if_old(self) -> None:
        if self.buffer and time.monotonic() - self.oldest >= self.max_age:
            self.publish()

    def publish(self) -> None:
        """Write the buffer as one shard, atomically, after making what it refers to durable."""
        assert self.state is not None
        if not self.buffer:
            return
        self.state.sync()
        info = write_shard(self.state.next_shard_path(), self.buffer)
        urls = [u for doc in self.buffer for u in (doc.metadata.get("url"), doc.metadata.get("requested_url")) if u]
        self.state.published(info, urls)
        self.crawler.stats.inc_value("corpus/shards")
        self.crawler.stats.set_value("corpus/documents_published", sum(s.documents for s in self.state.shards))
        self.buffer, self.buffer_bytes = [], 0

    def close_spider(self, spider: Any = None) -> None:
        if self.timer is not None and self.timer.running:
            self.timer.stop()
        self.publish()
        if self.state is not None:
            self.state.sync()
            if not self.state.shards:
                self.state.write_manifest()  # an empty crawl still leaves a readable, empty manifest
