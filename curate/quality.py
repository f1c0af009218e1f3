"""Heuristic quality filters with their published defaults; every rule has its own drop reason."""

from __future__ import annotations

from corpus.document import Document
from corpus.stage import Filter
from curate.text import view

GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")


class GopherQualityFilter(Filter):
    """The quality rules of Gopher (Rae et al. 2021, appendix A), defaults as published.

    Stop-word and word-length rules are English-specific in the paper, so they apply only to documents
    whose `language` is in `stop_word_languages` (or that have no language yet); for languages written
    without spaces, words are single characters and the word-length rules are skipped.
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
        stop_words: list[str] | None = None,
        stop_word_languages: list[str] | None = None,
    ) -> None:
        self.min_doc_words = min_doc_words
        self.max_doc_words = max_doc_words
        self.min_avg_word_length = min_avg_word_length
        self.max_avg_word_length = max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        self.max_non_alpha_words_ratio = max_non_alpha_words_ratio
        self.min_stop_words = min_stop_words
        self.stop_words = frozenset(stop_words or GOPHER_STOP_WORDS)
        self.stop_word_languages = frozenset(stop_word_languages or ["en"])

    def keep(self, doc: Document) -> bool | tuple[bool, str]:
        language = doc.metadata.get("language")
        text = view(doc.text, language)
        words = text.words
        n_words = len(words)
        if self.min_doc_words and n_words < self.min_doc_words:
            return False, "gopher_short_doc"
        if self.max_doc_words and n_words > self.max_doc_words:
            return False, "gopher_long_doc"
        if not text.spaceless:
            avg = sum(len(w) for w in words) / max(n_words, 1)
            if self.min_avg_word_length and avg < self.min_avg_word_length:
                return False, "gopher_below_avg_word_length"
            if self.max_avg_word_length and avg > self.max_avg_word_length:
                return False, "gopher_above_avg_word_length"
        tokens = text.tokens
        if self.max_symbol_word_ratio is not None:
            symbols = doc.text.count("#") + doc.text.count("...") + doc.text.count("…")
            if symbols / max(len(tokens), 1) > self.max_symbol_word_ratio:
                return False, "gopher_too_many_symbols"
        lines = text.lines
        if lines and self.max_bullet_lines_ratio is not None:
            bullets = sum(1 for line in lines if line.startswith(("•", "-", "*", "‣", "◦")))
            if bullets / len(lines) > self.max_bullet_lines_ratio:
                return False, "gopher_too_many_bullets"
        if lines and self.max_ellipsis_lines_ratio is not None:
            ellipsis = sum(1 for line in lines if line.endswith(("...", "…")))
            if ellipsis / len(lines) > self.max_ellipsis_lines_ratio:
                return False, "gopher_too_many_end_ellipsis"
        if self.max_non_alpha_words_ratio is not None and n_words:
            alpha = sum(1 for w in words if any(c.isalpha() for c in w))
            if alpha / n_words < self.max_non_alpha_words_ratio:
                return False, "gopher_below_alpha_threshold"
        if self.min_stop_words and (language is None or language in self.stop_word_languages):
            if sum(1 for w in text.lower_words if w in self.stop_words) < self.min_stop_words:
                return False, "gopher_too_few_stop_words"
        return True
