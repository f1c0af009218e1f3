"""Item pipeline that writes crawled documents to shards and, at the end, the manifest and stats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corpus.document import Document
from corpus.io import ShardWriter, atomic_write_json, write_manifest


class ShardPipeline:
    def __init__(self, out_dir: str, fmt: str, max_docs: int) -> None:
        self.out_dir = Path(out_dir)
        self.fmt = fmt
        self.max_docs = max_docs
        self.writer: ShardWriter | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> ShardPipeline:
        settings = crawler.settings
        pipeline = cls(settings.get("CORPUS_OUTPUT"), settings.get("CORPUS_FORMAT", "parquet"),
                       settings.getint("CORPUS_SHARD_DOCS", 10_000))
        pipeline.crawler = crawler
        return pipeline

    def open_spider(self, spider: Any = None) -> None:
        self.writer = ShardWriter(self.out_dir / "data", "crawl", self.fmt, self.max_docs)

    def process_item(self, item: dict[str, Any], spider: Any = None) -> dict[str, Any]:
        assert self.writer is not None
        self.writer.write(Document(item["id"], item["text"], item["metadata"]))
        return item

    def close_spider(self, spider: Any = None) -> None:
        assert self.writer is not None
        shards = self.writer.close()
        write_manifest(self.out_dir / "data", shards, format=self.fmt)
        stats = {k: (v.isoformat() if hasattr(v, "isoformat") else v)
                 for k, v in sorted(self.crawler.stats.get_stats().items())}
        atomic_write_json(self.out_dir / "crawl_stats.json", stats)
