"""Personal data redaction: e-mail addresses, phone numbers, IP addresses, credit cards, IBANs.

Each kind is found by a cheap pattern and then validated, so digits that merely look like a card or an
IBAN are left alone: card numbers must pass the Luhn checksum and start like a card network's number,
IBANs must pass the ISO 13616 mod-97 check, phone numbers must be valid for their country according to
Google's libphonenumber data (`phonenumbers`), IP addresses must parse and (by default) be public.
Matches become typed placeholders (`<EMAIL>`, `<PHONE>`...) or, with `mode: tag`, are only counted.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

from corpus.core.document import Document
from corpus.core.stage import Transform

KINDS = ("email", "phone", "ip", "credit_card", "iban")
PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "ip": "<IP_ADDRESS>", "credit_card": "<CREDIT_CARD>",
                "iban": "<IBAN>"}

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
                   r"[A-Za-z]{2,24}\b")
IPV4 = re.compile(r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
                  r"(?![\w]|\.\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
# Phone-number candidates: +country code, or a national trunk prefix 0, or the North American
# (NNN) NNN-NNNN / NNN-NNN-NNNN shapes; then digit groups with common separators. Bare digit runs
# ("order 12345 67890") are not candidates: too many of them are valid numbers somewhere.
PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,5}\)[ .-]?)?\d{1,5}(?:[ ./-]?\d{1,8}){1,5}"
    r"|\(0?\d{2,5}\)[ .-]?\d{2,8}(?:[ ./-]\d{2,8}){0,4}"
    r"|0\d{1,5}(?:[ ./-]\d{2,8}){1,5}"
    r"|0\d{6,12}"
    r"|\d{3}[.-]\d{3}[.-]\d{4})(?![\w])"
)


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_network(digits: str) -> bool:
    """Starts like a Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay or Maestro number."""
    n = len(digits)
    two, four = int(digits[:2]), int(digits[:4])
    return (
        (digits[0] == "4" and n in (13, 16, 19))
        or (51 <= two <= 55 and n == 16)
        or (2221 <= four <= 2720 and n == 16)
        or (two in (34, 37) and n == 15)
        or ((digits.startswith("6011") or two == 65 or 644 <= int(digits[:3]) <= 649) and n in (16, 19))
        or (3528 <= four <= 3589 and 16 <= n <= 19)
        or ((two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305) and 14 <= n <= 19)
        or (two == 62 and 16 <= n <= 19)
        or (two in (50, 56, 57, 58, 63, 67) and 12 <= n <= 19)
    )


def iban_ok(candidate: str) -> bool:
    code = candidate.replace(" ", "")
    if not 15 <= len(code) <= 34:
        return False
    rearranged = code[4:] + code[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


class PIIRedactor(Transform):
    """Replaces (or, with `mode: tag`, only counts) personal data; counts per kind go to `pii/<kind>`
    in the stage's stats and to `metadata["pii"]`.

    `phone_regions` are the countries whose national formats are tried for numbers written without a
    +country code (numbers with one are checked against their own country).
    """

    def __init__(
        self,
        kinds: list[str] | None = None,
        mode: str = "redact",
        placeholders: dict[str, str] | None = None,
        only_public_ips: bool = True,
        phone_regions: list[str] | None = None,
    ) -> None:
        kinds = list(kinds or KINDS)
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown PII kind(s) {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")
        if mode not in ("redact", "tag"):
            raise ValueError(f"mode must be 'redact' or 'tag', not {mode!r}")
        self.kinds = kinds
        self.mode = mode
        self.placeholders = {**PLACEHOLDERS, **(placeholders or {})}
        self.only_public_ips = only_public_ips
        self.phone_regions = [r.upper() for r in (phone_regions or ["US", "GB", "DE", "FR"])]

    # Validators: a candidate match is redacted only if its validator agrees.
    def _email(self, text: str) -> bool:
        return True

    def _ip(self, text: str) -> bool:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return False
        return address.is_global or not self.only_public_ips

    def _card(self, text: str) -> bool:
        digits = re.sub(r"\D", "", text)
        return 13 <= len(digits) <= 19 and card_network(digits) and luhn_ok(digits)

    def _iban(self, text: str) -> bool:
        return iban_ok(text)

    def _phone(self, text: str) -> bool:
        import phonenumbers

        digits = sum(ch.isdigit() for ch in text)
        if not 7 <= digits <= 15:
            return False
        regions = [None] if text.startswith("+") else self.phone_regions
        for region in regions:
            try:
                number = phonenumbers.parse(text, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return True
        return False

    def _patterns(self) -> list[tuple[str, re.Pattern[str], Callable[[str], bool]]]:
        # Order matters: cards and IBANs before phones (their digit runs would also look like phones),
        # e-mail before IPs (an address may contain an IP-like domain).
        table = {
            "email": [(EMAIL, self._email)],
            "credit_card": [(CARD, self._card)],
            "iban": [(IBAN, self._iban)],
            "ip": [(IPV4, self._ip), (IPV6, self._ip)],
            "phone": [(PHONE, self._phone)],
        }
        order = ("email", "credit_card", "iban", "ip", "phone")
        return [(kind, pattern, check) for kind in order if kind in self.kinds for pattern, check in table[kind]]

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """Non-overlapping (start, end, kind) spans, earlier kinds in `_patterns` order winning."""
        taken: list[tuple[int, int, str]] = []
        for kind, pattern, check in self._patterns():
            for match in pattern.finditer(text):
                start, end = match.span()
                if any(start < e and s < end for s, e, _ in taken):
                    continue
                if check(match.group()):
                    taken.append((start, end, kind))
        return sorted(taken)

    def apply(self, doc: Document) -> Document:
        text = doc.text
        if "@" not in text and not _HAS_DIGIT.search(text):
            return doc  # nothing any pattern could match
        spans = self.find(text)
        if not spans:
            return doc
        counts = Counter(kind for _, _, kind in spans)
        for kind, n in counts.items():
            self.count(f"pii/{kind}", n)
        self.count("pii/documents")
        doc.metadata["pii"] = dict(sorted(counts.items()))
        if self.mode == "redact":
            pieces, last = [], 0
            for start, end, kind in spans:
                pieces.append(text[last:start])
                pieces.append(self.placeholders[kind])
                last = end
            pieces.append(text[last:])
            doc.text = "".join(pieces)
        return doc


_HAS_DIGIT = re.compile(r"\d")
