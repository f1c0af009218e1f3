"""Gopher repetition rules (Rae et al. 2021, table A1), with the published thresholds.

Documents that repeat lines, paragraphs or n-grams are mostly boilerplate, spam or generated lists.
The n-gram statistics are computed on integer ids with numpy (one `np.unique` per n, each n-gram's id
built from the (n-1)-gram's id and the next word), so no n-gram string is ever built; the duplicate
n-gram walk reproduces the reference implementation exactly, including its skipping rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corpus.core.document import Document
from corpus.curate.quality import HeuristicFilter
from corpus.curate.text import TextView

TOP_N_GRAMS = ((2, 0.20), (3, 0.18), (4, 0.16))
DUP_N_GRAMS = ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))


def find_duplicates(items: list[str]) -> tuple[int, int]:
    """(number of items that repeat an earlier one, characters in those repeats)."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


class NGrams:
    """Dense integer ids for the n-grams of a token sequence, for every n, built incrementally.

    For each n it keeps the id of the n-gram at each position, the number of distinct n-grams and the
    first position of each; once every n-gram is distinct, longer ones are too (nothing repeats).
    """

    def __init__(self, words: list[str], counts: dict[str, int] | None = None) -> None:
        index = {w: i for i, w in enumerate(counts if counts is not None else dict.fromkeys(words))}
        self.ids = np.fromiter(map(index.__getitem__, words), dtype=np.int64, count=len(words))
        self.vocab = len(index)
        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        self.cumlen = np.concatenate(([0], np.cumsum(lengths)))
        self._grams: dict[int, tuple[np.ndarray, int, np.ndarray | None]] = {1: (self.ids, self.vocab, None)}

    def _level(self, n: int) -> tuple[np.ndarray, int, np.ndarray | None]:
        best = max(k for k in self._grams if k <= n)
        ids, size, first = self._grams[best]
        if first is None:  # unigrams: ids are numbered in order of first appearance
            first = np.unique(ids, return_index=True)[1]
            self._grams[1] = (ids, size, first)
        for k in range(best + 1, n + 1):
            pairs = ids[:-1] * self.vocab + self.ids[k - 1:]
            uniq, first, ids = np.unique(pairs, return_index=True, return_inverse=True)
            size = len(uniq)
            self._grams[k] = (ids, size, first)
        return ids, size, first

    def grams(self, n: int) -> np.ndarray:
        """Id of the n-gram starting at each position (length len(words) - n + 1)."""
        return self._level(n)[0]

    def all_distinct(self, n: int) -> bool:
        known = [k for k in self._grams if k <= n and self._grams[k][1] == len(self._grams[k][0])]
        return bool(known)

    def top_count_chars(self, n: int, separator: int) -> int:
        """Characters of the most frequent n-gram times its count (ties: the first one seen)."""
        if self.all_distinct(n):
            # Every n-gram occurs once: the "top" one is the first (Counter.most_common keeps order).
            return int(self.cumlen[n] - self.cumlen[0] + separator * (n - 1)) if len(self.ids) >= n else 0
        grams = self.grams(n)
        if grams.size == 0:
            return 0
        counts = np.bincount(grams)
        best = counts.max()
        # The first position whose n-gram has the top count (Counter.most_common keeps first-seen order).
        first = int(np.flatnonzero(counts[grams] == best)[0])
        return int(self.cumlen[first + n] - self.cumlen[first] + separator * (n - 1)) * int(best)

    def duplicate_chars(self, n: int) -> int:
        """Characters in n-grams that repeat an earlier one, walking left to right and jumping over a
        repeated n-gram (the reference's rule), so overlapping repeats are not counted twice."""
        if self.all_distinct(n):
            return 0
        grams, size, first = self._level(n)
        m = grams.size
        if m == 0 or size == m:
            return 0
        first_pos = first[grams]
        candidates = np.flatnonzero(first_pos < np.arange(m))
        # Walk only the positions that repeat an earlier n-gram; a position jumped over by an earlier
        # repeat is not visited, and its n-gram does not count as seen.
        skipped: set[int] = set()
        total = 0
        cumlen = self.cumlen
        for p, f in zip(candidates.tolist(), first_pos[candidates].tolist(), strict=True):
            if p in skipped:
                continue
            if f in skipped and not self._seen_before(grams, p, skipped):
                continue
            total += int(cumlen[p + n] - cumlen[p])
            skipped.update(range(p + 1, p + n))
        return total

    @staticmethod
    def _seen_before(grams: np.ndarray, p: int, skipped: set[int]) -> bool:
        """Rare case: the first occurrence was jumped over; was any other earlier occurrence visited?"""
        earlier = np.flatnonzero(grams[:p] == grams[p]).tolist()
        return any(q not in skipped for q in earlier)


class GopherRepetitionFilter(HeuristicFilter):
    """Drops documents with too many repeated lines, paragraphs or n-grams (Gopher, table A1).

    Fractions are of characters in the document (n-gram rules) or of lines/paragraphs. For languages
    written without spaces, words are characters and n is scaled by `chars_per_word` (a 5-gram of
    Chinese words is ~8 characters), so ordinary text is not mistaken for repetition.
    """

    def __init__(
        self,
        dup_line_frac: float | None = 0.3,
        dup_para_frac: float | None = 0.3,
        dup_line_char_frac: float | None = 0.2,
        dup_para_char_frac: float | None = 0.2,
        top_n_grams: list[list[float]] | None = None,
        dup_n_grams: list[list[float]] | None = None,
        annotate: bool = True,
        annotate_only: bool = False,
    ) -> None:
        self.dup_line_frac = dup_line_frac
        self.dup_para_frac = dup_para_frac
        self.dup_line_char_frac = dup_line_char_frac
        self.dup_para_char_frac = dup_para_char_frac
        self.top_n_grams = [(int(n), float(f)) for n, f in (top_n_grams if top_n_grams is not None else TOP_N_GRAMS)]
        self.dup_n_grams = [(int(n), float(f)) for n, f in (dup_n_grams if dup_n_grams is not None else DUP_N_GRAMS)]
        self.annotate = annotate
        self.annotate_only = annotate_only

    def check(self, doc: Document, signals: dict[str, Any]) -> str | None:
        text_len = len(doc.text)
        if not text_len:
            return "gopher_rep_empty"
        text = self.text_view(doc)
        every = self.annotate_only
        reason = None

        paragraphs = text.paragraphs
        dup, dup_chars = find_duplicates(paragraphs)
        signals["rep_dup_para_frac"] = dup / len(paragraphs)
        signals["rep_dup_para_char_frac"] = dup_chars / text_len
        if self.dup_para_frac and dup / len(paragraphs) > self.dup_para_frac:
            reason = self.failed(reason, "gopher_rep_dup_para_frac")
        elif self.dup_para_char_frac and dup_chars / text_len > self.dup_para_char_frac:
            reason = self.failed(reason, "gopher_rep_dup_para_char_frac")
        if reason and not every:
            return reason

        lines = text.repetition_lines
        dup, dup_chars = find_duplicates(lines)
        signals["rep_dup_line_frac"] = dup / len(lines)
        signals["rep_dup_line_char_frac"] = dup_chars / text_len
        if self.dup_line_frac and dup / len(lines) > self.dup_line_frac:
            reason = self.failed(reason, "gopher_rep_dup_line_frac")
        elif self.dup_line_char_frac and dup_chars / text_len > self.dup_line_char_frac:
            reason = self.failed(reason, "gopher_rep_dup_line_char_frac")
        if reason and not every:
            return reason

        grams = NGrams(text.words, text.word_counts)
        separator = 0 if text.spaceless else 1
        for n, limit in self.top_n_grams:
            size = self._scaled(n, text)
            share = grams.top_count_chars(size, separator) / text_len
            signals[f"rep_top_{n}_gram_frac"] = share
            if share > limit:
                reason = self.failed(reason, f"gopher_rep_top_{n}_gram")
                if not every:
                    return reason
        for n, limit in self.dup_n_grams:
            size = self._scaled(n, text)
            share = grams.duplicate_chars(size) / text_len
            signals[f"rep_dup_{n}_gram_frac"] = share
            if share > limit:
                reason = self.failed(reason, f"gopher_rep_dup_{n}_gram")
                if not every:
                    return reason
        return reason

    @staticmethod
    def _scaled(n: int, text: TextView) -> int:
        return n if not text.spaceless else max(n, int(n * text.chars_per_word + 0.5))
