"""Masked batches streamed from a token store, for any corpus size: memory holds a few shards' index, one
shuffle buffer of documents per stream, and the batches in flight.

Why an `IterableDataset` of our own rather than a `datasets` streaming dataset: the examples (NSP pairs within
documents, packed MLM sequences) are built from sentence segments of many documents at once, and an exact
resume needs a small position per stream; `datasets`' shuffle buffer state cannot be saved, and its example
maps see one document at a time. The DataLoader does what it is good at: worker processes, prefetching,
pinned memory.

The order of the data is a pure function of (seed, epoch, stream, chunk), never of timing or worker count:
- a rank has `streams` data streams (global stream g = rank * streams + s, of N = world_size * streams); in an
  epoch, the store's shards come in a seeded order, each shard's documents in a seeded permutation, and stream
  g takes every N-th of them, so ranks and streams see disjoint data;
- a stream's documents are cut into chunks of `shuffle_docs` documents (the shuffle buffer): a chunk's
  examples are built and shuffled with an RNG seeded by (seed, epoch, g, chunk), NSP's random next segments
  come from the chunk's other documents;
- batch k of a rank comes from stream k mod `streams`; its masks from a generator seeded by (seed, g, n),
  n the stream's batch count.
So a stream's position is (epoch, chunk, offset in the chunk's examples, batches made), and the rank's
position is those plus the batches consumed: what a checkpoint saves. `DataLoader` workers each serve
`streams / workers` streams, so 0, 1 or 2 workers deliver the same batches in the same order.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from corpus.core.errors import CorpusError
from corpus.train import data as D
from corpus.train.tokens import read_store_manifest

STATE_KEY = "_stream_state"


def max_segment_tokens(objective: str, seq_len: int) -> int:
    """NSP pairs two segments in seq_len - 3 tokens; packed sequences take whole segments up to seq_len."""
    return max(1, (seq_len - 3) // 2) if objective == "mlm+nsp" else seq_len


class TokenShard:
    """One split of one store shard: token ids memory-mapped, segment and document offsets in memory."""

    def __init__(self, folder: Path, name: str, dtype: str) -> None:
        ids_path = folder / f"{name}.ids"
        size = ids_path.stat().st_size
        self.ids = np.memmap(ids_path, dtype=dtype, mode="r") if size else np.zeros(0, dtype=dtype)
        with np.load(folder / f"{name}.npz") as index:
            seg_lens, doc_segs = index["seg_lens"], index["doc_segs"]
        self.seg_end = np.concatenate([[0], np.cumsum(seg_lens, dtype=np.int64)])
        self.doc_end = np.concatenate([[0], np.cumsum(doc_segs, dtype=np.int64)])
        self.documents = len(doc_segs)

    def document(self, index: int, max_segment: int) -> list[list[int]]:
        """A document's segments as lists of ids, segments longer than `max_segment` cut into pieces."""
        first, last = int(self.doc_end[index]), int(self.doc_end[index + 1])
        start, stop = int(self.seg_end[first]), int(self.seg_end[last])
        ids = self.ids[start:stop].tolist()
        segments = []
        offset = 0
        for length in np.diff(self.seg_end[first : last + 1]).tolist():
            for k in range(offset, offset + length, max_segment):
                segments.append(ids[k : min(offset + length, k + max_segment)])
            offset += length
        return segments


@dataclass
class StreamState:
    """Where one stream is: the epoch, the chunk of its documents, the examples of that chunk already used,
    and the batches it has made (which seeds the next batch's masks)."""

    stream: int
    epoch: int = 0
    chunk: int = 0
    offset: int = 0
    batches: int = 0


class PretrainStream(torch.utils.data.IterableDataset):
    """Endless masked batches for one rank from a token store's split (see the module docstring)."""

    def __init__(
        self,
        store: str | Path,
        *,
        objective: str,
        seq_len: int,
        batch_size: int,
        collator: D.MaskingCollator,
        cls_id: int,
        sep_id: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        streams: int = 1,
        shuffle_docs: int = 1000,
        short_seq_prob: float = 0.1,
        split: str = "train",
        token_budget: int | None = None,
    ) -> None:
        super().__init__()
        if objective not in D.OBJECTIVES:
            raise CorpusError(f"unknown objective {objective!r}; choose one of {', '.join(D.OBJECTIVES)}")
        if streams < 1 or shuffle_docs < 2:
            raise CorpusError(f"streams must be >= 1 and shuffle_docs >= 2 (got {streams}, {shuffle_docs})")
        self.folder = Path(store)
        manifest = read_store_manifest(self.folder)
        self.dtype = manifest["dtype"]
        self.shard_names = [s["name"] for s in manifest["splits"][split]["shards"]]
        self.shard_docs = [int(s["documents"]) for s in manifest["splits"][split]["shards"]]
        self.objective, self.seq_len, self.batch_size = objective, seq_len, batch_size
        self.collator, self.cls_id, self.sep_id = collator, cls_id, sep_id
        self.seed, self.rank, self.world_size, self.streams = seed, rank, world_size, streams
        self.shuffle_docs, self.short_seq_prob = shuffle_docs, short_seq_prob
        # Unpadded batches (issue 16's path): examples are taken while their tokens fit `token_budget`, at most
        # 2 x batch_size sequences, and flattened to one static shape, so a compiled model never recompiles.
        self.token_budget = token_budget
        self.max_sequences = 2 * batch_size
        self.max_segment = max_segment_tokens(objective, seq_len)
        self.total_streams = world_size * streams
        fewest = min(sum(len(range(g, n, self.total_streams)) for n in self.shard_docs)
                     for g in range(self.total_streams))
        if objective == "mlm+nsp" and fewest < 2:
            raise CorpusError(
                f"{self.folder}: next-sentence prediction needs at least 2 non-empty documents per data stream "
                f"({sum(self.shard_docs)} {split} documents, {world_size} process(es) x {streams} stream(s)); "
                "add documents, use fewer streams, or use objective 'mlm'"
            )
        if fewest < 1:
            raise CorpusError(f"{self.folder}: {sum(self.shard_docs)} {split} documents are too few for "
                              f"{world_size} process(es) x {streams} data stream(s); add documents or use fewer")
        self.states = {s: StreamState(stream=s) for s in range(streams)}  # where each stream starts
        self.consumed = 0  # batches of this rank already used: the next batch comes from stream consumed % streams

    # --- which documents a stream reads -----------------------------------------------------------------

    def _global(self, stream: int) -> int:
        return self.rank * self.streams + stream

    @functools.lru_cache(maxsize=256)  # noqa: B019 - (epoch, stream) plans; the dataset lives as long as training
    def _plan(self, epoch: int, stream: int) -> tuple[list[int], np.ndarray]:
        """The epoch's shard order and, per shard in that order, how many documents this stream takes."""
        g = self._global(stream)
        order = np.random.default_rng([self.seed, epoch, 0]).permutation(len(self.shard_names)).tolist()
        counts = np.array([len(range(g, self.shard_docs[i], self.total_streams)) for i in order], dtype=np.int64)
        return order, np.concatenate([[0], np.cumsum(counts)])

    def _chunks(self, epoch: int, stream: int) -> int:
        total = int(self._plan(epoch, stream)[1][-1])
        return max(1, total // self.shuffle_docs)

    @functools.lru_cache(maxsize=2)  # noqa: B019
    def _permutation(self, epoch: int, shard: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch, 1, shard]).permutation(self.shard_docs[shard])

    @functools.lru_cache(maxsize=2)  # noqa: B019
    def _shard(self, shard: int) -> TokenShard:
        return TokenShard(self.folder, self.shard_names[shard], self.dtype)

    def _chunk_documents(self, epoch: int, stream: int, chunk: int) -> list[list[list[int]]]:
        order, bounds = self._plan(epoch, stream)
        total, chunks = int(bounds[-1]), self._chunks(epoch, stream)
        first = chunk * self.shuffle_docs
        last = total if chunk == chunks - 1 else first + self.shuffle_docs  # the last chunk takes the rest
        g = self._global(stream)
        documents = []
        for position in range(first, last):
            k = int(np.searchsorted(bounds, position, side="right")) - 1
            shard = order[k]
            local = g + (position - int(bounds[k])) * self.total_streams
            documents.append(self._shard(shard).document(int(self._permutation(epoch, shard)[local]),
                                                         self.max_segment))
        return documents

    def _chunk_examples(self, epoch: int, stream: int, chunk: int) -> list[D.Example]:
        rng = random.Random(D._mix(self.seed, epoch, self._global(stream), chunk))
        return D.build_examples(self._chunk_documents(epoch, stream, chunk), self.objective, self.seq_len, rng,
                                cls_id=self.cls_id, sep_id=self.sep_id, short_seq_prob=self.short_seq_prob)

    # --- batches ---------------------------------------------------------------------------------------

    def _stream_batches(self, state: StreamState) -> Iterator[dict[str, Any]]:
        """A stream's batches from `state` on, each carrying the stream's state after it."""
        state = StreamState(**asdict(state))
        examples = self._chunk_examples(state.epoch, state.stream, state.chunk)
        while True:
            batch: list[D.Example] = []
            tokens = 0
            while True:
                if self.token_budget is None and len(batch) >= self.batch_size:
                    break
                if state.offset >= len(examples):
                    state.chunk += 1
                    if state.chunk >= self._chunks(state.epoch, state.stream):
                        state.epoch, state.chunk = state.epoch + 1, 0
                    state.offset = 0
                    examples = self._chunk_examples(state.epoch, state.stream, state.chunk)
                    continue
                if self.token_budget is not None:
                    length = len(examples[state.offset]["input_ids"])
                    if batch and (tokens + length > self.token_budget or len(batch) >= self.max_sequences):
                        break
                    tokens += length
                    batch.append(examples[state.offset])
                    state.offset += 1
                    continue
                take = examples[state.offset : state.offset + self.batch_size - len(batch)]
                batch.extend(take)
                state.offset += len(take)
            generator = torch.Generator().manual_seed(D._mix(self.seed, self._global(state.stream), state.batches))
            masked = self.collator(batch, generator)
            if self.token_budget is not None:
                from corpus.train.unpadded import unpad

                masked = unpad(masked, token_budget=self.token_budget, max_sequences=self.max_sequences)
            state.batches += 1
            masked[STATE_KEY] = asdict(state)
            yield masked

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if self.streams % workers:
            raise CorpusError(f"{self.streams} data streams cannot be shared by {workers} loader workers; "
                              "make streams a multiple of the workers")
        # DataLoader takes batches from its workers in turn: this worker's j-th batch is the rank's batch
        # consumed + worker + j * workers, which comes from stream (that number) mod streams.
        mine = [(self.consumed + worker + j * workers) % self.streams for j in range(self.streams // workers)]
        iterators = {s: self._stream_batches(self.states[s]) for s in mine}
        while True:
            for s in mine:
                yield next(iterators[s])


class StreamedBatches:
    """What the training loop iterates: a DataLoader over a `PretrainStream`, with `state_dict()` for resume.

    The state is taken from the batches the loop has actually consumed (each batch carries its stream's
    position), so batches prefetched by workers but never trained on are made again after a resume.
    """

    def __init__(self, dataset: PretrainStream, *, workers: int = 0, pin_memory: bool = False,
                 prefetch_factor: int = 4) -> None:
        self.dataset = dataset
        self.workers = workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self._iterator: Iterator[dict[str, Any]] | None = None

    def _loader(self) -> Iterator[dict[str, Any]]:
        options: dict[str, Any] = {}
        if self.workers:
            options = {"prefetch_factor": self.prefetch_factor, "persistent_workers": True}
        # Its own generator: creating an iterator draws a seed, which must not move the global RNG that
        # dropout uses (a resumed run creates its iterator at another step than an uninterrupted one).
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=None, num_workers=self.workers,
                                             pin_memory=self.pin_memory, generator=torch.Generator(), **options)
        return iter(loader)

    def __iter__(self) -> StreamedBatches:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self._iterator is None:
            self._iterator = self._loader()
        batch = next(self._iterator)
        state = StreamState(**{k: int(v) for k, v in batch.pop(STATE_KEY).items()})
        self.dataset.states[state.stream] = state
        self.dataset.consumed += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"consumed": self.dataset.consumed, "streams": [asdict(s) for s in self.dataset.states.values()]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        streams = [StreamState(**s) for s in state["streams"]]
        if len(streams) != self.dataset.streams:
            raise CorpusError(f"the checkpoint's data has {len(streams)} streams, this run {self.dataset.streams}; "
                              "resume with the same data_streams")
        self.dataset.states = {s.stream: s for s in streams}
        self.dataset.consumed = int(state["consumed"])
        self.close()

    def close(self) -> None:
        """Stop the loader's workers (a new iterator starts from the dataset's current state)."""
        self._iterator = None


def eval_examples(store: str | Path, *, objective: str, seq_len: int, cls_id: int, sep_id: int,
                  short_seq_prob: float, limit: int, seed: int) -> list[D.Example]:
    """Up to `limit` held-out examples from the store's eval split (in store order: the same every run)."""
    folder = Path(store)
    manifest = read_store_manifest(folder)
    max_segment = max_segment_tokens(objective, seq_len)
    documents: list[list[list[int]]] = []
    tokens = 0
    for entry in manifest["splits"]["eval"]["shards"]:
        shard = TokenShard(folder, entry["name"], manifest["dtype"])
        for i in range(shard.documents):
            documents.append(shard.document(i, max_segment))
            tokens += sum(len(s) for s in documents[-1])
            if tokens > 2 * limit * seq_len:
                break
    if not documents:
        return []
    # NSP's random next segments may also come from training documents (a small eval split may hold one).
    pool = list(documents)
    train_shards = manifest["splits"]["train"]["shards"]
    if objective == "mlm+nsp" and train_shards:
        shard = TokenShard(folder, train_shards[0]["name"], manifest["dtype"])
        pool += [shard.document(i, max_segment) for i in range(min(100, shard.documents))]
    examples = D.build_examples(documents, objective, seq_len, random.Random(seed + 1), cls_id=cls_id,
                                sep_id=sep_id, short_seq_prob=short_seq_prob, random_pool=pool)
    return examples[:limit]


def unigram_counts(store: str | Path, vocab_size: int, max_tokens: int = 10_000_000) -> torch.Tensor:
    """Token frequencies of (at most the first `max_tokens` of) the training split: the unigram baseline.
    Counted in blocks, so memory stays small however large the store."""
    folder = Path(store)
    manifest = read_store_manifest(folder)
    counts = np.ones(vocab_size, dtype=np.float64)  # add-one smoothing
    seen = 0
    block = 1 << 20
    for entry in manifest["splits"]["train"]["shards"]:
        path = folder / f"{entry['name']}.ids"
        if seen >= max_tokens or not path.stat().st_size:
            continue
        ids = np.memmap(path, dtype=manifest["dtype"], mode="r")
        limit = min(len(ids), max_tokens - seen)
        for start in range(0, limit, block):
            part = np.asarray(ids[start : min(start + block, limit)])
            counts += np.bincount(part, minlength=vocab_size)[:vocab_size]
            seen += len(part)
        del ids
    return torch.from_numpy(counts)
