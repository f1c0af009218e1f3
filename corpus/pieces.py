"""Large input shards split into contiguous pieces, so one big file can keep several workers busy.

A piece of a JSONL file is a byte range: it holds the lines that *start* inside the range, so every line
belongs to exactly one piece. A piece of a Parquet file is a run of row groups. Line and row numbers in
quarantine reports stay those of the whole file. Gzipped JSONL cannot be entered in the middle: it is
never split. Pieces are contiguous and in file order, so the output order equals the input order and the
result is the same whatever the piece size.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

from corpus.document import Document
from corpus.io import Malformed

CHUNK = 1 << 20


def plan(path: Path, piece_bytes: int | None) -> int:
    """How many pieces to cut `path` into (1: read whole)."""
    if not piece_bytes or path.name.endswith(".gz"):
        return 1
    size = path.stat().st_size
    if size <= piece_bytes:
        return 1
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            groups = pq.ParquetFile(path).num_row_groups
        except Exception:  # unreadable: read whole, so the reader reports it once
            return 1
        return max(1, min(groups, math.ceil(size / piece_bytes)))
    return math.ceil(size / piece_bytes)


def read_piece(path: str | Path, index: int, parts: int, report: Callable[[Malformed], None]) -> Iterator[Document]:
    path = Path(path)
    if path.name.endswith(".parquet"):
        yield from _parquet_piece(path, index, parts, report)
    else:
        yield from _jsonl_piece(path, index, parts, report)


def _count_newlines(handle, end: int) -> int:  # noqa: ANN001 - a binary file
    handle.seek(0)
    count, position = 0, 0
    while position < end:
        block = handle.read(min(CHUNK, end - position))
        if not block:
            break
        count += block.count(b"\n")
        position += len(block)
    return count


def _jsonl_piece(path: Path, index: int, parts: int, report: Callable[[Malformed], None]) -> Iterator[Document]:
    size = path.stat().st_size
    start, end = size * index // parts, size * (index + 1) // parts
    with open(path, "rb") as handle:
        line_no = _count_newlines(handle, start)  # lines that started before `start`
        handle.seek(start)
        position = start
        if start > 0:
            handle.seek(start - 1)
            if handle.read(1) != b"\n":  # `start` is inside a line: it belongs to the previous piece
                position = start + len(handle.readline())
                line_no += 1  # the skipped line: its newline lies after `start`, so it was not counted
        while position < end:
            raw = handle.readline()
            if not raw:
                break
            position += len(raw)
            line_no += 1
            if not raw.strip():
                continue
            preview = raw[:2000].decode("utf-8", "replace")
            try:
                record = json.loads(raw.decode("utf-8"))
                if not isinstance(record, dict):
                    raise ValueError(f"expected a JSON object, got {type(record).__name__}")
                yield Document.from_record(record)
            except UnicodeDecodeError as err:
                report(Malformed(str(path), line_no, f"invalid UTF-8 ({err.reason})", preview))
            except ValueError as err:
                report(Malformed(str(path), line_no, f"malformed record: {err}", preview))


def _parquet_piece(path: Path, index: int, parts: int, report: Callable[[Malformed], None]) -> Iterator[Document]:
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    groups = handle.num_row_groups
    mine = list(range(groups * index // parts, groups * (index + 1) // parts))
    if not mine:
        return
    row = sum(handle.metadata.row_group(i).num_rows for i in range(mine[0]))
    try:
        for batch in handle.iter_batches(row_groups=mine, batch_size=1024):
            for record in batch.to_pylist():
                row += 1
                meta = record.get("metadata")
                try:
                    if isinstance(meta, str):
                        record["metadata"] = json.loads(meta) if meta else {}
                    yield Document.from_record(record)
                except ValueError as err:
                    report(Malformed(str(path), row, f"malformed record: {err}", str(record)[:2000]))
    except OSError as err:
        report(Malformed(str(path), row + 1, f"unreadable Parquet data after row {row}: {err}"))
