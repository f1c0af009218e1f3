"""FineWeb's additional quality rules (Penedo et al. 2024, section 3.5), with the published thresholds.

FineWeb added these after comparing Gopher/C4-filtered data against ablation models: documents whose
lines mostly lack terminal punctuation, are mostly short, repeat whole lines, or are lists.
"""

from __future__ import annotations

from typing import Any

from corpus.core.document import Document
from corpus.curate.quality import HeuristicFilter
from corpus.curate.repetition import find_duplicates
from corpus.curate.text import NO_TERMINAL_PUNCTUATION_LANGUAGES, SPACED_CHARS_PER_WORD, terminal_punctuation


class FineWebQualityFilter(HeuristicFilter):
    """- `fineweb_line_punct_ratio`: under `line_punct_thr` of lines end in terminal punctuation;
    - `fineweb_short_line_ratio`: over `short_line_thr` of lines are at most `short_line_length` characters;
    - `fineweb_char_dup_ratio`: over `char_duplicates_ratio` of characters are in repeated lines;
    - `fineweb_list_ratio`: over `new_line_ratio` newlines per word.

    For languages written without spaces the short-line length is scaled to the same number of words
    (30 characters of English are ~5 words, ~8 characters of Chinese); Thai and Lao end sentences with a
    space, not a mark, so the line-punctuation rule is not applied to them.
    """

    def __init__(
        self,
        line_punct_thr: float | None = 0.12,
        line_punct_exclude_zero: bool = False,
        stop_chars: list[str] | None = None,
        short_line_thr: float | None = 0.67,
        short_line_length: int = 30,
        char_duplicates_ratio: float | None = 0.01,
        new_line_ratio: float | None = 0.3,
        annotate: bool = True,
        annotate_only: bool = False,
    ) -> None:
        self.line_punct_thr = line_punct_thr
        self.line_punct_exclude_zero = line_punct_exclude_zero
        self.stop_chars = tuple(stop_chars) if stop_chars else None
        self.short_line_thr = short_line_thr
        self.short_line_length = short_line_length
        self.char_duplicates_ratio = char_duplicates_ratio
        self.new_line_ratio = new_line_ratio
        self.annotate = annotate
        self.annotate_only = annotate_only

    def check(self, doc: Document, signals: dict[str, Any]) -> str | None:
        text = self.text_view(doc)
        lines = text.nonempty_lines
        if not lines:
            return "fineweb_empty"
        every = self.annotate_only
        reason = None
        ends = self.stop_chars
        if ends is None:
            terminal = terminal_punctuation()
            punct = sum(1 for line in lines if line[-1] in terminal) / len(lines)
        else:
            punct = sum(1 for line in lines if line.endswith(ends)) / len(lines)
        signals["fineweb_line_punct_ratio"] = punct
        if (self.line_punct_thr is not None and punct < self.line_punct_thr
                and not (punct == 0 and self.line_punct_exclude_zero)
                and text.language not in NO_TERMINAL_PUNCTUATION_LANGUAGES):
            reason = self.failed(reason, "fineweb_line_punct_ratio")
            if not every:
                return reason
        limit = self.short_line_length
        if text.spaceless:
            limit = round(limit * text.chars_per_word / SPACED_CHARS_PER_WORD)
        short = sum(1 for line in lines if len(line) <= limit) / len(lines)
        signals["fineweb_short_line_ratio"] = short
        if self.short_line_thr is not None and short > self.short_line_thr:
            reason = self.failed(reason, "fineweb_short_line_ratio")
            if not every:
                return reason
        chars = len(doc.text) - doc.text.count("\n")
        dup = find_duplicates(lines)[1] / max(chars, 1)
        signals["fineweb_char_dup_ratio"] = dup
        if self.char_duplicates_ratio is not None and dup > self.char_duplicates_ratio:
            reason = self.failed(reason, "fineweb_char_dup_ratio")
            if not every:
                return reason
        words = len(text.words) / text.chars_per_word
        newlines = doc.text.count("\n") / max(words, 1)
        signals["fineweb_list_ratio"] = newlines
        if self.new_line_ratio is not None and newlines > self.new_line_ratio:
            reason = self.failed(reason, "fineweb_list_ratio")
        return reason
