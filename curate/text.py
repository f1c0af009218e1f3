"""Words, lines, paragraphs and sentences of a document, split once and shared by every heuristic filter.

The word tokenizer follows the one the FineWeb recipe runs (datatrove's spaCy tokenizer for English):
punctuation marks are tokens of their own, hyphenated words split at the hyphen, clitics ('s, n't) split
off, but command-line flags, dotted names and abbreviations stay whole; combining marks stay inside their
word (Devanagari, Arabic...). It is one compiled `re` pattern, so it runs at C speed, and a document is
split once however many filters look at it. On real documents its Gopher/FineWeb decisions agree with
spaCy's tokenization on ~98.8% of documents (benchmarks/curate.py measures it).

Languages written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Burmese, Tibetan) get one token
per character (a Thai/Lao/... character keeps its combining vowel and tone marks), and filters scale
their word-based thresholds by `chars_per_word` so a document is measured in word-equivalents instead of
being dropped for having "one 3,000-character word".
"""

from __future__ import annotations

import functools
import re
from collections import Counter, OrderedDict
from functools import cached_property

# Languages written without spaces between words (lid.176 codes).
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "wuu", "yue"})
# Average characters per word, used to turn word thresholds into character thresholds for those
# languages (zh: ~1.5 characters per word in segmented corpora; ja ~2; Thai and the Indic-derived
# scripts count base characters with their marks as one, ~3 per word).
CHARS_PER_WORD = {"zh": 1.5, "wuu": 1.5, "yue": 1.5, "ja": 2.0, "th": 3.0, "lo": 3.0, "km": 3.0, "my": 3.0,
                  "bo": 3.0}
DEFAULT_CHARS_PER_WORD = 2.0
# Characters per word in spaced scripts (English: ~4.7 letters plus a space), to scale character lengths.
SPACED_CHARS_PER_WORD = 6.0
# Scripts that end sentences with a space, not a mark: rules about terminal punctuation cannot apply.
NO_TERMINAL_PUNCTUATION_LANGUAGES = frozenset({"th", "lo"})

_CJK_RANGES = [(0x3040, 0x30FF), (0x31F0, 0x31FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
               (0xFF66, 0xFF9F), (0x20000, 0x2FFFF)]
_SPACELESS_BLOCKS = [(0x0E00, 0x0E7F), (0x0E80, 0x0EFF), (0x0F00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF)]


def _ranges_to_class(points: list[int]) -> str:
    """Compress sorted code points into a regex character-class body."""
    parts: list[str] = []
    start = prev = None
    for cp in points:
        if prev is not None and cp == prev + 1:
            prev = cp
            continue
        if start is not None:
            parts.append(_span(start, prev))
        start = prev = cp
    if start is not None:
        parts.append(_span(start, prev))
    return "".join(parts)


def _span(a: int, b: int | None) -> str:
    b = a if b is None else b
    return re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"


@functools.lru_cache(maxsize=1)
def _all_chars() -> str:
    """Every code point of the planes that hold scripts in use (surrogates excluded)."""
    return "".join(chr(cp) for cp in range(0x30000) if not 0xD800 <= cp <= 0xDFFF)


def _chars_with(prop: str) -> list[int]:
    """Code points with a Unicode property, via the `regex` module (the stdlib lacks properties)."""
    import regex

    return [ord(ch) for ch in regex.findall(prop, _all_chars(), flags=regex.V1)]


@functools.lru_cache(maxsize=1)
def _classes() -> dict[str, str]:
    """Unicode classes the tokenizer needs; built once per process."""
    spaceless = {cp for a, b in _SPACELESS_BLOCKS for cp in range(a, b + 1)}
    cjk = {cp for a, b in _CJK_RANGES for cp in range(a, b + 1)}
    punct = [cp for cp in _chars_with(r"[\p{P}\p{S}[\p{Cc}--\s]]") if cp not in spaceless and cp not in cjk]
    marks = set(_chars_with(r"\p{M}"))
    sp_base = [cp for cp in sorted(spaceless) if cp not in marks]
    sp_mark = [cp for cp in sorted(spaceless) if cp in marks]
    cjk_class = "".join(_span(a, b) for a, b in _CJK_RANGES)
    return {
        "punct": _ranges_to_class(punct),
        "marks": _ranges_to_class(sorted(marks)),
        "cjk": cjk_class,
        "sp_base": _ranges_to_class(sp_base),
        "sp_mark": _ranges_to_class(sp_mark),
        "spaceless": cjk_class + "".join(_span(a, b) for a, b in _SPACELESS_BLOCKS),
    }


_CLITICS = r"(?:s|t|ll|re|ve|d|m|S|T|LL|RE|VE|D|M)\b"
_ABBREVIATIONS = r"(?:e\.g|i\.e|etc|vs|cf|Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|a\.m|p\.m|approx|Inc|Ltd|Co|Corp|Vol|pp)"
_UNITS = r"(?:km|m|cm|mm|kg|g|mg|lb|oz|ft|yd|mph|MB|KB|GB|TB|mb|kb|gb|tb)\b"


def _token_pattern(word: str, punct: str, prefix: str = "") -> re.Pattern[str]:
    """The tokenizer as one regex, after spaCy's English rules (which datatrove, hence FineWeb, uses).

    `word` is one word character, `punct` one punctuation character. Alternatives, in order: URLs and
    e-mail addresses; abbreviations with their period (e.g., etc.); ellipses; "--"; a number before a
    unit (2m -> 2, m); clitics ('s, 't, 'll...) as tokens of their own; a word, which keeps leading
    hyphens/slashes of flags and paths (--help, /etc) and a trailing slash (lib/), and joins what spaCy
    does not split inside a whitespace chunk: "_", runs of . ( ) [ ] and quotes followed by more word
    (os.path.isfile('.rc.py, l'eau), "-", ":", "=", "/" before a digit (3-4, x=1), "#" (PKCS#12);
    any other punctuation mark.
    """
    w = word
    return re.compile(
        prefix
        + r"(?:https?://|www\.)[^\s<>\"]*[^\s<>\".,;:!?)\]']|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
        + f"|(?<!{w})(?=[eicvMDPSJapIL]){_ABBREVIATIONS}\\."
        + r"|\.\.+|-{2,}(?!" + w + ")"
        + f"|\\d+(?={_UNITS})"
        + f"|['’]{_CLITICS}"
        + f"|(?:(?<![^\\s(\\[{{\"'])[-/]+)?{w}+(?:_+{w}+|(?!['’]{_CLITICS})[.()\\[\\]'’\"]+(?={w}){w}+"
        + f"|[-:=/](?=\\d)\\d+|#(?={w}){w}+)*(?:/(?!\\S))?"
        + f"|{punct}"
    )


# Text without combining marks or spaceless scripts: `re`'s own classes, several times faster.
_SIMPLE_TOKENS = _token_pattern(r"[^\W_]", r"(?:[^\w\s]|_)")


@functools.lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern[str], frozenset[str], frozenset[str]]:
    """The full tokenizer and the characters that need it (combining marks, spaceless scripts)."""
    c = _classes()
    tokens = _token_pattern(
        f"[^\\s{c['punct']}{c['spaceless']}]",
        f"[{c['punct']}]",
        prefix=f"[{c['cjk']}]|[{c['sp_base']}][{c['sp_mark']}]*|",  # an ideograph/kana; a Thai... character
    )
    needs_full = frozenset(re.findall(f"[{c['spaceless']}{c['marks']}]", _all_chars()))
    terminal = frozenset(map(chr, _chars_with(r"\p{Sentence_Terminal}")))
    return tokens, needs_full, terminal


def needs_full_tokenizer(text: str) -> bool:
    """Combining marks or a spaceless script present? (`re`'s `\\w` splits words at marks.)"""
    if text.isascii():
        return False
    special = _patterns()[1]
    return any(ch in special for ch in set(text) if ord(ch) > 0x7F)


def tokenize(text: str) -> list[str]:
    """Word and punctuation tokens (spaceless scripts: one token per character).

    Plain text takes `re`'s own word class (~5 MB/s); text with combining marks or spaceless scripts takes
    the full pattern, whose large Unicode classes are slower.
    """
    if needs_full_tokenizer(text):
        return _patterns()[0].findall(text)
    return _SIMPLE_TOKENS.findall(text)


def terminal_punctuation() -> frozenset[str]:
    """Characters that end a sentence in any script (for "line ends in punctuation" rules)."""
    return _patterns()[2]


def is_spaceless_text(text: str, sample: int = 2000) -> bool:
    """True when most letters of (the start of) `text` belong to a script written without spaces."""
    head = text[:sample]
    if head.isascii():
        return False
    letters = sum(1 for ch in head if ch.isalpha())
    spaceless = len(_SPACELESS_CHAR.findall(head))
    return letters > 0 and spaceless / letters > 0.5


@functools.lru_cache(maxsize=1)
def punctuation_chars() -> frozenset[str]:
    """Every punctuation mark, symbol and control character (a punctuation token is one of these)."""
    return frozenset(re.findall(f"[{_classes()['punct']}]", _all_chars()))


def is_punctuation(token: str) -> bool:
    """A token made only of punctuation/symbols (what Gopher's word counts leave out)."""
    chars = punctuation_chars()
    return all(ch in chars for ch in token)

_SENTENCE_END = re.compile(r"[.!?\u0964\u0965\u061f\u06d4\u203c\u203d\u2047-\u2049]+[^\w\s]*\s+(?=\w)"
                           r"|[\u3002\uff01\uff1f\uff61]+[^\w\s]*\s*(?=\w)")


def count_sentences(line: str) -> int:
    """Sentences in one line: a break after terminal punctuation followed by a word (as spaCy's sentencizer)."""
    line = line.strip()
    if not line:
        return 0
    return 1 + len(_SENTENCE_END.findall(line))


class TextView:
    """Lazily computed splits of one text; every filter looking at the same document shares them."""

    def __init__(self, text: str, language: str | None = None) -> None:
        self.text = text
        self.language = language

    @cached_property
    def spaceless(self) -> bool:
        if self.language is not None:
            return self.language in NO_SPACE_LANGUAGES
        return is_spaceless_text(self.text)

    @cached_property
    def chars_per_word(self) -> float:
        """1 for spaced languages; characters per word-equivalent for spaceless ones."""
        if not self.spaceless:
            return 1.0
        return CHARS_PER_WORD.get(self.language or "", DEFAULT_CHARS_PER_WORD)

    @cached_property
    def words(self) -> list[str]:
        """Tokens: words and punctuation marks (one per character for spaceless scripts)."""
        return tokenize(self.text)

    @cached_property
    def word_counts(self) -> Counter[str]:
        """How often each token occurs (counting in C; per-token rules then loop over distinct tokens)."""
        return Counter(self.words)

    @cached_property
    def _punctuation(self) -> tuple[int, int]:
        """(tokens made only of punctuation, their characters): "...", "--" and single marks."""
        punct = punctuation_chars()
        tokens = chars = 0
        for w, n in self.word_counts.items():
            if w[0] in punct and (len(w) == 1 or all(ch in punct for ch in w)):
                tokens += n
                chars += n * len(w)
        return tokens, chars

    @cached_property
    def punctuation_tokens(self) -> int:
        return self._punctuation[0]

    @cached_property
    def n_non_symbol_words(self) -> int:
        """Tokens with at least one character that is not punctuation (Gopher's "words")."""
        return len(self.words) - self.punctuation_tokens

    @cached_property
    def mean_word_length(self) -> float:
        """Mean length of the non-symbol words."""
        chars = sum(map(len, self.words)) - self._punctuation[1]
        return chars / self.n_non_symbol_words if self.n_non_symbol_words else 0.0

    @cached_property
    def alpha_words(self) -> int:
        """Tokens with at least one letter."""
        return sum(n for w, n in self.word_counts.items() if _HAS_ALPHA.search(w))

    @cached_property
    def lines(self) -> list[str]:
        """`str.splitlines()`, empty lines included (Gopher quality's denominators)."""
        return self.text.splitlines()

    @cached_property
    def nonempty_lines(self) -> list[str]:
        """Lines split on '\\n' that are not blank, unstripped (FineWeb's rules)."""
        return [line for line in self.text.split("\n") if line.strip()]

    @cached_property
    def paragraphs(self) -> list[str]:
        return _PARAGRAPHS.split(self.text.strip())

    @cached_property
    def repetition_lines(self) -> list[str]:
        """Lines split on runs of '\\n' (Gopher repetition)."""
        return _LINES.split(self.text)


_SPACELESS_CHAR = re.compile("[" + "".join(_span(a, b) for a, b in _CJK_RANGES + _SPACELESS_BLOCKS) + "]")
_HAS_ALPHA = re.compile(r"[^\W\d_]")
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")
_CACHE: OrderedDict[tuple[int, str | None], TextView] = OrderedDict()
_CACHE_SIZE = 64


def view(text: str, language: str | None = None) -> TextView:
    """The shared split of `text`: filters that see the same document (batched or not) reuse it."""
    key = (id(text), language)
    cached = _CACHE.get(key)
    if cached is not None and cached.text is text:
        _CACHE.move_to_end(key)
        return cached
    result = TextView(text, language)
    _CACHE[key] = result
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result
