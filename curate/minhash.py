"""MinHash near-duplicate removal with LSH: signatures -> bucketing -> union-find -> filter.

Signatures are datasketch MinHash signatures (its default `affine32` scheme and permutation
parameters: `datasketch.MinHash(num_perm, seed, hashfunc=lambda x: x)` fed the same shingle hashes
holds the same values, and `signature_minhash()` turns a row into a `LeanMinHash`), computed for a
whole batch of documents at once with numpy instead of one `update_batch` call per document.

Shingles are word n-grams (`ngram`, default 5) or, for languages written without spaces, character
n-grams (`char_ngram`); `shingle: auto` picks per document from its detected language (or from how
few spaces it has). LSH cuts each signature into `bands` x `rows`, chosen from the Jaccard `threshold`
(see `choose_bands` and `s_curve`; `python -m corpus.curate.minhash --threshold 0.5` prints the curve).

Jobs: signatures write per-rank band keys sorted on disk; the first filter rank merges them band by
band (streaming), links candidates with union-find (by default only after checking the exact Jaccard
similarity of their distinctive shingles, `verify`), and picks keepers; every filter rank then drops its
duplicates.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from corpus.core.document import Document
from corpus.core.stage import RankContext
from corpus.curate.dedup_index import KeyDedup, Part, VerifierFactory, save_npy, sorted_unique
from corpus.curate.text import NO_SPACE_LANGUAGES

SHINGLES = ("auto", "word", "char")
VERIFY_RECALL = 0.99  # with verification, LSH bands are chosen to find 99% of pairs at the threshold
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_EMPTY = np.uint32(0xFFFFFFFF)


# --- shingles ------------------------------------------------------------------------------------


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads the bits of a linear combination before we keep 32 of them."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


@cache
def _ngram_weights(n: int) -> np.ndarray:
    rng = np.random.RandomState(0x5EED + n)
    return rng.randint(0, 1 << 63, size=n, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


_POLY = np.uint64(0x9E3779B97F4A7C15 | 1)  # odd, so it has an inverse modulo 2^64
_POLY_INVERSE = np.uint64(pow(int(_POLY), -1, 1 << 64))


@cache
def _word_char_table() -> np.ndarray:
    """For every code point, whether it is part of a word (a letter, digit or mark: regex `[^\\W_]`)."""
    everything = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    marked = re.sub(r"[\W_]+", lambda m: "\0" * len(m.group()), everything)
    return np.frombuffer(marked.encode("utf-32-le", "surrogatepass"), dtype=np.uint32) != 0


_powers: dict[np.uint64, np.ndarray] = {}


def _power_table(base: np.uint64, size: int) -> np.ndarray:
    """base^i modulo 2^64 for i < size (grown on demand, kept per process)."""
    table = _powers.get(base)
    if table is None or len(table) < size:
        table = np.cumprod(np.full(max(size, 1 << 16) * 2, base, dtype=np.uint64))
        table = np.concatenate([np.ones(1, dtype=np.uint64), table[:-1]])
        _powers[base] = table
    return table


def units(texts: list[str], char: bool) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of what shingles are made of, for a batch of texts, and how many each text has:
    its lower-cased words, or (`char`) its characters without spaces and punctuation.

    The whole batch is one array of code points; a word's hash is a polynomial hash of its code
    points, taken from prefix sums, so no Python object is made per word.
    """
    lowered = [t.lower() for t in texts]
    codes = np.frombuffer("\0".join(lowered).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    is_word = _word_char_table()[codes]
    doc_starts = np.zeros(len(texts), dtype=np.int64)
    np.cumsum([len(t) + 1 for t in lowered[:-1]], out=doc_starts[1:])
    if char:
        positions = np.flatnonzero(is_word)
        ids = codes[positions].astype(np.uint64) * _POLY
        owner = np.searchsorted(doc_starts, positions, side="right") - 1
        return ids, np.bincount(owner, minlength=len(texts))
    change = np.diff(is_word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(change == 1), np.flatnonzero(change == -1)
    prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
    np.cumsum((codes.astype(np.uint64) + np.uint64(1)) * _power_table(_POLY, len(codes))[: len(codes)],
              out=prefix[1:])
    ids = (prefix[ends] - prefix[starts]) * _power_table(_POLY_INVERSE, len(codes) + 1)[starts]
    owner = np.searchsorted(doc_starts, starts, side="right") - 1
    return ids, np.bincount(owner, minlength=len(texts))


def shingle_hashes(texts: list[str], n: int, char: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of every n-gram of every text, concatenated, and offsets (len(texts) + 1).

    A text with fewer than `n` units has one shingle (all of it); an empty text has none. The n-gram
    hash is a weighted sum of unit hashes, mixed, computed for the whole batch with array operations.
    """
    ids, lengths = units(texts, char)
    docs = len(texts)
    pad = n - 1
    # Lay the documents out with n-1 zeros after each, so no n-gram crosses into the next document.
    padded = np.zeros(len(ids) + docs * pad + n, dtype=np.uint64)
    padded[np.arange(len(ids)) + np.repeat(np.arange(docs, dtype=np.int64), lengths) * pad] = ids
    span = len(ids) + docs * pad
    weights = _ngram_weights(n)
    combined = padded[:span] * weights[0]
    for k in range(1, n):
        combined += padded[k : span + k] * weights[k]
    counts = np.where(lengths > 0, np.maximum(lengths - n + 1, 1), 0)
    offsets = np.zeros(docs + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    starts = np.zeros(docs, dtype=np.int64)
    np.cumsum(lengths[:-1] + pad, out=starts[1:])
    positions = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
    hashes = (_mix64(combined[positions]) >> np.uint64(32)).astype(np.uint32)
    return hashes, offsets


# --- signatures ----------------------------------------------------------------------------------


@cache
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's permutation parameters (a, b) for its affine32 scheme, made the way it makes them.

    Generated here rather than read from `datasketch.MinHash(...).permutations` because importing
    datasketch costs about two seconds per worker process (it pulls in scipy); the tests check that
    both agree bit for bit.
    """
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, which datasketch's affine32 scheme applies to every input hash."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int = 1,
               used: int | None = None) -> np.ndarray:
    """MinHash signatures (documents x num_perm, uint32) of the shingle hashes of many documents.

    Bit-identical to datasketch's `MinHash(num_perm, seed, scheme="affine32")` updated with the same
    hashes; a document without shingles gets the all-max "empty" signature datasketch uses. With
    `used`, only the first `used` values are computed (what LSH with bands x rows < num_perm reads).
    """
    a, b = permutations(num_perm, seed)
    if used is not None:
        a, b, num_perm = a[:used], b[:used], used
    docs = len(offsets) - 1
    out = np.full((docs, num_perm), _EMPTY, dtype=np.uint32)
    nonempty = np.diff(offsets) > 0
    if not nonempty.any():
        return out
    mixed = _fmix32(hashes.astype(np.uint32, copy=False))
    starts = offsets[:-1][nonempty]
    row = np.empty(len(mixed), dtype=np.uint32)
    block = np.empty((len(starts), num_perm), dtype=np.uint32)
    # One permutation at a time over all shingles of the batch: contiguous and cache friendly.
    for k in range(num_perm):
        np.multiply(mixed, a[k], out=row)
        row += b[k]
        block[:, k] = np.minimum.reduceat(row, starts)
    out[nonempty] = block
    return out


def signature_minhash(signature: np.ndarray, seed: int = 1):
    """A datasketch `LeanMinHash` holding one signature row (for `.jaccard()` estimates and LSH indexes)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=seed, hashvalues=np.asarray(signature, dtype=np.uint32), scheme="affine32")


def band_keys(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per band (documents x bands): documents share a key when a band matches exactly."""
    docs = sigs.shape[0]
    cut = sigs[:, : bands * rows].reshape(docs, bands, rows).astype(np.uint64)
    key = np.full((docs, bands), 0x9E3779B97F4A7C15, dtype=np.uint64) + np.arange(bands, dtype=np.uint64)
    for r in range(rows):
        key = _mix64(key ^ cut[:, :, r])
    return key


# --- choosing bands and rows ---------------------------------------------------------------------


def candidate_probability(jaccard: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """The S-curve: probability that two documents with this Jaccard similarity share a band."""
    return 1.0 - (1.0 - np.asarray(jaccard, dtype=float) ** rows) ** bands


@cache
def choose_bands(threshold: float, num_perm: int, min_recall: float | None = None) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm for a Jaccard threshold.

    Without `min_recall` the threshold is where the S-curve crosses 1/2 ((1/bands)^(1/rows) closest to
    it), with as many permutations in use as possible (the steepest curve). With `min_recall` (used when
    candidates are verified exactly, so extra candidates cost time, not precision), the curve that
    reaches that probability at the threshold with the fewest candidates below it.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
    below = np.linspace(max(0.0, 2 * threshold - 1), threshold, 101)
    best, best_cost = (1, 1), (math.inf, 0)
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            if min_recall is None:
                cost = (round(abs((1 / bands) ** (1 / rows) - threshold) / 0.01), -bands * rows)
            elif candidate_probability(threshold, bands, rows) >= min_recall:
                cost = (float(np.trapezoid(candidate_probability(below, bands, rows), below)), -bands * rows)
            else:
                continue
            if cost < best_cost:
                best, best_cost = (bands, rows), cost
    return best


def s_curve(bands: int, rows: int, points: list[float] | None = None) -> list[tuple[float, float]]:
    points = points or [round(0.05 * i, 2) for i in range(4, 21)]
    return [(j, float(candidate_probability(j, bands, rows))) for j in points]


def format_s_curve(bands: int, rows: int, threshold: float | None = None) -> str:
    """A text plot of the S-curve, one line per Jaccard value."""
    lines = [f"LSH {bands} bands x {rows} rows: P(candidate) = 1 - (1 - J^{rows})^{bands}"
             + (f"; threshold {threshold}" if threshold is not None else "")]
    for j, p in s_curve(bands, rows):
        marker = " <- threshold" if threshold is not None and abs(j - threshold) < 0.025 else ""
        lines.append(f"  J={j:4.2f}  {p:6.3f}  {'#' * round(p * 40)}{marker}")
    return "\n".join(lines)


# --- the stage -----------------------------------------------------------------------------------


class MinhashDedup(KeyDedup):
    """Removes near-duplicates: documents whose shingle sets have Jaccard similarity >= `threshold`
    (as MinHash LSH finds them). With `verify` (the default), a candidate pair is linked only if the
    exact Jaccard similarity of its *distinctive* shingles reaches `threshold` - shingles found in
    `common_df` or more documents (site headers, footers, navigation) are left out of that count, so
    two different posts wrapped in the same boilerplate are not duplicates - or if the similarity of
    all shingles reaches `full_threshold`.

    `keep` chooses which member of a cluster survives: `first` (input order), `longest`, or `quality`
    (highest `metadata[quality_key]`, then longest, then first). With `index_dir`, documents are also
    checked against a saved index of earlier runs, and (with `update_index`) the kept ones are added.
    """

    kind = "minhash"
    reason = "near_duplicate"
    batch_size = 256

    def __init__(
        self,
        threshold: float = 0.5,
        num_perm: int = 128,
        bands: int | None = None,
        rows: int | None = None,
        ngram: int = 5,
        shingle: str = "auto",
        char_ngram: int = 5,
        seed: int = 1,
        keep: str = "first",
        quality_key: str | None = "quality_score",
        verify: bool = True,
        common_df: int | None = 50,
        full_threshold: float = 0.75,
        index_dir: str | None = None,
        update_index: bool = True,
        batch_size: int = 256,
    ) -> None:
        super().__init__(keep, quality_key, index_dir, update_index)
        if shingle not in SHINGLES:
            raise ValueError(f"shingle must be one of {', '.join(SHINGLES)}, not {shingle!r}")
        if ngram < 1 or char_ngram < 1 or num_perm < 1:
            raise ValueError("ngram, char_ngram and num_perm must be positive")
        if (bands is None) != (rows is None):
            raise ValueError("give both bands and rows, or neither (then they follow from threshold)")
        if bands is None or rows is None:
            bands, rows = choose_bands(threshold, num_perm, VERIFY_RECALL if verify else None)
        if bands * rows > num_perm:
            raise ValueError(f"bands x rows ({bands} x {rows}) needs num_perm >= {bands * rows}, not {num_perm}")
        self.threshold, self.num_perm, self.bands, self.rows = threshold, num_perm, bands, rows
        self.ngram, self.shingle, self.char_ngram, self.seed = ngram, shingle, char_ngram, seed
        if common_df is not None and common_df < 2:
            raise ValueError(f"common_df must be at least 2 (or null to count every shingle), not {common_df}")
        self.verify, self.common_df, self.full_threshold = verify, common_df, full_threshold
        self.batch_size = batch_size
        self._shingle_file: Any = None
        self._shingle_counts: list[np.ndarray] = []

    def key_params(self) -> dict[str, Any]:
        return {**super().key_params(), "rows": self.rows, "num_perm": self.num_perm, "seed": self.seed,
                "ngram": self.ngram, "shingle": self.shingle, "char_ngram": self.char_ngram}

    def uses_chars(self, doc: Document) -> bool:
        if self.shingle != "auto":
            return self.shingle == "char"
        language = doc.metadata.get("language")
        if language:
            return str(language).split("_")[0] in NO_SPACE_LANGUAGES
        text = doc.text
        return len(text) >= 20 and text.count(" ") < 0.02 * len(text)

    def shingles(self, docs: list[Document]) -> tuple[np.ndarray, np.ndarray]:
        """Shingle hashes of a batch (word and character documents hashed in their own groups)."""
        char = np.array([self.uses_chars(d) for d in docs], dtype=bool)
        if not char.any() or char.all():
            n = self.char_ngram if char.any() else self.ngram
            return shingle_hashes([d.text for d in docs], n, char=bool(char.any()))
        parts = {}
        for flag, n in ((False, self.ngram), (True, self.char_ngram)):
            chosen = np.flatnonzero(char == flag)
            parts[flag] = (chosen, *shingle_hashes([docs[i].text for i in chosen], n, char=flag))
        counts = np.zeros(len(docs), dtype=np.int64)
        pieces: list[np.ndarray] = [np.zeros(0, np.uint32)] * len(docs)
        for chosen, hashes, offsets in parts.values():
            for j, i in enumerate(chosen.tolist()):
                pieces[i] = hashes[offsets[j] : offsets[j + 1]]
                counts[i] = offsets[j + 1] - offsets[j]
        offsets = np.zeros(len(docs) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return np.concatenate(pieces), offsets

    def make_keys(self, docs: list[Document], ctx: RankContext) -> tuple[np.ndarray, np.ndarray | None]:
        hashes, offsets = self.shingles(docs)
        # Only the first bands x rows of the num_perm datasketch permutations are ever used.
        sigs = signatures(hashes, offsets, self.num_perm, self.seed, used=self.bands * self.rows)
        if self._shingle_file is not None:
            sets, counts = distinct_per_document(hashes, offsets)
            self._shingle_file.write(sets.tobytes())
            self._shingle_counts.append(counts)
        # Documents without a single shingle (empty, or only punctuation) are left to exact dedup.
        return band_keys(sigs, self.bands, self.rows), np.diff(offsets) > 0

    def _shingle_path(self, ctx: RankContext) -> Path:
        return self.folder(ctx) / "sig" / f"{ctx.rank:05d}.shingles.u32"

    def on_signatures_start(self, ctx: RankContext) -> None:
        """With `verify`, each document's distinct shingle hashes stream to a file as batches go by."""
        self._shingle_counts = []
        self._shingle_file = None
        if self.verify:
            path = self._shingle_path(ctx)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._shingle_file = open(path.with_name(f".{path.name}.tmp-{os.getpid()}"), "wb")

    def on_signatures_done(self, ctx: RankContext) -> None:
        if self._shingle_file is None:
            return
        handle, self._shingle_file = self._shingle_file, None
        handle.close()
        path = self._shingle_path(ctx)
        os.replace(handle.name, path)
        counts = np.concatenate(self._shingle_counts) if self._shingle_counts else np.zeros(0, np.int64)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        save_npy(path.with_name(f"{ctx.rank:05d}.shingle_offsets.npy"), offsets)

    def verifier(self) -> VerifierFactory | None:
        if not self.verify:
            return None
        threshold, common_df, full_threshold = self.threshold, self.common_df, self.full_threshold
        return lambda parts: ExactJaccard(parts, threshold, common_df, full_threshold)


def distinct_per_document(hashes: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each document's distinct shingle hashes, sorted and concatenated, and how many each has."""
    docs = len(offsets) - 1
    owner = np.repeat(np.arange(docs, dtype=np.uint64), np.diff(offsets))
    keys = np.sort((owner << np.uint64(32)) | hashes.astype(np.uint64))  # by document, then hash
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    keys = keys[first]
    counts = np.bincount((keys >> np.uint64(32)).astype(np.int64), minlength=docs)
    return (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32), counts


class ExactJaccard:
    """Judges candidate pairs on their exact shingle sets (memory-mapped per part: this run's ranks and the
    index). A pair is accepted when the Jaccard similarity of its distinctive shingles reaches `threshold`
    or that of all its shingles reaches `full_threshold`. Distinctive: found in fewer than `common_df`
    documents (counted over the whole run and index, for the shingles of candidate documents); when
    neither document has any, all shingles are compared. A pair with a document whose part kept no sets
    (an index built without `verify`) is accepted on its MinHash evidence."""

    def __init__(self, parts: list[Part], threshold: float, common_df: int | None = None,
                 full_threshold: float = 1.0) -> None:
        self.parts, self.threshold = parts, threshold
        self.common_df, self.full_threshold = common_df, full_threshold
        self.bases = np.array([p.base for p in parts], dtype=np.int64)
        self._open: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
        self.common = np.zeros(0, np.uint32)  # sorted hashes of the common shingles

    def _sets(self, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        if index not in self._open:
            part = self.parts[index]
            offsets_path = part.folder / f"{part.name}.shingle_offsets.npy"
            if not offsets_path.exists():
                self._open[index] = None
            else:
                offsets = np.load(offsets_path)
                data = (np.memmap(part.folder / f"{part.name}.shingles.u32", dtype=np.uint32, mode="r")
                        if offsets[-1] else np.zeros(0, np.uint32))
                self._open[index] = (data, offsets)
        return self._open[index]

    def shingles(self, g: int) -> np.ndarray | None:
        index = int(np.searchsorted(self.bases, g, side="right") - 1)
        found = self._sets(index)
        if found is None:
            return None
        data, offsets = found
        local = g - self.parts[index].base
        return np.asarray(data[offsets[local] : offsets[local + 1]])

    def count_common(self, documents: np.ndarray, chunk: int = 1 << 22) -> None:
        """Find which shingles of these documents are common: one pass over every part's sets, counting
        only the candidates' shingles (so memory follows the candidates, not the corpus)."""
        if not self.common_df:
            return
        sets = [self.shingles(int(g)) for g in documents.tolist()]
        wanted = sorted_unique(np.concatenate([x for x in sets if x is not None] or [np.zeros(0, np.uint32)]))
        if not len(wanted):
            return
        counts = np.zeros(len(wanted), dtype=np.int64)
        # A bitmap of the wanted hashes' top 28 bits (32 MiB) lets most of the corpus's shingles be
        # skipped before the binary search, which is what costs.
        bitmap = np.zeros(1 << 25, dtype=np.uint8)
        top = wanted >> np.uint32(4)
        np.bitwise_or.at(bitmap, top >> np.uint32(3), np.left_shift(1, top & np.uint32(7)).astype(np.uint8))
        for index in range(len(self.parts)):
            found = self._sets(index)
            if found is None:
                continue
            data = found[0]
            for start in range(0, len(data), chunk):
                block = np.asarray(data[start : start + chunk])
                top = block >> np.uint32(4)
                block = block[(bitmap[top >> np.uint32(3)] >> (top & np.uint32(7)).astype(np.uint8)) & 1 == 1]
                at = np.minimum(np.searchsorted(wanted, block), len(wanted) - 1)
                hit = wanted[at] == block  # a document's set has each shingle once: counts are documents
                counts += np.bincount(at[hit], minlength=len(wanted))
        self.common = wanted[counts >= self.common_df]

    def _distinctive(self, x: np.ndarray) -> np.ndarray:
        """The shingles of a sorted set that are not common (a binary search each: `common` may be large)."""
        at = np.minimum(np.searchsorted(self.common, x), len(self.common) - 1)
        return x[self.common[at] != x]

    def jaccard(self, a: int, b: int) -> tuple[float, float] | None:
        """(Jaccard of distinctive shingles, Jaccard of all shingles), or None without sets."""
        x, y = self.shingles(a), self.shingles(b)
        if x is None or y is None:
            return None
        if not len(x) or not len(y):
            return 0.0, 0.0
        inter = len(np.intersect1d(x, y, assume_unique=True))
        full = inter / (len(x) + len(y) - inter)
        if not len(self.common):
            return full, full
        xr, yr = self._distinctive(x), self._distinctive(y)
        if not len(xr) and not len(yr):
            return full, full
        inter = len(np.intersect1d(xr, yr, assume_unique=True))
        return inter / (len(xr) + len(yr) - inter), full

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        self.count_common(sorted_unique(np.concatenate([u, v])))
        result = []
        for a, b in zip(u.tolist(), v.tolist(), strict=True):
            j = self.jaccard(a, b)
            result.append(j is None or j[0] >= self.threshold or j[1] >= self.full_threshold)
        return np.array(result, dtype=bool)


def main(argv: list[str] | None = None) -> None:
    """`python -m corpus.curate.minhash --threshold 0.5 [--num-perm 128]`: print bands x rows and the S-curve."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--bands", type=int)
    parser.add_argument("--rows", type=int)
    parser.add_argument("--verify", action="store_true", help="bands for exact verification (recall 0.99)")
    args = parser.parse_args(argv)
    if args.bands and args.rows:
        bands, rows = args.bands, args.rows
    else:
        bands, rows = choose_bands(args.threshold, args.num_perm, VERIFY_RECALL if args.verify else None)
    print(format_s_curve(bands, rows, args.threshold))


if __name__ == "__main__":
    main()
