"""The token store: curated shards tokenised once into compact binary shards that training streams from.

    corpus train tokenize --data runs/x/curated -o runs/x/tokens [--tokenizer DIR | --vocab-size N]

Layout of a store folder:
    tokenizer/                 the WordPiece tokenizer every shard was made with (a `BertTokenizerFast` folder)
    part-00000.train.ids       token ids of one input shard's training documents, uint16 (or uint32), raw
    part-00000.train.npz       `seg_lens` (tokens per segment) and `doc_segs` (segments per document)
    part-00000.eval.*          the same for the documents held out for evaluation
    manifest.json              written last: the key (format, tokenizer hash, input checksums, settings),
                               every shard's counts and sha256, totals per split
    _work/                     per-shard completion markers (how an interrupted run resumes)

Documents are split into sentences (the segments that next-sentence prediction pairs) and tokenised once,
one task per input shard, by the same executors that run curation, so `workers` and Ray work here too. A
second run with the same key reuses the store; a changed input or tokenizer is detected, never silently mixed.
The tokenizer is trained on a seeded sample of the training documents (not on everything: its cost and memory
would grow with the corpus), chosen by a hash of each document's id, as is the held-out split.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corpus.core.errors import CorpusError
from corpus.core.io import (
    atomic_write_bytes,
    atomic_write_json,
    list_shards,
    read_manifest,
    read_shard,
    sha256_file,
)
from corpus.core.pieces import plan, read_piece

FORMAT = "corpus-tokens/1"
MANIFEST = "manifest.json"
SPLITS = ("train", "eval")
MAX_SEGMENT_TOKENS = 512  # longer "sentences" (lists, text without punctuation) are cut; pairs cut further
BLOCK_DOCS = 1000  # documents tokenised per batch call (the Rust tokenizer parallelises within a batch)


@dataclass
class StoreSettings:
    """Everything besides the inputs and the tokenizer that changes what a store holds."""

    eval_fraction: float = 0.05  # documents held out for evaluation (none for corpora under 10 documents)
    max_eval_docs: int = 10_000  # ...at most this many (expected), whatever the corpus size
    max_segment_tokens: int = MAX_SEGMENT_TOKENS
    seed: int = 0  # the held-out split and the tokenizer's sample
    piece_mb: int = 256  # input shards larger than this are tokenised in pieces, one task each (as curation)

    def check(self) -> None:
        if not 0 <= self.eval_fraction < 1:
            raise CorpusError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if self.max_eval_docs < 0 or self.max_segment_tokens < 8 or self.piece_mb < 1:
            raise CorpusError("max_eval_docs must be >= 0, max_segment_tokens >= 8 and piece_mb >= 1")


def is_store(folder: str | os.PathLike) -> bool:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("format") == FORMAT
    except ValueError:
        return False


def read_store_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CorpusError(f"{path}: not a token store manifest ({err})") from err
    if manifest.get("format") != FORMAT:
        raise CorpusError(f"{path}: not a token store (format {manifest.get('format')!r}, expected {FORMAT})")
    return manifest


# --- what a store depends on -------------------------------------------------------------------------


def _unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) from `parts`: stable across runs, machines and Python versions."""
    digest = hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")).digest()
    return struct.unpack(">Q", digest[:8])[0] / 2**64


def input_fingerprint(paths: list[Path]) -> list[dict[str, Any]]:
    """Per input shard: name, size and sha256 from its folder's manifest (curate and crawl write one), else
    its modification time. Cheap: a 100 GB corpus is not read again to know whether it changed."""
    fingerprint = []
    manifests: dict[Path, dict[str, str]] = {}
    for path in paths:
        folder = path.parent
        if folder not in manifests:
            try:
                listed = read_manifest(folder).get("shards", [])
                manifests[folder] = {Path(s["name"]).name: s["sha256"] for s in listed if "sha256" in s}
            except (CorpusError, KeyError, TypeError, AttributeError):
                manifests[folder] = {}
        stat = path.stat()
        entry: dict[str, Any] = {"name": path.name, "bytes": stat.st_size}
        checksum = manifests[folder].get(path.name)
        if checksum:
            entry["sha256"] = checksum
        else:
            entry["mtime_ns"] = stat.st_mtime_ns
        fingerprint.append(entry)
    return fingerprint


def count_documents(paths: list[Path]) -> int:
    """Documents in `paths` without parsing them: manifests, Parquet footers, or newline counts."""
    import gzip

    import pyarrow.parquet as pq

    total = 0
    for path in paths:
        if path.name.endswith(".parquet"):
            total += pq.ParquetFile(path).metadata.num_rows
        else:
            opener = gzip.open if path.name.endswith(".gz") else open
            with opener(path, "rb") as handle:
                total += sum(block.count(b"\n") for block in iter(lambda h=handle: h.read(1 << 22), b""))
    return total


def eval_rate(documents: int, settings: StoreSettings) -> float:
    """The share of documents held out: `eval_fraction`, capped at `max_eval_docs` documents (expected)."""
    if documents < 10 or settings.eval_fraction <= 0:
        return 0.0
    return min(settings.eval_fraction, settings.max_eval_docs / documents)


def is_eval(doc_id: str, rate: float, seed: int) -> bool:
    return rate > 0 and _unit_hash("eval", seed, doc_id) < rate


def tokenizer_sha256(folder: str | os.PathLike) -> str:
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise CorpusError(f"{folder}: not a fast-tokenizer folder (no tokenizer.json)")
    return sha256_file(path)


def store_key(inputs: list[dict[str, Any]], tokenizer_hash: str, settings: StoreSettings, rate: float) -> str:
    blob = json.dumps({"format": FORMAT, "inputs": inputs, "tokenizer": tokenizer_hash,
                       "settings": asdict(settings), "eval_rate": rate}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# --- the tokenizer, trained on a sample --------------------------------------------------------------


def sample_texts(paths: list[Path], *, rate: float, docs: int, max_bytes: int, eval_share: float,
                 seed: int) -> Iterator[str]:
    """Training documents chosen by a seeded hash of their id (at `rate`), until `docs` or `max_bytes`."""
    taken = size = 0
    for path in paths:
        for doc in read_shard(path, on_malformed=lambda bad: None):
            if is_eval(doc.id, eval_share, seed) or _unit_hash("sample", seed, doc.id) >= rate:
                continue
            if not doc.text.strip():
                continue
            yield doc.text
            taken += 1
            size += len(doc.text)
            if taken >= docs or size >= max_bytes:
                return


def train_sampled_tokenizer(paths: list[Path], out: Path, *, documents: int, vocab_size: int,
                            sample_docs: int, sample_bytes: int, eval_share: float, seed: int,
                            progress: bool = True, **options: Any) -> None:
    """Train WordPiece on a seeded sample and save it to `out` (atomically: a temp folder, then rename)."""
    from rich.console import Console

    from corpus.train.tokenizer import train_tokenizer

    rate = min(1.0, sample_docs / max(1, documents)) if documents else 1.0
    tmp = Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=out.parent))
    status = (Console(stderr=True).status(f"training a {vocab_size:,}-piece WordPiece tokenizer on a sample of "
                                          f"up to {sample_docs:,} documents") if progress
              else contextlib.nullcontext())
    try:
        with status:
            texts = sample_texts(paths, rate=rate, docs=sample_docs, max_bytes=sample_bytes,
                                 eval_share=eval_share, seed=seed)
            try:
                train_tokenizer(texts, tmp, vocab_size=vocab_size, **options)
            except CorpusError as err:
                raise CorpusError(f"{paths[0].parent}: the corpus has no documents with text to train a "
                                  f"tokenizer on ({err}); point --data at curated shards") from err
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- tokenising one shard (runs in a worker) ---------------------------------------------------------


@dataclass
class TokenizeTask:
    """One input shard to tokenise; pickled to the worker (a process or a Ray task)."""

    rank: int
    inputs: list[str]
    out_dir: str
    key: str
    eval_rate: float
    seed: int
    max_segment_tokens: int
    dtype: str
    parallel_tokenizer: bool = True
    piece: tuple[int, int] | None = None  # (index, parts) of a large input shard

    @property
    def label(self) -> str:
        return f"tokenize shard {self.rank} ({', '.join(self.inputs)})"

    @property
    def marker(self) -> Path:
        return Path(self.out_dir) / "_work" / "done" / f"part-{self.rank:05d}.json"


class _SplitWriter:
    """Appends one split's ids to a hidden temp file; `close()` renames it and writes the index."""

    def __init__(self, folder: Path, stem: str, dtype: str) -> None:
        self.final = folder / f"{stem}.ids"
        self.index = folder / f"{stem}.npz"
        self.tmp = folder / f".{stem}.ids.tmp-{os.getpid()}"
        self.handle = open(self.tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        self.digest = hashlib.sha256()
        self.dtype = np.dtype(dtype)
        self.seg_lens: list[np.ndarray] = []
        self.doc_segs: list[int] = []
        self.tokens = 0

    def add(self, ids: np.ndarray, lengths: np.ndarray) -> None:
        """One document: its ids and the lengths of its segments (they sum to len(ids))."""
        data = ids.astype(self.dtype, copy=False).tobytes()
        self.handle.write(data)
        self.digest.update(data)
        self.seg_lens.append(lengths)
        self.doc_segs.append(len(lengths))
        self.tokens += len(ids)

    def close(self) -> dict[str, Any]:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        seg_lens = np.concatenate(self.seg_lens) if self.seg_lens else np.zeros(0, np.uint32)
        buffer = io.BytesIO()
        np.savez(buffer, seg_lens=seg_lens, doc_segs=np.asarray(self.doc_segs, dtype=np.uint32))
        atomic_write_bytes(self.index, buffer.getvalue())
        os.replace(self.tmp, self.final)
        return {"name": self.final.name[: -len(".ids")], "documents": len(self.doc_segs),
                "segments": int(len(seg_lens)), "tokens": int(self.tokens), "sha256": self.digest.hexdigest()}

    def abort(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)


def segment_tokens(texts: list[str], backend: Any, max_segment_tokens: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each text's token ids and the lengths of its segments (sentences, cut at `max_segment_tokens`), from ONE
    tokenizer call over the whole texts; `split_segments` turns them into one array per segment.

    The sentences (`sentence_spans`) are joined with " [SEP] ", which the tokenizer reads as its separator token
    (BERT's own [SEP]); the ids are cut there and the separators dropped. WordPiece never joins pieces across
    whitespace, so the ids equal tokenising each sentence alone, and the tokenizer can skip character offsets:
    fewer instructions than tokenising the raw text and matching offsets to the sentence boundaries (valgrind,
    300 documents: 5.85G vs 7.09G; `transformers`' tokenizer call on the raw texts: 6.05G). A literal "[SEP]"
    in a text becomes a boundary too, never an id inside a segment. A document without any token has no segment.
    """
    from corpus.train.sentences import sentence_spans

    sep = backend.token_to_id("[SEP]")
    if sep is None:
        raise CorpusError("the tokenizer has no [SEP] token: BERT pretraining needs one")
    joined = [" [SEP] ".join([text[a:b] for a, b in sentence_spans(text)]) for text in texts]
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # tokenizers >= 0.21 skips offsets
    documents = []
    for encoding in encode(joined, add_special_tokens=False):
        ids = np.asarray(encoding.ids, dtype=np.int64)
        at_sep = ids == sep
        lengths = np.diff(np.flatnonzero(at_sep), prepend=-1, append=len(ids)) - 1
        lengths = lengths[lengths > 0]
        if len(lengths) and lengths.max() > max_segment_tokens:
            m = max_segment_tokens
            lengths = np.concatenate([[m] * (n // m) + ([n % m] if n % m else []) for n in lengths.tolist()])
        documents.append((ids[~at_sep], lengths.astype(np.uint32)))
    return documents


def split_segments(ids: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """One array of ids per segment."""
    return np.split(ids, np.cumsum(lengths)[:-1]) if len(lengths) else []


def tokenize_shard(task: TokenizeTask) -> dict[str, Any]:
    """Tokenise one input shard into its train and eval token shards; skipped when already done."""
    marker = task.marker
    if marker.exists():
        done = json.loads(marker.read_text())
        if done.get("key") == task.key:
            return {**done, "skipped": True}
    if not task.parallel_tokenizer:  # one process per core already: Rust threads on top would oversubscribe
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    out = Path(task.out_dir)
    backend = Tokenizer.from_file(str(out / "tokenizer" / "tokenizer.json"))
    backend.no_truncation()
    backend.no_padding()
    writers = {split: _SplitWriter(out, f"part-{task.rank:05d}.{split}", task.dtype) for split in SPLITS}
    counts = {"documents_in": 0, "empty": 0, "malformed": 0}
    block: list[tuple[str, str]] = []

    def flush() -> None:
        docs = segment_tokens([text for _, text in block], backend, task.max_segment_tokens)
        for (doc_id, _), (ids, lengths) in zip(block, docs, strict=True):
            if not len(lengths):
                counts["empty"] += 1
                continue
            writers["eval" if is_eval(doc_id, task.eval_rate, task.seed) else "train"].add(ids, lengths)
        block.clear()

    def malformed(_bad: Any) -> None:
        counts["malformed"] += 1

    try:
        for path in task.inputs:
            docs = (read_piece(path, task.piece[0], task.piece[1], malformed) if task.piece
                    else read_shard(path, on_malformed=malformed))
            for doc in docs:
                counts["documents_in"] += 1
                block.append((doc.id, doc.text))
                if len(block) >= BLOCK_DOCS:
                    flush()
        flush()
        shards = {split: writer.close() for split, writer in writers.items()}
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    result = {"key": task.key, "rank": task.rank, "inputs": task.inputs, **counts, "shards": shards}
    atomic_write_json(marker, result)
    return result


# --- the store -----------------------------------------------------------------------------------------


def _dtype_for(vocabulary: int) -> str:
    return "uint16" if vocabulary <= np.iinfo(np.uint16).max + 1 else "uint32"


def _remove_store_files(folder: Path) -> None:
    """Remove what a token store run wrote (and nothing else): its shards, manifest, tokenizer and markers."""
    for path in folder.iterdir():
        name = path.name
        ours = (name.startswith(("part-", ".part-")) and (".train." in name or ".eval." in name)) or name in (
            MANIFEST, "_work", "tokenizer") or name.startswith(".tokenizer-")
        if ours:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def build_token_store(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tokenizer: str | os.PathLike | None = None,
    vocab_size: int = 8000,
    sample_docs: int = 1_000_000,
    sample_bytes: int = 1_000_000_000,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    min_frequency: int = 2,
    settings: StoreSettings | None = None,
    executor: Any = None,
    workers: int | None = None,
    rebuild_stale: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Tokenise the shards in `data` into a token store at `out`; returns its manifest.

    A store whose key matches is reused as it is; an interrupted one resumes shard by shard. A store built
    from other input or another tokenizer is an error, unless `rebuild_stale` (a cache private to one
    training run), which removes only the store's own files and starts again.
    """
    settings = settings or StoreSettings()
    settings.check()
    out = Path(out)
    paths = list_shards(data)
    inputs = input_fingerprint(paths)
    given_hash = tokenizer_sha256(tokenizer) if tokenizer else None
    recipe = _tokenizer_recipe(given_hash, vocab_size, sample_docs, sample_bytes, lowercase, strip_accents,
                               min_frequency)
    if (out / MANIFEST).exists():
        manifest = read_store_manifest(out)
        differs = _differences(manifest, inputs, recipe, settings)
        if not differs:
            return manifest
        if not rebuild_stale:
            raise CorpusError(f"{out}: this token store was built from {' and '.join(differs)}; "
                              "tokenize into a new folder, or remove this one")
        _remove_store_files(out)
    out.mkdir(parents=True, exist_ok=True)
    documents = count_documents(paths)
    rate = eval_rate(documents, settings)

    # The tokenizer: given, left by an interrupted run over the same inputs, or trained on a sample now.
    source = out / "_work" / "tokenizer-source.json"
    recipe = _tokenizer_recipe(given_hash, vocab_size, sample_docs, sample_bytes, lowercase, strip_accents,
                               min_frequency)
    expected_source = {"inputs": inputs, "recipe": recipe, "seed": settings.seed}
    if tokenizer:
        if not (out / "tokenizer").is_dir() or tokenizer_sha256(out / "tokenizer") != given_hash:
            shutil.rmtree(out / "tokenizer", ignore_errors=True)
            shutil.copytree(tokenizer, out / "tokenizer")
    elif not ((out / "tokenizer" / "tokenizer.json").is_file() and source.is_file()
              and json.loads(source.read_text()) == expected_source):
        train_sampled_tokenizer(paths, out / "tokenizer", documents=documents, vocab_size=vocab_size,
                                sample_docs=sample_docs, sample_bytes=sample_bytes, eval_share=rate,
                                seed=settings.seed, progress=progress, lowercase=lowercase,
                                strip_accents=strip_accents, min_frequency=min_frequency)
    atomic_write_json(source, expected_source)
    tok_hash = tokenizer_sha256(out / "tokenizer")
    vocabulary = _vocabulary_size(out / "tokenizer")
    dtype = _dtype_for(vocabulary)
    key = store_key(inputs, tok_hash, settings, rate)

    if executor is None:
        from corpus.core.executors import LocalExecutor

        executor = LocalExecutor(workers=workers or 1, progress=progress)
    parallel = getattr(executor, "workers", 1) == 1
    pieces = [(path, (i, parts) if parts > 1 else None)
              for path in paths for parts in [plan(path, settings.piece_mb * 1_000_000)] for i in range(parts)]
    tasks = [TokenizeTask(rank=rank, inputs=[str(path)], out_dir=str(out), key=key, eval_rate=rate,
                          seed=settings.seed, max_segment_tokens=settings.max_segment_tokens, dtype=dtype,
                          parallel_tokenizer=parallel, piece=piece) for rank, (path, piece) in enumerate(pieces)]
    results = executor.map(tasks, f"tokenize ({len(tasks)} pieces of {len(paths)} shards)", fn=tokenize_shard)
    manifest = {
        "format": FORMAT,
        "key": key,
        "tokenizer_sha256": tok_hash,
        "tokenizer_recipe": recipe,
        "vocab_size": vocabulary,
        "dtype": dtype,
        "settings": asdict(settings),
        "eval_rate": rate,
        "input": str(data),
        "inputs": inputs,
        "documents_in": sum(r["documents_in"] for r in results),
        "malformed": sum(r["malformed"] for r in results),
        "empty": sum(r["empty"] for r in results),
        "splits": {split: {
            "shards": [r["shards"][split] for r in results],
            **{k: sum(r["shards"][split][k] for r in results) for k in ("documents", "segments", "tokens")},
        } for split in SPLITS},
    }
    if manifest["splits"]["train"]["documents"] == 0:
        raise CorpusError(f"{data}: the corpus has no documents with text (no document produced a token); "
                          "point --data at curated shards")
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def _vocabulary_size(folder: Path) -> int:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size(with_added_tokens=True)


def _tokenizer_recipe(given_hash: str | None, vocab_size: int, sample_docs: int, sample_bytes: int,
                      lowercase: bool, strip_accents: bool | None, min_frequency: int) -> dict[str, Any]:
    """How the store's tokenizer was made: a given one (by hash), or the training settings of ours."""
    if given_hash:
        return {"given": given_hash}
    return {"vocab_size": vocab_size, "sample_docs": sample_docs, "sample_bytes": sample_bytes,
            "lowercase": lowercase, "strip_accents": strip_accents, "min_frequency": min_frequency}


def _differences(manifest: dict[str, Any], inputs: list[dict[str, Any]], recipe: dict[str, Any],
                 settings: StoreSettings) -> list[str]:
    differs = []
    if manifest.get("inputs") != inputs:
        old = {i["name"]: i for i in manifest.get("inputs", [])}
        new = {i["name"]: i for i in inputs}
        changed = sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n))
        differs.append(f"other input ({len(changed)} shard(s) added, removed or changed: {', '.join(changed[:3])})")
    if manifest.get("tokenizer_recipe") != recipe:
        differs.append(f"another tokenizer ({manifest.get('tokenizer_recipe')} vs {recipe})")
    if manifest.get("settings") != asdict(settings):
        differs.append(f"other settings ({manifest.get('settings')} vs {asdict(settings)})")
    return differs


def verify_store(folder: str | os.PathLike) -> list[str]:
    """Problems found comparing a store's shards with its manifest (sizes only: cheap at every start)."""
    folder = Path(folder)
    manifest = read_store_manifest(folder)
    width = np.dtype(manifest["dtype"]).itemsize
    problems = []
    for split in SPLITS:
        for shard in manifest["splits"][split]["shards"]:
            ids = folder / f"{shard['name']}.ids"
            if not ids.is_file() or not (folder / f"{shard['name']}.npz").is_file():
                problems.append(f"{ids}: missing")
            elif ids.stat().st_size != shard["tokens"] * width:
                problems.append(f"{ids}: {ids.stat().st_size} bytes, expected {shard['tokens'] * width}")
    return problems


__all__ = ["FORMAT", "StoreSettings", "build_token_store", "is_store", "read_store_manifest", "verify_store"]
