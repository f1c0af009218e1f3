"""Text normalisation: mojibake repair, Unicode NFC, control characters, whitespace."""

from __future__ import annotations

import re
import unicodedata

from corpus.document import Document
from corpus.stage import Transform

# C0/C1 control characters except tab and newline.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class NormalizeText(Transform):
    """Repairs encoding damage and tidies whitespace, so later filters and hashes see clean text."""

    def __init__(self, fix_mojibake: bool = True, form: str = "NFC", collapse_whitespace: bool = True) -> None:
        if form not in ("NFC", "NFKC", "NFD", "NFKD"):
            raise ValueError(f"form must be NFC, NFKC, NFD or NFKD, not {form!r}")
        self.fix_mojibake = fix_mojibake
        self.form = form
        self.collapse_whitespace = collapse_whitespace

    def apply(self, doc: Document) -> Document:
        text = doc.text.replace("\r\n", "\n").replace("\r", "\n")
        if self.fix_mojibake:
            import ftfy

            text = ftfy.fix_text(text, normalization=None)
        text = unicodedata.normalize(self.form, text)
        text = _CONTROL.sub("", text)
        if self.collapse_whitespace:
            lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
            text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
        doc.text = text
        return doc
