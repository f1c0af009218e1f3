"""Heuristic quality filters with their published defaults; every rule has its own drop reason.

Each filter stores the signals it measured in `metadata["signals"]` (kept documents carry all of them,
rejected ones those measured up to the rule that failed), so a corpus can be re-filtered later on stored
values without recomputing (the RedPajama-V2 idea). `annotate_only=True` measures every signal and
drops nothing.

This module holds Gopher quality (Rae et al. 2021, appendix A.1.1); Gopher repetition, C4 and FineWeb
live in `corpus.curate.repetition`, `corpus.curate.c4` and `corpus.curate.fineweb`.
"""

from __future__ import annotations

from typing import Any

from corpus.core.document import Document
from corpus.core.stage import Filter
from corpus.curate.text import TextView, view

GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
Result = bool | tuple[bool, str]


class HeuristicFilter(Filter):
    """Shared plumbing: the document's shared text view, signal recording and annotate-only mode."""

    annotate: bool = True
    annotate_only: bool = False

    def text_view(self, doc: Document) -> TextView:
        return view(doc.text, doc.metadata.get("language"))

    def record(self, doc: Document, signals: dict[str, Any]) -> None:
        if self.annotate and signals:
            stored = doc.metadata.setdefault("signals", {})
            for key, value in signals.items():
                stored[key] = round(value, 4) if isinstance(value, float) else value

    def keep(self, doc: Document) -> Result:
        signals: dict[str, Any] = {}
        try:
            reason = self.check(doc, signals)
        finally:
            self.record(doc, signals)
        if reason is None or self.annotate_only:
            return True
        return False, reason

    def check(self, doc: Document, signals: dict[str, Any]) -> str | None:
        """Measure into `signals` rule by rule; return the first failing rule's reason (None: keep).

        In annotate-only mode a subclass must keep measuring after a failure; `self.failed` helps.
        """
        raise NotImplementedError

    def failed(self, reason: str | None, rule: str) -> str | None:
        """The reason to report so far: the first failure wins."""
        return reason or rule


class GopherQualityFilter(HeuristicFilter):
    """The quality rules of Gopher (Rae et al. 2021), defaults as published and as FineWeb runs them.

    Words are tokens from `corpus.curate.text` (punctuation separate, as datatrove's spaCy tokenizer); word
    counts and lengths use words with at least one non-punctuation character. The stop-word rule needs
    at least `min_stop_words` *distinct* words from the list, and applies to the languages it has a list
    for (`stop_words` may be a list for English or a {language: list} mapping). For languages written
    without spaces, word counts are characters / `chars_per_word` and the word-length rules are skipped.
    """

    def __init__(
        self,
        min_doc_words: int | None = 50,
        max_doc_words: int | None = 100_000,
        min_avg_word_length: float | None = 3,
        max_avg_word_length: float | None = 10,
        max_symbol_word_ratio: float | None = 0.1,
        max_bullet_lines_ratio: float | None = 0.9,
        max_ellipsis_lines_ratio: float | None = 0.3,
        max_non_alpha_words_ratio: float | None = 0.8,
        min_stop_words: int | None = 2,
        stop_words: list[str] | dict[str, list[str]] | None = None,
        stop_word_languages: list[str] | None = None,
        annotate: bool = True,
        annotate_only: bool = False,
    ) -> None:
        self.min_doc_words = min_doc_words
        self.max_doc_words = max_doc_words
        self.min_avg_word_length = min_avg_word_length
        self.max_avg_word_length = max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        # Named as in the paper and datatrove; it is the *minimum* share of words with a letter.
        self.max_non_alpha_words_ratio = max_non_alpha_words_ratio
        self.min_stop_words = min_stop_words
        if isinstance(stop_words, dict):
            self.stop_words = {lang: frozenset(words) for lang, words in stop_words.items()}
        else:
            words = frozenset(GOPHER_STOP_WORDS if stop_words is None else stop_words)
            self.stop_words = {lang: words for lang in (stop_word_languages or ["en"])}
        self.annotate = annotate
        self.annotate_only = annotate_only

    def check(self, doc: Document, signals: dict[str, Any]) -> str | None:
        text = self.text_view(doc)
        every = self.annotate_only
        reason = None
        n_tokens = len(text.words)
        n_words = text.n_non_symbol_words / text.chars_per_word
        signals["gopher_words"] = round(n_words, 1)
        if self.min_doc_words and n_words < self.min_doc_words:
            reason = self.failed(reason, "gopher_short_doc")
        if self.max_doc_words and n_words > self.max_doc_words:
            reason = self.failed(reason, "gopher_long_doc")
        if reason and not every:
            return reason
        if not text.spaceless:
            mean = text.mean_word_length
            signals["gopher_mean_word_length"] = mean
            if self.min_avg_word_length and mean < self.min_avg_word_length:
                reason = self.failed(reason, "gopher_below_avg_word_length")
            if self.max_avg_word_length and mean > self.max_avg_word_length:
                reason = self.failed(reason, "gopher_above_avg_word_length")
            if reason and not every:
                return reason
        raw = doc.text
        hashes = raw.count("#") / max(n_tokens, 1)
        ellipses = (raw.count("...") + raw.count("…")) / max(n_tokens, 1)
        signals["gopher_hash_ratio"] = hashes
        signals["gopher_ellipsis_ratio"] = ellipses
        if self.max_symbol_word_ratio is not None:
            if hashes > self.max_symbol_word_ratio:
                reason = self.failed(reason, "gopher_too_many_hashes")
            elif ellipses > self.max_symbol_word_ratio:
                reason = self.failed(reason, "gopher_too_many_ellipsis")
            if reason and not every:
                return reason
        lines = text.lines
        n_lines = max(len(lines), 1)
        bullets = sum(1 for line in lines if line.lstrip().startswith(("•", "-"))) / n_lines
        signals["gopher_bullet_lines_ratio"] = bullets
        if self.max_bullet_lines_ratio is not None and bullets > self.max_bullet_lines_ratio:
            reason = self.failed(reason, "gopher_too_many_bullets")
            if not every:
                return reason
        ellipsis_lines = sum(1 for line in lines if line.rstrip().endswith(("...", "…"))) / n_lines
        signals["gopher_ellipsis_lines_ratio"] = ellipsis_lines
        if self.max_ellipsis_lines_ratio is not None and ellipsis_lines > self.max_ellipsis_lines_ratio:
            reason = self.failed(reason, "gopher_too_many_end_ellipsis")
            if not every:
                return reason
        alpha = text.alpha_words / max(n_tokens, 1)
        signals["gopher_alpha_words_ratio"] = alpha
        if self.max_non_alpha_words_ratio is not None and alpha < self.max_non_alpha_words_ratio:
            reason = self.failed(reason, "gopher_below_alpha_threshold")
            if not every:
                return reason
        stop_words = self._stop_words(text.language)
        if stop_words is not None:
            found = len(stop_words.intersection(text.word_counts))
            signals["gopher_stop_words"] = found
            if self.min_stop_words and found < self.min_stop_words:
                reason = self.failed(reason, "gopher_too_few_stop_words")
        return reason

    def _stop_words(self, language: str | None) -> frozenset[str] | None:
        """The list for this language; documents without a language yet are held to the English list."""
        if language is None:
            return self.stop_words.get("en")
        return self.stop_words.get(language)
