"""PII redaction: typed placeholders, validated matches, counts per kind, tag-only mode."""

from __future__ import annotations

import pytest

from corpus.core.document import Document
from corpus.core.stage import RankContext
from corpus.curate.pii import PIIRedactor, iban_ok, luhn_ok

TEXT = (
    "Write to jane.doe@example.org or call +1 (415) 555-2671, in London 020 7946 0958.\n"
    "Pay with 4111 1111 1111 1111 or Amex 3782 822463 10005; IBAN DE89 3704 0044 0532 0130 00.\n"
    "Our server is 8.8.8.8 (v6: 2001:4860:4860::8888)."
)
NOT_PII = (
    "Version 1.2.3.4.5 ships on 2021-03-04; the LAN box is 192.168.1.1 and order 12345 67890 costs 10.50 EUR.\n"
    "Card-like 4111 1111 1111 1112 fails Luhn, DE00 1234 5678 9012 3456 78 fails mod-97, ISBN 978-3-16-148410-0,\n"
    "and the meeting runs 10:30:00 to 11:45:00."
)


def run(stage: PIIRedactor, text: str) -> tuple[Document, RankContext]:
    ctx = RankContext()
    return list(stage.run([Document("d", text)], ctx))[0], ctx


def test_redacts_each_kind_with_a_typed_placeholder_and_counts_it() -> None:
    doc, ctx = run(PIIRedactor(), TEXT)
    assert doc.text == (
        "Write to <EMAIL> or call <PHONE>, in London <PHONE>.\n"
        "Pay with <CREDIT_CARD> or Amex <CREDIT_CARD>; IBAN <IBAN>.\n"
        "Our server is <IP_ADDRESS> (v6: <IP_ADDRESS>)."
    )
    assert doc.metadata["pii"] == {"credit_card": 2, "email": 1, "iban": 1, "ip": 2, "phone": 2}
    counters = ctx.stats["PIIRedactor"].counters
    assert counters["pii/phone"] == 2 and counters["pii/documents"] == 1


def test_lookalikes_are_left_alone() -> None:
    doc, ctx = run(PIIRedactor(), NOT_PII)
    assert doc.text == NOT_PII
    assert "pii" not in doc.metadata


def test_tag_mode_counts_without_changing_text_and_kinds_are_selectable() -> None:
    doc, _ = run(PIIRedactor(mode="tag"), TEXT)
    assert doc.text == TEXT and doc.metadata["pii"]["email"] == 1
    doc, _ = run(PIIRedactor(kinds=["email", "ip"], only_public_ips=False), TEXT + " Also 10.0.0.1.")
    assert "<PHONE>" not in doc.text and "4111 1111" in doc.text and doc.text.endswith("Also <IP_ADDRESS>.")
    with pytest.raises(ValueError, match="unknown PII kind"):
        PIIRedactor(kinds=["ssn"])


def test_checksums() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")
