"""Main-text extraction with trafilatura, used by the spider and as a curate stage over stored HTML."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corpus.document import Document
from corpus.stage import Filter

METADATA_FIELDS = ("title", "author", "date", "sitename", "hostname", "description", "categories", "tags")


@dataclass
class Extraction:
    text: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None  # why there is no text, when there is none


def extract_page(
    html: str | bytes,
    url: str | None = None,
    favor_precision: bool = True,
    include_comments: bool = False,
    include_tables: bool = True,
    min_chars: int = 1,
) -> Extraction:
    """Main text and metadata of one HTML page; precision first, since boilerplate is worse than a miss."""
    import trafilatura

    try:
        result = trafilatura.bare_extraction(
            html,
            url=url,
            favor_precision=favor_precision,
            include_comments=include_comments,
            include_tables=include_tables,
            with_metadata=True,
            deduplicate=False,
        )
    except Exception as exc:  # trafilatura raises assorted lxml errors on pathological markup
        return Extraction(None, reason=f"extract_error_{type(exc).__name__}")
    if result is None:
        return Extraction(None, reason="extract_no_text")
    data = result.as_dict() if hasattr(result, "as_dict") else dict(result)
    text = (data.get("text") or "").strip()
    metadata = {k: data[k] for k in METADATA_FIELDS if data.get(k)}
    if data.get("language"):
        metadata["language_hint"] = data["language"]
    if len(text) < min_chars:
        return Extraction(None, metadata, reason="extract_no_text")
    return Extraction(text, metadata)


class ExtractStage(Filter):
    """Re-extracts text from the raw HTML stored in `metadata[html_field]`, without re-fetching."""

    def __init__(self, html_field: str = "html", favor_precision: bool = True, keep_html: bool = False) -> None:
        self.html_field = html_field
        self.favor_precision = favor_precision
        self.keep_html = keep_html

    def keep(self, doc: Document) -> bool | tuple[bool, str]:
        html = doc.metadata.get(self.html_field)
        if not html:
            return False, "extract_no_html"
        result = extract_page(html, doc.metadata.get("url"), favor_precision=self.favor_precision)
        if not self.keep_html:
            doc.metadata.pop(self.html_field, None)
        if result.text is None:
            return False, result.reason or "extract_no_text"
        doc.text = result.text
        doc.metadata.update(result.metadata)
        return True
