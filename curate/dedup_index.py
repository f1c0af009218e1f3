"""The machinery every dedup stage shares: sorted key runs on disk, a streaming merge, union-find,
a deterministic keeper per cluster, and a saved index for incremental runs.

A dedup stage turns each document into keys (a text hash, a URL hash, MinHash band hashes). Each rank
writes its keys as runs sorted per band (`RunWriter`). After the barrier, the first filter rank to
arrive takes a file lock and builds the clusters once for everybody (`run_once` + `build_clusters`):
it merges the runs band by band in bounded chunks (never one in-memory index of every signature),
links documents that share a key with union-find, picks each cluster's keeper and writes one small
decision file per rank. Every filter rank then applies its own decisions (`ClusterFilter`).

Documents are numbered globally by (input shard, position), which does not depend on how many workers
run, so the clusters and keepers do not either.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.io import atomic_write_bytes, atomic_write_json
from corpus.core.stage import BARRIER, Barrier, RankContext, Stage

KEEP_POLICIES = ("first", "longest", "quality")
MERGE_MEMORY = 64 << 20  # bytes of run entries the merge holds at once, across all runs
VerifyFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
VerifierFactory = Callable[[list["Part"]], VerifyFn]


# --- small file helpers --------------------------------------------------------------------------


def save_npy(path: Path, array: np.ndarray) -> None:
    buffer = BytesIO()
    np.save(buffer, np.ascontiguousarray(array))
    atomic_write_bytes(path, buffer.getvalue())


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    buffer = BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted: np.sort and a comparison (numpy 2.4's np.unique hashes first, which
    is about a hundred times slower on large integer arrays)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    return values[keep]


def params_digest(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_once(folder: Path, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `build` once across all ranks of a job: the first rank to take the lock builds, the rest wait.

    The engine has no "once between barriers" step, so the first filter rank does it. The lock is an
    flock (released if the process dies) and `summary.json` is written last, atomically, so a killed
    build is simply redone on resume and a finished one is never redone.
    """
    done = folder / "summary.json"
    if done.exists():
        return json.loads(done.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if done.exists():
                return json.loads(done.read_text())
            summary = build()
            atomic_write_json(done, summary)
            return summary
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- per-rank sorted runs ------------------------------------------------------------------------


class RunWriter:
    """Collects one rank's keys (one column per band) and writes them as runs sorted per band.

    Files: `{rank}.keys.npy` and `{rank}.pos.npy` (bands x m; documents without keys are absent),
    `{rank}.docs.npz` (length and quality score of every document), `{rank}.ids.json`.
    """

    def __init__(self, folder: Path, rank: int, bands: int, quality_key: str | None = None) -> None:
        self.folder, self.rank, self.bands, self.quality_key = folder, rank, bands, quality_key
        self.keys: list[np.ndarray] = []
        self.pos: list[np.ndarray] = []
        self.lengths: list[int] = []
        self.scores: list[float] = []
        self.ids: list[str] = []

    def add(self, docs: list[Document], keys: np.ndarray, valid: np.ndarray | None = None) -> None:
        """`keys` has shape (len(docs), bands); rows where `valid` is False have no key (never duplicates)."""
        positions = np.arange(len(self.ids), len(self.ids) + len(docs), dtype=np.uint32)
        if valid is not None:
            keys, positions = keys[valid], positions[valid]
        self.keys.append(np.asarray(keys, dtype=np.uint64).reshape(-1, self.bands))
        self.pos.append(positions)
        for doc in docs:
            self.ids.append(doc.id)
            self.lengths.append(len(doc.text))
            self.scores.append(quality_score(doc, self.quality_key))

    def close(self) -> None:
        keys = np.concatenate(self.keys) if self.keys else np.zeros((0, self.bands), np.uint64)
        pos = np.concatenate(self.pos) if self.pos else np.zeros(0, np.uint32)
        keys = np.ascontiguousarray(keys.T)  # bands x m
        order = np.argsort(keys, axis=1, kind="stable")  # stable: equal keys stay in document order
        sorted_keys = np.take_along_axis(keys, order, axis=1)
        sorted_pos = pos[order]
        name = f"{self.rank:05d}"
        save_npz(self.folder / f"{name}.docs.npz", lengths=np.array(self.lengths, dtype=np.uint32),
                 scores=np.array(self.scores, dtype=np.float32))
        atomic_write_bytes(self.folder / f"{name}.ids.json", json.dumps(self.ids).encode())
        save_npy(self.folder / f"{name}.pos.npy", sorted_pos)
        save_npy(self.folder / f"{name}.keys.npy", sorted_keys)


def quality_score(doc: Document, key: str | None) -> float:
    if not key:
        return math.nan
    value = doc.metadata.get(key)
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


@dataclass
class Run:
    """One sorted run: keys and positions (bands x m, memory-mapped) plus where its documents start."""

    keys: np.ndarray
    pos: np.ndarray
    base: int


def load_run(folder: Path, name: str, base: int) -> Run:
    keys = np.load(folder / f"{name}.keys.npy", mmap_mode="r")
    pos = np.load(folder / f"{name}.pos.npy", mmap_mode="r")
    return Run(keys, pos, base)


def merge_runs(runs: list[Run], band: int, memory: int = MERGE_MEMORY) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream one band of many sorted runs as blocks of (keys, global index), sorted by (key, index).

    Every key's entries land in one block, so each block holds whole buckets. Each round reads at most
    `chunk` entries past the smallest window end of any run, so memory is bounded by about
    `memory` bytes however many documents there are (a single giant bucket is the exception).
    """
    live = [r for r in runs if r.keys.shape[1] > 0]
    chunk = max(1024, memory // (16 * max(1, len(live))))
    heads = [0] * len(live)
    while True:
        active = [i for i, r in enumerate(live) if heads[i] < r.keys.shape[1]]
        if not active:
            return
        ends = [heads[i] + chunk for i in active]
        bounds = [live[i].keys[band, e - 1] for i, e in zip(active, ends, strict=True) if e < live[i].keys.shape[1]]
        bound = min(bounds) if bounds else None
        keys, index = [], []
        for i in active:
            run, start = live[i], heads[i]
            row = run.keys[band]
            stop = row.shape[0] if bound is None else start + int(np.searchsorted(row[start:], bound, side="right"))
            if stop > start:
                keys.append(np.asarray(row[start:stop]))
                index.append(np.asarray(run.pos[band, start:stop], dtype=np.int64) + run.base)
            heads[i] = stop
        if keys:
            k, g = np.concatenate(keys), np.concatenate(index)
            order = np.lexsort((g, k))
            yield k[order], g[order]


def bucket_edges(keys: np.ndarray, index: np.ndarray, chain: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of documents sharing a key in a sorted block: each member to its bucket's first (lowest
    index) member, and with `chain` also to the previous member (more pairs to try when verifying)."""
    if len(keys) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = keys[1:] != keys[:-1]
    bucket = np.cumsum(starts) - 1
    first = index[starts][bucket]
    member = ~starts
    u, v = first[member], index[member]
    if chain:
        prev = np.roll(index, 1)[member]
        extra = prev != u
        u, v = np.concatenate([u, prev[extra]]), np.concatenate([v, index[member][extra]])
    return u, v


# --- union-find ----------------------------------------------------------------------------------


class UnionFind:
    """Union-find over document numbers; a root is always its component's lowest number.

    `union_many` links arrays of pairs with numpy (hooking the larger root under the smaller and
    repeating until every pair agrees), `union` links one pair (used when pairs are verified one by one).
    """

    def __init__(self, size: int) -> None:
        self.parent = np.arange(size, dtype=np.int64)

    def find_many(self, x: np.ndarray) -> np.ndarray:
        roots = self.parent[x]
        while True:
            up = self.parent[roots]
            if np.array_equal(up, roots):
                break
            roots = up
        self.parent[x] = roots  # path compression
        return roots

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return x

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)
        return True

    def union_many(self, u: np.ndarray, v: np.ndarray) -> None:
        while len(u):
            ru, rv = self.find_many(u), self.find_many(v)
            differ = ru != rv
            if not differ.any():
                return
            u, v, ru, rv = u[differ], v[differ], ru[differ], rv[differ]
            self.parent[np.maximum(ru, rv)] = np.minimum(ru, rv)

    def roots(self) -> np.ndarray:
        return self.find_many(np.arange(len(self.parent)))


# --- sources: this run's ranks and the saved index -----------------------------------------------


@dataclass
class Part:
    """A block of documents with consecutive global numbers: one rank of this run, or one part of a
    saved index segment (whose documents are already in the curated corpus and always win)."""

    folder: Path
    name: str
    base: int
    size: int
    old: bool

    def run(self) -> Run:
        return load_run(self.folder, self.name, self.base)

    def ids(self) -> list[str]:
        return json.loads((self.folder / f"{self.name}.ids.json").read_text())


class DedupIndex:
    """A saved dedup index: keys and ids of documents a curated corpus kept, in segments (one per run).

    Layout: `DIR/<kind>/params.json` (how keys were made; a mismatch is an error), and
    `DIR/<kind>/<segment>/` with `meta.json` (number of parts) and per part the same run files a rank
    writes. A new run reads every complete segment and adds its own, so crawl after crawl can be
    deduplicated without reprocessing the old ones.
    """

    def __init__(self, path: str | os.PathLike, kind: str, params: dict[str, Any]) -> None:
        self.root = Path(path) / kind
        self.params = params

    def check_params(self, write: bool) -> None:
        path = self.root / "params.json"
        if path.exists():
            saved = json.loads(path.read_text())
            if saved != json.loads(json.dumps(self.params)):
                raise CorpusError(f"{path}: this index was built with {saved}, but the stage uses {self.params}; "
                                  "use the same settings or a new index folder")
        elif write:
            atomic_write_json(path, self.params)

    def segments(self, exclude: str | None = None) -> tuple[list[Path], int]:
        """Complete segments (all parts written) and the number of incomplete ones (an unfinished run)."""
        if not self.root.is_dir():
            return [], 0
        complete, incomplete = [], 0
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != exclude):
            meta = folder / "meta.json"
            if not meta.exists():
                incomplete += 1
                continue
            parts = json.loads(meta.read_text())["parts"]
            if all((folder / f"{r:05d}.keys.npy").exists() for r in range(parts)):
                complete.append(folder)
            else:
                incomplete += 1
        return complete, incomplete

    def parts(self, exclude: str | None, base: int) -> tuple[list[Part], int]:
        segments, incomplete = self.segments(exclude)
        parts = []
        for folder in segments:
            for r in range(json.loads((folder / "meta.json").read_text())["parts"]):
                name = f"{r:05d}"
                size = int(np.load(folder / f"{name}.docs.npz")["lengths"].shape[0])
                parts.append(Part(folder, name, base, size, old=True))
                base += size
        return parts, incomplete


# --- building clusters (once) --------------------------------------------------------------------


def build_clusters(
    sig_folder: Path,
    out_folder: Path,
    world_size: int,
    bands: int,
    keep: str,
    index: DedupIndex | None = None,
    own_segment: str | None = None,
    verifier: VerifierFactory | None = None,
    memory: int = MERGE_MEMORY,
) -> dict[str, Any]:
    """Merge every rank's runs band by band, link shared keys, choose keepers, write per-rank decisions.

    With `verifier`, a candidate pair is linked only if the function it builds (over all parts, this
    run's and the index's) accepts it, called once with every distinct candidate pair; otherwise every
    pair sharing a key is linked.
    """
    parts: list[Part] = []
    base = 0
    lengths, scores = [], []
    for rank in range(world_size):
        name = f"{rank:05d}"
        docs = np.load(sig_folder / f"{name}.docs.npz")
        parts.append(Part(sig_folder, name, base, int(docs["lengths"].shape[0]), old=False))
        lengths.append(docs["lengths"])
        scores.append(docs["scores"])
        base += parts[-1].size
    new_total = base
    incomplete = 0
    if index is not None:
        old_parts, incomplete = index.parts(own_segment, base)
        parts += old_parts
        base += sum(p.size for p in old_parts)
    total = base
    runs = [p.run() for p in parts]
    verify = verifier(parts) if verifier is not None else None
    uf = UnionFind(total)
    stats = {"candidate_pairs": 0, "verified_pairs": 0, "false_positive_pairs": 0}
    pairs = np.zeros(0, np.int64)  # a candidate pair (u < v) as one number, u * total + v
    for band in range(bands):
        found = [pairs]
        for keys, gidx in merge_runs(runs, band, memory):
            u, v = bucket_edges(keys, gidx, chain=verify is not None)
            stats["candidate_pairs"] += len(u)
            if verify is None:
                uf.union_many(u, v)
            elif len(u):
                found.append(np.minimum(u, v) * total + np.maximum(u, v))
        # Verified pairs are gathered first (distinct ones, band after band, so the same pair found in
        # many bands is held once): the verifier then sees every candidate document at once (MinHash
        # counts which shingles are common among them before judging any pair).
        if len(found) > 1:
            pairs = sorted_unique(np.concatenate(found))
    if verify is not None and len(pairs):
        u, v = pairs // total, pairs % total
        ok = verify(u, v)
        stats["verified_pairs"] += len(pairs)
        stats["false_positive_pairs"] += int(np.count_nonzero(~ok))
        uf.union_many(u[ok], v[ok])
    roots = uf.roots()
    sizes = np.bincount(roots, minlength=total)
    members = np.flatnonzero(sizes[roots] > 1)
    keepers = _choose_keepers(members, roots, np.concatenate(lengths + [np.zeros(total - new_total, np.uint32)]),
                              np.concatenate(scores + [np.full(total - new_total, np.nan, np.float32)]),
                              new_total, keep)
    member_keeper = keepers[roots[members]]
    names = _resolve_ids(parts, np.concatenate([members, sorted_unique(member_keeper)]))
    out_folder.mkdir(parents=True, exist_ok=True)
    owner = np.searchsorted([p.base for p in parts[:world_size]], members, side="right") - 1
    for rank in range(world_size):
        mine = (owner == rank) & (members < new_total)
        g = members[mine]
        save_npz(
            out_folder / f"{rank:05d}.npz",
            pos=g - parts[rank].base,
            size=sizes[roots[g]],
            own=np.array([names[int(x)] for x in g], dtype=str),
            keeper=np.array([names[int(x)] for x in member_keeper[mine]], dtype=str),
            removed=member_keeper[mine] != g,
        )
    is_new = members < new_total
    new_members = members[is_new]
    removed = int(np.count_nonzero(member_keeper[is_new] != new_members))
    return {
        **stats,
        "documents": new_total,
        "index_documents": total - new_total,
        "index_incomplete_segments": incomplete,
        "clusters": int(np.count_nonzero(sizes[sorted_unique(roots[new_members])] > 1)) if len(new_members) else 0,
        "duplicates": removed,
    }


def _choose_keepers(members: np.ndarray, roots: np.ndarray, lengths: np.ndarray, scores: np.ndarray,
                    new_total: int, keep: str) -> np.ndarray:
    """keepers[root] = the member each cluster keeps: an index document if any, else by policy, then first."""
    keepers = np.zeros(len(roots), dtype=np.int64)
    if not len(members):
        return keepers
    sort_keys: list[np.ndarray] = [members]  # last resort: first seen
    if keep in ("longest", "quality"):
        sort_keys.append(-lengths[members].astype(np.int64))
    if keep == "quality":
        score = scores[members].astype(np.float64)
        sort_keys.append(np.where(np.isnan(score), np.inf, -score))
    sort_keys.append((members < new_total).astype(np.int8))  # saved-index documents first: already kept
    sort_keys.append(roots[members])
    order = members[np.lexsort(sort_keys)]
    group_roots = roots[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = group_roots[1:] != group_roots[:-1]
    keepers[group_roots[first]] = order[first]
    return keepers


def _resolve_ids(parts: list[Part], wanted: np.ndarray) -> dict[int, str]:
    """Ids of the wanted global numbers, reading one part's ids at a time."""
    wanted = sorted_unique(wanted)
    bases = np.array([p.base for p in parts])
    owner = np.searchsorted(bases, wanted, side="right") - 1
    names: dict[int, str] = {}
    for index in sorted_unique(owner):
        part = parts[int(index)]
        ids = part.ids()
        for g in wanted[owner == index].tolist():
            names[g] = ids[g - part.base]
    return names


# --- stages --------------------------------------------------------------------------------------


class KeyDedup(Stage):
    """Base of the dedup stages: `expand()` to signatures | barrier | filter; subclasses make the keys.

    `kind` names the metadata fields (`<kind>_cluster_id`, `<kind>_cluster_size`) and the index folder;
    `reason` is the drop reason of removed documents, which carry `duplicate_of` (the keeper's id).
    """

    kind = "dedup"
    reason = "duplicate"
    bands = 1

    def __init__(self, keep: str = "first", quality_key: str | None = "quality_score",
                 index_dir: str | None = None, update_index: bool = True) -> None:
        if keep not in KEEP_POLICIES:
            raise ValueError(f"keep must be one of {', '.join(KEEP_POLICIES)}, not {keep!r}")
        self.keep = keep
        self.quality_key = quality_key
        self.index_dir = index_dir
        self.update_index = update_index

    # subclasses: the keys of a batch of documents, shape (len(docs), bands), and which rows have keys
    def make_keys(self, docs: list[Document], ctx: RankContext) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def key_params(self) -> dict[str, Any]:
        """Everything that changes the keys; an index made with other values cannot be reused."""
        return {"kind": self.kind, "bands": self.bands}

    def verifier(self) -> VerifierFactory | None:
        """Builds the exact check of candidate pairs from the parts (MinHash's `verify`); None: no check."""
        return None

    def on_signatures_start(self, ctx: RankContext) -> None:
        """Hook before a rank's first batch (MinHash opens the file its shingle sets go to)."""

    def on_signatures_done(self, ctx: RankContext) -> None:
        pass

    batch_size = 512

    def expand(self) -> list[Stage | Barrier]:
        signatures, dedup_filter = KeySignatures(self), ClusterFilter(self)
        signatures.id = f"{self.id}_signatures"
        dedup_filter.id = self.id
        return [signatures, BARRIER, dedup_filter]

    def folder(self, ctx: RankContext) -> Path:
        return ctx.work_dir / "dedup" / self.id

    def index(self) -> DedupIndex | None:
        return DedupIndex(self.index_dir, self.kind, self.key_params()) if self.index_dir else None

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        raise CorpusError(f"stage {self.id!r} must be expanded into jobs (use build_jobs)")


class KeySignatures(Stage):
    """Job 1 (parallel): keys of every document, written as this rank's sorted runs."""

    def __init__(self, parent: KeyDedup) -> None:
        self.parent = parent

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        parent = self.parent
        folder = parent.folder(ctx) / "sig"
        writer = RunWriter(folder, ctx.rank, parent.bands, parent.quality_key if parent.keep == "quality" else None)
        parent.on_signatures_start(ctx)
        iterator = iter(docs)
        while batch := list(itertools.islice(iterator, parent.batch_size)):
            keys, valid = parent.make_keys(batch, ctx)
            writer.add(batch, keys, valid)
            yield from batch
        parent.on_signatures_done(ctx)
        writer.close()


class ClusterFilter(Stage):
    """Job 2 (parallel, after a once-only clustering step): drop every duplicate but the keeper."""

    def __init__(self, parent: KeyDedup) -> None:
        self.parent = parent

    def _segment(self, ctx: RankContext) -> str:
        return f"{self.parent.kind}-{params_digest({'run': str(ctx.work_dir.resolve()), 'stage': self.id})}"

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        parent = self.parent
        folder = parent.folder(ctx)
        index = parent.index()
        if index is not None:
            index.check_params(write=parent.update_index)
        summary = run_once(folder / "clusters", lambda: build_clusters(
            folder / "sig", folder / "clusters", ctx.world_size, parent.bands, parent.keep,
            index=index, own_segment=self._segment(ctx), verifier=parent.verifier()))
        stats = ctx.stats_for(self)
        if ctx.rank == 0:  # the once-only step's counters, reported exactly once whoever ran it
            for key, value in summary.items():
                stats.add(f"clusters/{key}", value)
        with np.load(folder / "clusters" / f"{ctx.rank:05d}.npz") as saved:  # an NpzFile reads on every access
            decisions = {key: saved[key] for key in saved.files}
        positions = decisions["pos"].tolist()
        by_pos = dict(zip(positions, range(len(positions)), strict=True))
        kept_mask = []
        meta_id, meta_size = f"{parent.kind}_cluster_id", f"{parent.kind}_cluster_size"
        for position, doc in enumerate(docs):
            row = by_pos.get(position)
            if row is None:
                kept_mask.append(True)
                yield doc
                continue
            if str(decisions["own"][row]) != doc.id:
                raise CorpusError(f"{folder}: dedup signatures do not match the documents (expected "
                                  f"{decisions['own'][row]!r} at position {position}, got {doc.id!r}); "
                                  "rerun with --overwrite")
            keeper = str(decisions["keeper"][row])
            doc.metadata[meta_id] = keeper
            doc.metadata[meta_size] = int(decisions["size"][row])
            if bool(decisions["removed"][row]):
                doc.metadata["duplicate_of"] = keeper
                stats.add("duplicates")
                kept_mask.append(False)
                ctx.drop(doc, self, parent.reason)
            else:
                kept_mask.append(True)
                yield doc
        if index is not None and parent.update_index:
            _write_segment_part(index, self._segment(ctx), folder / "sig", ctx, np.array(kept_mask, dtype=bool))


def _write_segment_part(index: DedupIndex, segment: str, sig_folder: Path, ctx: RankContext,
                        kept: np.ndarray) -> None:
    """Add this rank's kept documents to the index (a new segment; complete once every rank wrote)."""
    folder = index.root / segment
    name = f"{ctx.rank:05d}"
    atomic_write_json(folder / "meta.json", {"parts": ctx.world_size})
    keys = np.load(sig_folder / f"{name}.keys.npy")
    pos = np.load(sig_folder / f"{name}.pos.npy")
    ids = json.loads((sig_folder / f"{name}.ids.json").read_text())
    if len(kept) != len(ids):
        raise CorpusError(f"{sig_folder}: rank {ctx.rank} saw {len(kept)} documents, signatures have {len(ids)}")
    # Every band row holds the same documents in a different order, so each row keeps the same count.
    new_pos = np.cumsum(kept) - 1  # position among the kept documents
    keep_entries = kept[pos]
    keys = keys[keep_entries].reshape(keys.shape[0], -1)
    pos = new_pos[pos[keep_entries]].reshape(keys.shape[0], -1).astype(np.uint32)
    docs = np.load(sig_folder / f"{name}.docs.npz")
    save_npz(folder / f"{name}.docs.npz", lengths=docs["lengths"][kept], scores=docs["scores"][kept])
    atomic_write_bytes(folder / f"{name}.ids.json",
                       json.dumps([i for i, k in zip(ids, kept.tolist(), strict=True) if k]).encode())
    if (sig_folder / f"{name}.shingle_offsets.npy").exists():
        _copy_shingles(sig_folder, folder, name, kept)
    save_npy(folder / f"{name}.pos.npy", pos)
    save_npy(folder / f"{name}.keys.npy", keys)


def _copy_shingles(source: Path, target: Path, name: str, kept: np.ndarray) -> None:
    """Keep the shingle sets of kept documents in the index, so later runs can verify against them."""
    offsets = np.load(source / f"{name}.shingle_offsets.npy")
    shingles = np.memmap(source / f"{name}.shingles.u32", dtype=np.uint32, mode="r") if offsets[-1] else None
    lengths = np.diff(offsets)[kept]
    new_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    tmp = target / f".{name}.shingles.u32.tmp-{os.getpid()}"
    with open(tmp, "wb") as handle:
        for doc in np.flatnonzero(kept).tolist():
            if shingles is not None and offsets[doc + 1] > offsets[doc]:
                handle.write(np.asarray(shingles[offsets[doc] : offsets[doc + 1]]).tobytes())
    os.replace(tmp, target / f"{name}.shingles.u32")
    save_npy(target / f"{name}.shingle_offsets.npy", new_offsets)
