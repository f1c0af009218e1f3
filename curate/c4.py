"""C4's cleaning rules (Raffel et al. 2020, section 2.2), as the TFDS `c4_utils` code and datatrove run them.

Line rules remove lines (the document's text is rewritten without them); page rules drop the document:

- keep only lines ending in terminal punctuation (`filter_no_terminal_punct`; FineWeb turns it off);
- keep only lines with at least `min_words_per_line` words and no word longer than `max_word_length`;
- remove lines that mention "javascript" and lines with cookie/terms-of-use/privacy-policy phrases;
- drop pages containing "lorem ipsum" or a curly bracket, and pages left with fewer than
  `min_num_sentences` sentences;
- remove Wikipedia citation markers ([1], [edit], [citation needed]).

The bad-words rule of the paper is the toxicity stage's business (issue #6), not this filter's.
For languages written without spaces, a line's words are counted as characters / `chars_per_word`.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from corpus.core.document import Document
from corpus.curate.quality import HeuristicFilter
from corpus.curate.text import count_sentences, terminal_punctuation, tokenize, view

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies",
                     "use cookies")


class C4QualityFilter(HeuristicFilter):
    """C4's line and page rules with the published defaults; every rule its own reason or counter."""

    def __init__(
        self,
        split_paragraph: bool = True,
        remove_citations: bool = True,
        filter_no_terminal_punct: bool = True,
        min_num_sentences: int | None = 5,
        min_words_per_line: int | None = 3,
        max_word_length: int | None = 1000,
        filter_lorem_ipsum: bool = True,
        filter_javascript: bool = True,
        filter_curly_bracket: bool = True,
        filter_policy: bool = True,
        annotate: bool = True,
    ) -> None:
        self.split_paragraph = split_paragraph
        self.remove_citations = remove_citations
        self.filter_no_terminal_punct = filter_no_terminal_punct
        self.min_num_sentences = min_num_sentences
        self.min_words_per_line = min_words_per_line
        self.max_word_length = max_word_length
        self.filter_lorem_ipsum = filter_lorem_ipsum
        self.filter_javascript = filter_javascript
        self.filter_curly_bracket = filter_curly_bracket
        self.filter_policy = filter_policy
        self.annotate = annotate

    def check(self, doc: Document, signals: dict[str, Any]) -> str | None:
        text = view(doc.text, doc.metadata.get("language"))
        spaceless, per_word = text.spaceless, text.chars_per_word
        terminal = _line_ends()
        units = text.lines if self.split_paragraph else _sentences(doc.text)
        sentences = removed = 0
        kept: list[str] = []
        for line in units:
            line = line.strip()
            words = line.split()
            if self.max_word_length and any(len(w) > self.max_word_length for w in words):
                removed += 1
                self.count("c4/line_too_long_word")
                continue
            if self.remove_citations:
                line = CITATION.sub("", line)
            if self.filter_no_terminal_punct and (not line.endswith(terminal) or line.endswith("...")):
                removed += 1
                self.count("c4/line_no_terminal_punct")
                continue
            n_words = len(tokenize(line)) / per_word if spaceless else len(words)
            if self.min_words_per_line and n_words < self.min_words_per_line:
                removed += 1
                self.count("c4/line_too_few_words")
                continue
            lower = line.lower()
            if self.filter_lorem_ipsum and "lorem ipsum" in lower:
                return "c4_lorem_ipsum"
            if self.filter_javascript and "javascript" in lower:
                removed += 1
                self.count("c4/line_javascript")
                continue
            if self.filter_curly_bracket and "{" in line:
                return "c4_curly_bracket"
            if self.filter_policy and any(p in lower for p in POLICY_SUBSTRINGS):
                removed += 1
                self.count("c4/line_policy")
                continue
            if self.min_num_sentences:
                sentences += count_sentences(line) if self.split_paragraph else 1
            kept.append(line)
        signals["c4_lines_removed"] = removed
        signals["c4_sentences"] = sentences
        if self.min_num_sentences and sentences < self.min_num_sentences:
            return "c4_too_few_sentences"
        doc.text = ("\n" if self.split_paragraph else " ").join(kept).strip()
        return None


@functools.lru_cache(maxsize=1)
def _line_ends() -> tuple[str, ...]:
    """C4's ASCII line ends plus every script's sentence terminal (so Chinese "。" counts too)."""
    return END_PUNCTUATION + tuple(sorted(terminal_punctuation() - set(END_PUNCTUATION)))


_SENTENCE_SPLIT = re.compile(r"(?<=[.!?\u3002\uff01\uff1f])[\"'”’)\]]*\s+")


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_SPLIT.split(text) if s.strip()]
