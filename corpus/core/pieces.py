"""Large input shards split into contiguous pieces, so one big file can keep several workers busy.

A piece of a JSONL file is a byte range: it holds the lines that *start* inside the range, so every line
belongs to exactly one piece. A piece of a Parquet file is a run of row groups. Line and row numbers in
quarantine reports stay those of the whole file. Gzipped JSONL cannot be entered in the middle: it is
never split. Pieces are contiguous and in file order, so the output order equals the input order and the
result is the same whatever the piece size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

from corpus.core.document import Document
from corpus.core.io import Fields, Malformed, parse_jsonl_line, read_parquet

CHUNK = 1 << 20


def plan(path: Path, piece_bytes: int | None) -> int:
    """How many pieces to cut `path` into (1: read whole)."""
    if not piece_bytes or path.name.endswith((".gz", ".zst", ".json")):
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


def read_piece(path: str | Path, index: int, parts: int, report: Callable[[Malformed], None],
               fields: Fields | None = None) -> Iterator[Document]:
    path = Path(path)
    if path.name.endswith(".parquet"):
        yield from _parquet_piece(path, index, parts, report, fields)
    else:
        yield from _jsonl_piece(path, index, parts, report, fields)


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


def _jsonl_piece(path: Path, index: int, parts: int, report: Callable[[Malformed], None],
                 fields: Fields | None = None) -> Iterator[Document]:
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
            doc = parse_jsonl_line(path, line_no, raw, report, fields)
            if doc is not None:
                yield doc


def _parquet_piece(path: Path, index: int, parts: int, report: Callable[[Malformed], None],
                   fields: Fields | None = None) -> Iterator[Document]:
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    groups = handle.num_row_groups
    mine = list(range(groups * index // parts, groups * (index + 1) // parts))
    if mine:
        yield from read_parquet(path, report, row_groups=mine, fields=fields)
