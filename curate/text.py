"""Words and lines of a document, split once and shared by every heuristic filter."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

# Languages written without spaces between words: word rules count characters instead.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "wuu", "yue"})
_CJK_OR_WORD = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f]|\w+"
)
_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~“”‘’«»…—–·"


@dataclass
class TextView:
    text: str
    language: str | None = None

    @property
    def spaceless(self) -> bool:
        return self.language in NO_SPACE_LANGUAGES

    @cached_property
    def tokens(self) -> list[str]:
        """Whitespace tokens, punctuation attached (what Gopher's symbol and bullet rules look at)."""
        return self.text.split()

    @cached_property
    def words(self) -> list[str]:
        """Words without surrounding punctuation; each CJK/Thai character counts as one word."""
        if self.spaceless:
            return _CJK_OR_WORD.findall(self.text)
        stripped = (t.strip(_PUNCT) for t in self.tokens)
        return [w for w in stripped if w]

    @cached_property
    def lower_words(self) -> list[str]:
        return [w.lower() for w in self.words]

    @cached_property
    def lines(self) -> list[str]:
        return [line.strip() for line in self.text.split("\n") if line.strip()]


_last: TextView | None = None


def view(text: str, language: str | None = None) -> TextView:
    """The shared split of `text`; consecutive filters on the same document reuse it."""
    global _last
    if _last is None or _last.text is not text or _last.language != language:
        _last = TextView(text, language)
    return _last
