"""What a crawl has done so far, kept so that a crawl killed at any moment (SIGINT or SIGKILL) resumes with
every page exactly once in its output.

Two things are durable: published shards (written atomically; a page whose document is in one is done)
and the frontier journal, an append-only log of every page scheduled and every page that finished without
a document. The journal is fsynced before each shard is published, so the links of every published page
are on disk before the page counts as done. Scrapy's own JOBDIR is not used: it saves its queue only at a
clean shutdown, so after SIGKILL it would lose the frontier.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from corpus.core.errors import CorpusError
from corpus.core.io import (
    FORMATS,
    ShardInfo,
    clean_temp_files,
    has_manifest,
    read_manifest,
    read_shard,
    sha256_file,
    write_manifest,
)
from corpus.crawl.urls import canonicalize


class Journal:
    """JSON lines: {"s": url, "d": depth} when a page is scheduled, {"f": url} when it finished without a
    document. Every prefix of the file is consistent, so a torn last line (SIGKILL) loses only that line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.scheduled: dict[str, int] = {}
        self.finished: set[str] = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        torn = False
        if path.exists():
            with open(path, "rb") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        torn = True
                        continue
                    if "s" in record:
                        self.scheduled.setdefault(record["s"], int(record.get("d", 0)))
                    elif "f" in record:
                        self.finished.add(record["f"])
        self.handle = open(path, "ab", buffering=1 << 16)
        if torn or (path.stat().st_size and not _ends_with_newline(path)):
            self.handle.write(b"\n")  # never glue a new record onto a torn one

    def schedule(self, url: str, depth: int) -> None:
        self.scheduled.setdefault(url, depth)
        self.handle.write(json.dumps({"s": url, "d": depth}).encode() + b"\n")

    def finish(self, url: str) -> None:
        self.finished.add(url)
        self.handle.write(json.dumps({"f": url}).encode() + b"\n")

    def sync(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        if not self.handle.closed:
            self.sync()
            self.handle.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _published_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id, metadata) of every document in a shard, without loading texts where the format allows."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["id", "metadata"])
        for doc_id, meta in zip(table.column("id").to_pylist(), table.column("metadata").to_pylist(), strict=True):
            yield doc_id, json.loads(meta) if isinstance(meta, str) and meta else (meta or {})
    else:
        for doc in read_shard(path):
            yield doc.id, doc.metadata


class CrawlState:
    """Published shards, documents already written, and (with a job dir) the frontier journal."""

    def __init__(self, out: str | os.PathLike, job_dir: str | os.PathLike | None, fmt: str = "parquet",
                 prefix: str = "crawl") -> None:
        if fmt not in FORMATS:
            raise CorpusError(f"unknown shard format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.data = Path(out) / "data"
        self.fmt = fmt
        self.prefix = prefix
        self.data.mkdir(parents=True, exist_ok=True)
        clean_temp_files(self.data)
        self.journal = Journal(Path(job_dir) / "frontier.jsonl") if job_dir else None
        self.sync_hooks: list[Callable[[], None]] = []
        self.shards: list[ShardInfo] = []
        self.doc_ids: set[str] = set()
        self.doc_urls: set[str] = set()
        self._recover_shards()
        self.done_urls: set[str] = self.doc_urls | (self.journal.finished if self.journal else set())

    def _recover_shards(self) -> None:
        """Read back published shards; add any the manifest missed (killed between rename and manifest)."""
        known: dict[str, ShardInfo] = {}
        if has_manifest(self.data):
            for entry in read_manifest(self.data).get("shards", []):
                known[entry["name"]] = ShardInfo(**entry)
        pattern = re.compile(rf"^{re.escape(self.prefix)}-(\d+)(\.parquet|\.jsonl|\.jsonl\.gz)$")
        self.next_index = 0
        for path in sorted(self.data.iterdir()):
            match = pattern.match(path.name)
            if not match:
                continue
            self.next_index = max(self.next_index, int(match.group(1)) + 1)
            count = 0
            for doc_id, meta in _published_records(path):
                count += 1
                self.doc_ids.add(doc_id)
                for key in ("url", "requested_url"):
                    if meta.get(key):
                        self.doc_urls.add(canonicalize(meta[key]))
            info = known.get(path.name)
            if info is None or info.documents != count:
                info = ShardInfo(path.name, count, sha256_file(path), path.stat().st_size)
            self.shards.append(info)
        if self.shards:
            self.write_manifest()

    def pending(self) -> list[tuple[str, int]]:
        """Pages scheduled by an earlier run that have no document and did not finish: fetch them again."""
        if self.journal is None:
            return []
        todo = [(url, depth) for url, depth in self.journal.scheduled.items() if url not in self.done_urls]
        return sorted(todo, key=lambda item: item[1])  # stable: keeps discovery order within a depth

    def scheduled(self, url: str, depth: int) -> None:
        if self.journal is not None:
            self.journal.schedule(url, depth)

    def finished(self, url: str) -> None:
        self.done_urls.add(url)
        if self.journal is not None:
            self.journal.finish(url)

    def published(self, info: ShardInfo, urls: list[str]) -> None:
        self.shards.append(info)
        self.doc_urls.update(urls)
        self.done_urls.update(urls)
        self.write_manifest()

    def next_shard_path(self) -> Path:
        path = self.data / f"{self.prefix}-{self.next_index:05d}{FORMATS[self.fmt]}"
        self.next_index += 1
        return path

    def sync(self) -> None:
        """Make everything a published shard may refer to durable: the journal, open WARC files."""
        for hook in self.sync_hooks:
            hook()
        if self.journal is not None:
            self.journal.sync()

    def write_manifest(self) -> None:
        write_manifest(self.data, self.shards, format=self.fmt)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
