"""Text normalisation: mojibake repair, Unicode NFC, control characters, whitespace.

Runs first, so later filters, hashes and language ID see clean text. ftfy only repairs encoding damage
here (curly quotes and full-width characters are left as they were: they are not damage). ftfy is slow
(~1-2 MB/s), so it only runs on texts that show a sign of what it repairs: a UTF-8 lead byte read as
Latin-1/cp1252 followed by a continuation byte read the same way (mojibake), C1 controls, HTML entities,
terminal escapes, ligatures, replacement characters. Other texts cannot change under it.
"""

from __future__ import annotations

import re
import unicodedata

from corpus.core.document import Document
from corpus.core.stage import Transform

# C0/C1 control characters except tab and newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x85]")
# Bytes 0x80-0xBF as cp1252/Latin-1 decode them: what follows a mis-decoded UTF-8 lead byte.
_CONTINUATION = "\x80-\xbf\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d" \
                "\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178"
_FTFY_CAN_FIX = re.compile(
    f"[\xc2-\xf4][{_CONTINUATION}]"  # mojibake
    r"|[\x80-\x9f\x1b\ufffd\ufb00-\ufb06\ud800-\udfff]"  # C1 controls, escapes, U+FFFD, ligatures, surrogates
    r"|&(?:#\d{1,7}|#x[0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"  # HTML entities
)


class NormalizeText(Transform):
    """Repairs encoding damage and tidies whitespace; `metadata["normalized"]` says whether text changed."""

    def __init__(self, fix_mojibake: bool = True, form: str | None = "NFC", collapse_whitespace: bool = True,
                 annotate: bool = False) -> None:
        if form not in ("NFC", "NFKC", "NFD", "NFKD", None):
            raise ValueError(f"form must be NFC, NFKC, NFD, NFKD or null, not {form!r}")
        self.fix_mojibake = fix_mojibake
        self.form = form
        self.collapse_whitespace = collapse_whitespace
        self.annotate = annotate

    def normalize(self, text: str) -> str:
        original = text
        if "\r" in text or not text.isascii():
            text = _LINE_BREAKS.sub("\n", text)
        if self.fix_mojibake and _FTFY_CAN_FIX.search(text):
            import ftfy

            text = ftfy.fix_text(text, normalization=None, uncurl_quotes=False, fix_character_width=False,
                                 fix_line_breaks=False)
        if self.form and not text.isascii() and not unicodedata.is_normalized(self.form, text):
            text = unicodedata.normalize(self.form, text)
        text = _CONTROL.sub("", text)
        if self.collapse_whitespace:
            lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
            text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
        return original if text == original else text

    def apply(self, doc: Document) -> Document:
        text = self.normalize(doc.text)
        if text is not doc.text:
            self.count("changed")
            if self.annotate:
                doc.metadata["normalized"] = True
        doc.text = text
        return doc
