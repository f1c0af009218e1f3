"""Shard readers and writers (Parquet, JSONL, JSONL.gz), atomic writes and per-folder manifests.

Shards hold one document per row: `id`, `text`, `metadata` (a JSON object in JSONL; a JSON string
in Parquet, so shards whose metadata keys differ still share one schema and load together with
`datasets.load_dataset`). Extra top-level fields (`url`, ...) in input records go into metadata.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from corpus.core.document import Document
from corpus.core.errors import CorpusError

FORMATS = {"parquet": ".parquet", "jsonl": ".jsonl", "jsonl.gz": ".jsonl.gz"}
# What we read, as users lay it out: JSON lines under any of its names, compressed or not, JSON arrays, Parquet.
_JSON_NAMES = (".jsonl", ".ndjson", ".json")
SHARD_SUFFIXES = (".parquet", *(name + z for name in _JSON_NAMES for z in ("", ".gz", ".zst")))
# Hidden, so `datasets.load_dataset("parquet", data_dir="OUT/data")` does not take it for a data file.
MANIFEST = ".manifest.json"
LEGACY_MANIFEST = "manifest.json"  # folders written before 0.2; still read
# Files of ours that sit beside shards and are never input records.
NOT_SHARDS = {LEGACY_MANIFEST, "stats.json", "crawl_stats.json", "crawl_config.json", "dry_run.json",
              "pretrain_config.json", "config.json"}
# Folders of a run that hold no input: rejected documents, quarantined records, work files.
NOT_INPUT_DIRS = {"rejected", "quarantine", "errors", "report"}


@dataclass(slots=True)
class Malformed:
    """A record (or a whole file) that could not be read; kept so nothing is silently lost."""

    path: str
    line: int | None
    error: str
    raw: str = ""

    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass(slots=True)
class ShardInfo:
    name: str
    documents: int
    sha256: str
    bytes: int


def is_shard(path: Path) -> bool:
    return (path.is_file() and path.name.endswith(SHARD_SUFFIXES) and not path.name.startswith((".", "_"))
            and path.name not in NOT_SHARDS)


def list_shards(folder: str | os.PathLike) -> list[Path]:
    """Shards under `folder`, in sub-folders too (`en/`, `fr/deep/`), sorted by path; a run folder (with a `data/`
    and no shards of its own at the top) is read through its `data/`. Hidden and `_` folders, and a run's
    `rejected/`, `quarantine/`, `errors/` and `report/`, are skipped."""
    root = Path(folder)
    if not root.exists():
        raise CorpusError(f"{root}: input folder does not exist")
    if root.is_file():
        if is_shard(root) or (root.name.endswith(SHARD_SUFFIXES) and root.is_file()):
            return [root]
        raise CorpusError(f"{root}: not a shard (expected {', '.join(SHARD_SUFFIXES)})")
    top = [p for p in root.iterdir() if is_shard(p)]
    if not top and (root / "data").is_dir():
        root = root / "data"
    shards = []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts[:-1]
        if any(part.startswith((".", "_")) or part in NOT_INPUT_DIRS for part in parts):
            continue
        if is_shard(path):
            shards.append(path)
    if not shards:
        raise CorpusError(f"{Path(folder)}: no shards found (expected files ending in {', '.join(SHARD_SUFFIXES)}, "
                          "in the folder or its sub-folders)")
    return shards


def _raise_malformed(bad: Malformed) -> None:
    raise CorpusError(f"{bad.where()}: {bad.error}")


Fields = dict[str, str]  # {"text": "content", "id": "doc_id"}: where a record keeps its text and id


def read_shard(
    path: str | os.PathLike, on_malformed: Callable[[Malformed], None] | None = None, fields: Fields | None = None
) -> Iterator[Document]:
    """Stream documents from one shard. Bad records go to `on_malformed` (default: raise CorpusError).

    `fields` names the record fields holding the text and id when they are not `text` and `id`. A file whose
    records lack the text field is reported once, for the whole file, with the fields it does have.
    """
    path = Path(path)
    report = on_malformed or _raise_malformed
    if path.name.endswith(".parquet"):
        yield from read_parquet(path, report, fields=fields)
    else:
        yield from _read_jsonl(path, report, fields)


def _open_text(path: Path) -> Any:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.name.endswith(".zst"):
        import pyarrow as pa

        return io.BufferedReader(pa.input_stream(str(path), compression="zstd"))
    return open(path, "rb")


def _read_jsonl(path: Path, report: Callable[[Malformed], None], fields: Fields | None = None) -> Iterator[Document]:
    line_no = 0
    text_field = (fields or {}).get("text", "text")
    try:
        with _open_text(path) as handle:
            head = handle.peek(64)[:64].lstrip(b"\xef\xbb\xbf \t\r\n") if hasattr(handle, "peek") else b""
            if path.name.endswith((".json", ".json.gz", ".json.zst")) and head.startswith(b"["):
                yield from _read_json_array(path, handle.read(), report, fields)
                return
            first = True
            for line_no, raw in enumerate(handle, start=1):
                if first and raw.strip():
                    first = False
                    missing = _missing_text_field(raw, text_field)
                    if missing is not None:
                        report(Malformed(str(path), None, missing))
                        return
                doc = parse_jsonl_line(path, line_no, raw, report, fields)
                if doc is not None:
                    yield doc
    except (OSError, EOFError, zlib.error) as err:
        report(Malformed(str(path), line_no + 1, f"unreadable after line {line_no}: {err}"))


def _missing_text_field(raw: bytes, text_field: str) -> str | None:
    """A file-level message when the first record is an object without the text field (so every record is)."""
    try:
        record = json.loads(raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or text_field in record:
        return None
    return _no_text_message(text_field, list(record), "field")


def _no_text_message(text_field: str, names: list[str], what: str) -> str:
    strings = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
    guess = next((n for n in ("content", "body", "raw_content", "document", "sentence") if n in names), None)
    hint = f"; use --text-field {guess}" if guess else "; use --text-field NAME"
    return f"no '{text_field}' {what} in this file's records (they have: {strings}){hint}; file skipped"


def _read_json_array(path: Path, data: bytes, report: Callable[[Malformed], None],
                     fields: Fields | None) -> Iterator[Document]:
    try:
        records = json.loads(data.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        report(Malformed(str(path), None, f"not a JSON array of records nor JSON lines: {err}"))
        return
    text_field = (fields or {}).get("text", "text")
    if records and isinstance(records[0], dict) and text_field not in records[0]:
        report(Malformed(str(path), None, _no_text_message(text_field, list(records[0]), "field")))
        return
    for number, record in enumerate(records, start=1):
        try:
            if not isinstance(record, dict):
                raise ValueError(f"expected a JSON object, got {type(record).__name__}")
            yield Document.from_record(_renamed(record, fields))
        except ValueError as err:
            report(Malformed(str(path), number, f"malformed record (item {number}): {err}", str(record)[:2000]))


def _renamed(record: dict[str, Any], fields: Fields | None) -> dict[str, Any]:
    """The record with `fields` (e.g. content -> text) moved to the names Document expects."""
    if not fields:
        return record
    record = dict(record)
    for target, source in fields.items():
        if source != target and source in record:
            if target in record:
                record[f"original_{target}"] = record[target]
            record[target] = record.pop(source)
    return record


def parse_jsonl_line(
    path: Path, line_no: int, raw: bytes, report: Callable[[Malformed], None], fields: Fields | None = None
) -> Document | None:
    """One JSONL line as a Document; None for a blank line or a bad record (reported with file and line)."""
    if line_no == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark (Windows editors) is not data
    if not raw.strip():
        return None
    try:
        record = json.loads(raw.decode("utf-8"))
        if not isinstance(record, dict):
            raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        return Document.from_record(_renamed(record, fields))
    except UnicodeDecodeError as err:
        report(Malformed(str(path), line_no, f"invalid UTF-8 ({err.reason})", _preview(raw)))
    except ValueError as err:  # JSONDecodeError is a ValueError
        report(Malformed(str(path), line_no, f"malformed record: {err}", _preview(raw)))
    return None


def _preview(raw: bytes) -> str:
    return raw[:2000].decode("utf-8", "replace")


def read_parquet(
    path: Path, report: Callable[[Malformed], None], row_groups: list[int] | None = None,
    fields: Fields | None = None,
) -> Iterator[Document]:
    """All rows, or only `row_groups` (a contiguous run); row numbers in reports are those of the whole file."""
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a corrupt footer
        report(Malformed(str(path), None, f"unreadable Parquet file: {err}"))
        return
    text_field = (fields or {}).get("text", "text")
    columns = handle.schema_arrow.names
    if text_field not in columns:
        if not row_groups or row_groups[0] == 0:  # a split file is reported once, by its first piece
            report(Malformed(str(path), None, _no_text_message(text_field, columns, "column")))
        return
    row = sum(handle.metadata.row_group(i).num_rows for i in range(row_groups[0])) if row_groups else 0
    try:
        for batch in handle.iter_batches(batch_size=1024, row_groups=row_groups):
            for record in batch.to_pylist():
                row += 1
                meta = record.get("metadata")
                if isinstance(meta, str):
                    try:
                        record["metadata"] = json.loads(meta) if meta else {}
                    except ValueError as err:
                        report(Malformed(str(path), row, f"metadata is not JSON: {err}", str(record)[:2000]))
                        continue
                try:
                    yield Document.from_record(_renamed(record, fields))
                except ValueError as err:
                    report(Malformed(str(path), row, f"malformed record: {err}", str(record)[:2000]))
    except OSError as err:
        report(Malformed(str(path), row + 1, f"unreadable Parquet data after row {row}: {err}"))


def read_documents(
    folder: str | os.PathLike, on_malformed: Callable[[Malformed], None] | None = None, fields: Fields | None = None
) -> Iterator[Document]:
    for shard in list_shards(folder):
        yield from read_shard(shard, on_malformed, fields)


# --- writing -----------------------------------------------------------------------------------


def _encode_jsonl(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8", "surrogatepass")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file beside `path`, fsync, then rename: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n").encode())


class ShardWriter:
    """Writes rows into shards named `{prefix}-{i:03d}{suffix}` under `folder`, rolling every `max_docs`.

    Every shard is written to a hidden temp file and only renamed into place by `close()`, so a run
    killed part-way leaves no partial shard visible; `abort()` (or an exception in a `with` block)
    removes the temp files.
    """

    def __init__(
        self, folder: str | os.PathLike, prefix: str, fmt: str = "parquet", max_docs: int | None = 100_000
    ) -> None:
        if fmt not in FORMATS:
            raise CorpusError(f"unknown shard format {fmt!r}; choose one of {', '.join(FORMATS)}")
        self.folder = Path(folder)
        self.prefix = prefix
        self.fmt = fmt
        self.max_docs = max_docs
        self._rows: list[dict[str, Any]] = []
        self._jsonl: io.BufferedWriter | gzip.GzipFile | None = None
        self._raw: io.BufferedWriter | None = None
        self._count = 0
        self._pending: list[tuple[Path, Path, int]] = []  # (temp, final, documents)

    def _paths(self) -> tuple[Path, Path]:
        name = f"{self.prefix}-{len(self._pending):03d}{FORMATS[self.fmt]}"
        return self.folder / f".{name}.tmp-{os.getpid()}", self.folder / name

    def write(self, doc: Document, **extra: Any) -> None:
        record = doc.to_record()
        record.update(extra)
        if self.fmt == "parquet":
            record["metadata"] = json.dumps(record["metadata"], ensure_ascii=False, default=str)
            self._rows.append(record)
        else:
            if self._jsonl is None:
                self._open_jsonl()
            self._jsonl.write(_encode_jsonl(record))
        self._count += 1
        if self.max_docs and self._count >= self.max_docs:
            self._finish_file()

    def _open_jsonl(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp, _ = self._paths()
        self._raw = open(tmp, "wb")
        # mtime=0 keeps gzip output byte-identical across runs.
        self._jsonl = (gzip.GzipFile(filename="", fileobj=self._raw, mode="wb", mtime=0)
                       if self.fmt == "jsonl.gz" else self._raw)

    def _finish_file(self) -> None:
        if self._count == 0:
            return
        tmp, final = self._paths()
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            self.folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(self._rows), tmp, compression="zstd")
            self._rows = []
        else:
            assert self._jsonl is not None and self._raw is not None
            if self._jsonl is not self._raw:
                self._jsonl.close()
            self._raw.flush()
            os.fsync(self._raw.fileno())
            self._raw.close()
            self._jsonl = self._raw = None
        self._pending.append((tmp, final, self._count))
        self._count = 0

    def close(self) -> list[ShardInfo]:
        """Finish and publish every shard; returns what was written (for the manifest)."""
        self._finish_file()
        infos = []
        for tmp, final, count in self._pending:
            os.replace(tmp, final)
            infos.append(ShardInfo(final.name, count, sha256_file(final), final.stat().st_size))
        self._pending = []
        return infos

    def abort(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._jsonl = self._raw = None
        tmp, _ = self._paths()
        for path in [p for p, _, _ in self._pending] + [tmp]:
            path.unlink(missing_ok=True)
        self._pending, self._rows, self._count = [], [], 0

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_shard(path: str | os.PathLike, docs: Iterable[Document]) -> ShardInfo:
    """Write one shard at exactly `path` (format from its suffix), atomically."""
    path = Path(path)
    fmt = next((f for f in ("jsonl.gz", "parquet", "jsonl") if path.name.endswith(FORMATS[f])), None)
    if fmt is None:
        raise CorpusError(f"{path}: unknown shard suffix (expected {', '.join(SHARD_SUFFIXES)})")
    writer = ShardWriter(path.parent, f".{path.name}", fmt, max_docs=None)
    try:
        for doc in docs:
            writer.write(doc)
        infos = writer.close()
    except BaseException:
        writer.abort()
        raise
    if not infos:
        raise CorpusError(f"{path}: refusing to write an empty shard")
    os.replace(path.parent / infos[0].name, path)
    return ShardInfo(path.name, infos[0].documents, infos[0].sha256, infos[0].bytes)


# --- manifests ---------------------------------------------------------------------------------


def write_manifest(folder: str | os.PathLike, shards: Iterable[ShardInfo], **extra: Any) -> dict[str, Any]:
    """Record every shard's name, document count and checksum, so consumers can verify a folder."""
    infos = sorted(shards, key=lambda s: s.name)
    manifest = {
        "shards": [asdict(s) for s in infos],
        "documents": sum(s.documents for s in infos),
        **extra,
    }
    atomic_write_json(Path(folder) / MANIFEST, manifest)
    (Path(folder) / LEGACY_MANIFEST).unlink(missing_ok=True)  # ours, from before 0.2: one manifest per folder
    return manifest


CARD_MARKER = "<!-- written by corpus; `corpus report` replaces this card: remove this line to keep your edits -->"


def write_dataset_card(folder: str | os.PathLike, fmt: str, pretty_name: str | None = None) -> bool:
    """A minimal Hugging Face dataset card (`README.md`) so `datasets.load_dataset("OUT")` reads `data/` only (not
    `rejected/`). Written only when the folder has no README.md: `corpus report` writes the full card over it."""
    path = Path(folder) / "README.md"
    if path.exists():
        return False
    suffix = FORMATS.get(fmt, ".parquet")
    name = pretty_name or Path(folder).resolve().name
    card = (f"---\npretty_name: {json.dumps(name)}\nconfigs:\n  - config_name: default\n    data_files:\n"
            f"      - split: train\n        path: data/*{suffix}\n---\n\n# {name}\n\n"
            f"{CARD_MARKER}\n\nWritten by corpus. `corpus report` on this folder writes the full dataset card here.\n")
    atomic_write_bytes(path, card.encode())
    return True


def manifest_path(folder: str | os.PathLike) -> Path:
    """The folder's manifest file: `.manifest.json`, or `manifest.json` in folders written before 0.2."""
    folder = Path(folder)
    legacy = folder / LEGACY_MANIFEST
    return legacy if not (folder / MANIFEST).exists() and legacy.exists() else folder / MANIFEST


def has_manifest(folder: str | os.PathLike) -> bool:
    return manifest_path(folder).is_file()


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    path = manifest_path(folder)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise CorpusError(f"{path}: no manifest") from err
    except ValueError as err:
        raise CorpusError(f"{path}: manifest is not valid JSON ({err})") from err


def verify_manifest(folder: str | os.PathLike) -> list[str]:
    """Problems found comparing a folder with its manifest (empty list: all shards present and intact)."""
    folder = Path(folder)
    problems = []
    for shard in read_manifest(folder)["shards"]:
        path = folder / shard["name"]
        if not path.exists():
            problems.append(f"{path}: missing")
        elif sha256_file(path) != shard["sha256"]:
            problems.append(f"{path}: checksum mismatch")
    return problems


def clean_temp_files(folder: str | os.PathLike, prefix: str = "") -> None:
    """Remove temp files left by a killed writer (hidden `.name.tmp-PID` files)."""
    folder = Path(folder)
    if folder.is_dir():
        for path in folder.glob(f".{prefix}*.tmp-*"):
            path.unlink(missing_ok=True)
