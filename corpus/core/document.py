"""The one record type that flows through every stage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def stable_id(url: str | None = None, text: str | None = None) -> str:
    """A deterministic id from the url (preferred) or the content, so reruns and joins line up."""
    key = f"url:{url}" if url else f"text:{text or ''}"
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:20]


@dataclass(slots=True)
class Document:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Document:
        """Build from a shard row: `text` is required; `id` is kept; other fields land in metadata."""
        text = record.get("text")
        if not isinstance(text, str):
            raise ValueError("record has no string 'text' field")
        metadata = dict(record.get("metadata") or {})
        for key, value in record.items():
            if key not in ("id", "text", "metadata") and value is not None:
                metadata.setdefault(key, value)
        doc_id = record.get("id")
        if doc_id is None or doc_id == "":
            doc_id = stable_id(metadata.get("url"), text)
        return cls(id=str(doc_id), text=text, metadata=metadata)

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "metadata": self.metadata}
