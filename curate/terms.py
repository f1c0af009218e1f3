"""Matching lists of words and phrases on word boundaries, after normalisation.

Word lists (profanity, identity terms) must match whole words: "Scunthorpe" contains a bad word as a
substring but is not one. Both the text and the terms are split into `\\w+` tokens and each token is
normalised (NFKC, case-folded), so "Gay", "gay" and "ｇａｙ" match the term "gay" and "gay-friendly"
matches it too, but "Gayle" does not. Phrases ("native american") match token sequences. Languages written
without spaces (zh, ja, th...) have no word boundaries to use, so their terms match as substrings.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from corpus.curate.text import NO_SPACE_LANGUAGES

_TOKEN = re.compile(r"\w+")


def normalise_token(token: str) -> str:
    return unicodedata.normalize("NFKC", token).casefold()


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """(normalised token, start, end) for every word of `text`; offsets point into the original text."""
    if text.isascii():  # NFKC is the identity and case folding is lower() on ASCII: do it once
        return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text.lower())]
    return [
        (t.lower() if t.isascii() else normalise_token(t), m.start(), m.end())
        for m in _TOKEN.finditer(text)
        for t in (m.group(),)
    ]


_last: tuple[str, list[tuple[str, int, int]]] | None = None


def tokens(text: str) -> list[tuple[str, int, int]]:
    """`tokenize`, cached for the last text, so the bias and toxicity stages split a document once."""
    global _last
    if _last is None or _last[0] is not text:
        _last = (text, tokenize(text))
    return _last[1]


def term_key(term: str) -> tuple[str, ...]:
    return tuple(t for t, _, _ in tokenize(term))


@dataclass(frozen=True, slots=True)
class TermMatch:
    term: str  # the list entry, normalised ("native american")
    value: Any  # what the list maps the term to (a group, or True)
    start: int  # character offsets in the matched text
    end: int
    words: int  # how many words the match covers


class TermMatcher:
    """Finds the entries of a word list in texts: longest match first, matches never overlap."""

    def __init__(self, terms: Mapping[str, Any] | Iterable[str], spaceless: bool = False) -> None:
        items = terms.items() if isinstance(terms, Mapping) else ((t, True) for t in terms)
        self.spaceless = spaceless
        self.phrases: dict[tuple[str, ...], Any] = {}
        self.substrings: dict[str, Any] = {}
        for term, value in items:
            if spaceless:
                key = normalise_token(term.strip())
                if key:
                    self.substrings.setdefault(key, value)
            else:
                words = term_key(term)
                if words:
                    self.phrases.setdefault(words, value)
        self.longest: dict[str, int] = {}  # first word -> longest phrase starting with it
        for key in self.phrases:
            self.longest[key[0]] = max(self.longest.get(key[0], 0), len(key))
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in sorted(self.substrings, key=len, reverse=True)))
            if self.substrings
            else None
        )

    def __len__(self) -> int:
        return len(self.phrases) + len(self.substrings)

    def __contains__(self, term: str) -> bool:
        if self.spaceless:
            return normalise_token(term) in self.substrings
        return term_key(term) in self.phrases

    def find(self, text: str) -> list[TermMatch]:
        if self.spaceless:
            return self._find_substrings(text)
        words = tokens(text)
        found: list[TermMatch] = []
        i, n = 0, len(words)
        while i < n:
            if (longest := self.longest.get(words[i][0])) is not None:
                for size in range(min(longest, n - i), 0, -1):
                    key = tuple(w for w, _, _ in words[i : i + size])
                    if key in self.phrases:
                        found.append(TermMatch(" ".join(key), self.phrases[key], words[i][1], words[i + size - 1][2],
                                               size))
                        i += size
                        break
                else:
                    i += 1
            else:
                i += 1
        return found

    def _find_substrings(self, text: str) -> list[TermMatch]:
        if self._pattern is None:
            return []
        # Normalising character by character keeps offsets aligned with the original text.
        folded = "".join(c if len(f := normalise_token(c)) != 1 else f for c in text)
        return [
            TermMatch(m.group(), self.substrings[m.group()], m.start(), m.end(), len(m.group()))
            for m in self._pattern.finditer(folded)
        ]

    def count_words(self, text: str) -> int:
        """The denominator of a flagged-word ratio: words, or characters where words have no spaces."""
        if self.spaceless:
            return sum(1 for c in text if not c.isspace())
        return len(tokens(text))


class GroupedTermMatcher:
    """Several word lists matched in one pass over the words: each list finds its own longest,
    non-overlapping matches, independently of the others (so one phrase can count for two lists)."""

    def __init__(self, lists: Mapping[str, Mapping[str, Any]], spaceless: bool = False) -> None:
        self.matchers = {name: TermMatcher(terms, spaceless) for name, terms in lists.items()}
        self.spaceless = spaceless
        self.starts: dict[str, list[tuple[str, int, dict[tuple[str, ...], Any]]]] = {}
        for name, matcher in self.matchers.items():
            for first, longest in matcher.longest.items():
                self.starts.setdefault(first, []).append((name, longest, matcher.phrases))

    def find(self, text: str) -> list[tuple[str, TermMatch]]:
        if self.spaceless:
            return [(name, m) for name, matcher in self.matchers.items() for m in matcher.find(text)]
        words = tokens(text)
        n = len(words)
        free_from = dict.fromkeys(self.matchers, 0)  # each list's matches must not overlap
        found: list[tuple[str, TermMatch]] = []
        for i, (word, start, _) in enumerate(words):
            candidates = self.starts.get(word)
            if candidates is None:
                continue
            for name, longest, phrases in candidates:
                if i < free_from[name]:
                    continue
                for size in range(min(longest, n - i), 0, -1):
                    key = tuple(w for w, _, _ in words[i : i + size]) if size > 1 else (word,)
                    if key in phrases:
                        found.append((name, TermMatch(" ".join(key), phrases[key], start, words[i + size - 1][2],
                                                      size)))
                        free_from[name] = i + size
                        break
        return found


def is_spaceless(language: str | None) -> bool:
    return language in NO_SPACE_LANGUAGES
