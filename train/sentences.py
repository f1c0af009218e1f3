"""Sentence boundaries for pretraining segments, as character offsets (no torch: tokenisation workers import
only this and the tokenizer)."""

from __future__ import annotations

import re

# Words that end in a period without ending a sentence. Kept short: a missed boundary only makes one
# segment longer, which the pair builder tolerates.
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "vs", "fig", "no", "nos", "vol", "pp", "cf", "al",
    "approx", "e.g", "i.e", "gen", "col", "lt", "sgt", "rev", "mt", "jan", "feb", "aug", "sept", "oct", "nov",
    "dec",
}
_SENTENCE_END = re.compile(r"[.!?…。！？]+[\"'”’»)\]]*")
_LINE = re.compile(r"[^\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")  # what str.splitlines() splits on
_CJK_END = set("。！？")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the sentences of `text`; every line break is a boundary (web text
    puts headings on their own line).

    A period ends a sentence when whitespace and then a non-lowercase character follow, and the word before
    it is not a known abbreviation or a single letter (initials); CJK full stops always end one. Offsets
    point into `text` itself, so a tokenizer's offsets can be matched to them without re-tokenising.
    """
    spans: list[tuple[int, int]] = []
    for line in _LINE.finditer(text):
        base, line_text = line.start(), line.group()
        start = 0
        for match in _SENTENCE_END.finditer(line_text):
            end = match.end()
            cjk = line_text[match.start()] in _CJK_END
            if end < len(line_text) and not cjk:
                if not line_text[end].isspace():
                    continue  # "3.14", "U.S.A"
                rest = line_text[end:].lstrip()
                if rest[:1].islower():
                    continue  # "approx. three"
                if line_text[match.start()] == ".":
                    word = line_text[start : match.start()].rsplit(None, 1)[-1:] or [""]
                    word_lower = word[0].lower()
                    if word_lower in _ABBREVIATIONS or (len(word_lower) == 1 and word_lower.isalpha()):
                        continue
            _add_span(spans, line_text, base, start, end)
            start = end
        _add_span(spans, line_text, base, start, len(line_text))
    return spans


def _add_span(spans: list[tuple[int, int]], line: str, base: int, start: int, end: int) -> None:
    piece = line[start:end]
    stripped = piece.strip()
    if stripped:
        left = start + (len(piece) - len(piece.lstrip()))
        spans.append((base + left, base + left + len(stripped)))


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` (see `sentence_spans`), whitespace inside each collapsed to single spaces."""
    return [" ".join(text[a:b].split()) for a, b in sentence_spans(text)]
