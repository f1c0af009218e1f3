"""Bytes to text for web pages whose charset is missing or wrong, and a sniff for binary bodies.

Order of trust: a byte-order mark; then valid UTF-8 (multi-byte UTF-8 almost never happens by chance in
legacy encodings, so it beats a declaration that says otherwise); then the declared charset (HTTP header,
then <meta>) if the bytes decode under it; then statistical detection (charset-normalizer).
"""

from __future__ import annotations

from dataclasses import dataclass

from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding, read_bom, resolve_encoding

# File signatures of common binary formats that servers mislabel as text/html.
MAGIC = (b"%PDF", b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\x7fELF",
         b"RIFF", b"OggS", b"\x00\x00\x01\x00", b"wOFF", b"wOF2", b"7z\xbc\xaf")
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27))  # ESC is legal in ISO-2022-JP


@dataclass(slots=True)
class Decoded:
    text: str
    encoding: str
    how: str  # utf8 | bom | declared | declared_wrong | detected


def looks_binary(body: bytes) -> bool:
    """True for bodies that are not text at all (images, archives, PDFs served as text/html)."""
    head = body[:4096]
    if not head or read_bom(head)[0]:
        return False
    if head.startswith(MAGIC):
        return True
    controls = sum(head.count(bytes([c])) for c in _CONTROL)
    return controls > len(head) * 0.05


def declared_encoding(body: bytes, content_type: str | None) -> str | None:
    encoding = http_content_type_encoding(content_type) if content_type else None
    if not encoding:
        encoding = html_body_declared_encoding(body[:8192])
    return resolve_encoding(encoding) if encoding else None


def decode_html(body: bytes, content_type: str | None = None) -> Decoded:
    encoding, bom = read_bom(body)
    if encoding:
        return Decoded(body[len(bom):].decode(encoding, "replace"), encoding, "bom")
    declared = declared_encoding(body, content_type)
    is_utf8_declared = declared in ("utf-8", "utf8", None) if declared else False
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:
        lied = declared is not None and not is_utf8_declared and not body.isascii()
        return Decoded(text, "utf-8", "declared_wrong" if lied else "utf8")
    if declared and not is_utf8_declared:
        try:
            return Decoded(body.decode(declared), declared, "declared")
        except (UnicodeDecodeError, LookupError):
            pass
    detected = detect_encoding(body)
    return Decoded(body.decode(detected, "replace"), detected, "declared_wrong" if declared else "detected")


def detect_encoding(body: bytes) -> str:
    from charset_normalizer import from_bytes

    matches = list(from_bytes(body[:65536]))
    if not matches:
        return "cp1252"
    best = matches[0]
    tied = {m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)}
    # Short Western pages tie between several single-byte code pages; windows-1252 is by far the most
    # common on the web (and what browsers assume), so it wins ties.
    return "cp1252" if "cp1252" in tied else best.encoding
