"""Sample documents for the report: an excerpt, the spans that matter in it, and why it was kept or removed.

Spans come from what the run stored (toxicity `top_spans`, PII placeholders) or are found again on the
excerpt with the run's own matchers (PII in tag mode, identity terms). Every character of document text is
HTML-escaped when rendered; only the <mark> tags around spans are ours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

from corpus.core.document import Document

EXCERPT_CHARS = 1500
# Metadata a stage writes when it changed a document's text: offsets stored before it are then stale.
TEXT_CHANGES = {
    "pii": "pii",
    "paragraph_dedup_removed_chars": "paragraph_dedup",
    "boilerplate_lines_removed": "boilerplate",
    "language_paragraphs_dropped": "language",
}
KIND_ORDER = ("toxicity", "pii", "identity")  # the first kind of an overlap gives the colour


@dataclass
class Span:
    start: int
    end: int
    kind: str  # toxicity, pii or identity
    label: str


@dataclass
class Sample:
    id: str
    url: str
    title: str
    stage: str
    reason: str
    language: str
    chars: int
    offset: int  # where the excerpt starts in the document
    text: str  # the excerpt
    spans: list[Span] = field(default_factory=list)  # relative to the excerpt
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, max_chars: int = 500) -> dict[str, Any]:
        return {
            "id": self.id, "url": self.url, "title": self.title, "stage": self.stage, "reason": self.reason,
            "language": self.language, "chars": self.chars, "excerpt": self.text[:max_chars],
            "spans": [[s.start + self.offset, s.end + self.offset, s.kind, s.label] for s in self.spans],
            "details": self.details,
        }


def toxicity_notes(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Toxicity annotations in a document's metadata, by stage id (the toxicity stage stores them that way)."""
    return {k: v for k, v in metadata.items() if isinstance(v, dict) and "scorer" in v and "score" in v}


def span_context(config: dict[str, Any] | None) -> dict[str, Any]:
    """What finding spans needs from the run's resolved config: stage order, PII settings, lexicons."""
    stages = [s for job in (config or {}).get("jobs", []) for s in job.get("stages", [])]
    order = [str(s.get("id")) for s in stages]
    context: dict[str, Any] = {"known": config is not None, "order": order, "stale": {}, "pii": None,
                               "lexicon": None, "lexicons": {}}
    for index, entry in enumerate(stages):
        name = entry.get("stage")
        if name == "pii":
            from corpus.curate.pii import PLACEHOLDERS

            context["pii"] = {"mode": entry.get("mode", "redact"), "kinds": entry.get("kinds"),
                              "placeholders": {**PLACEHOLDERS, **(entry.get("placeholders") or {})}}
        if name == "bias":
            context["lexicon"] = entry.get("lexicon")
            context["lexicon_replace"] = bool(entry.get("replace_default", False))
            # Before language ID the bias stage read every document with its default language's lexicon.
            if "language" not in [s.get("stage") for s in stages[:index]]:
                context["identity_language"] = entry.get("default_language", "en")
        if name == "toxicity":
            later = stages[index + 1:]
            # tag-mode PII counts and leaves the text alone; the others rewrite it
            changing = {s.get("stage") for s in later if not (s.get("stage") == "pii" and s.get("mode") == "tag")}
            stale = {key for key, stage in TEXT_CHANGES.items() if stage in changing}
            context["stale"][str(entry.get("id"))] = stale
    return context


def _toxicity_spans(doc: Document, context: dict[str, Any]) -> list[Span]:
    spans = []
    for stage, note in toxicity_notes(doc.metadata).items():
        stale = context["stale"].get(stage, set(TEXT_CHANGES)) if context.get("known") else set(TEXT_CHANGES)
        if any(doc.metadata.get(key) for key in stale):
            continue  # the text changed after scoring: stored offsets would point at the wrong words
        for item in note.get("top_spans") or []:
            try:
                start, end, score = int(item[0]), int(item[1]), float(item[2])
            except (TypeError, ValueError, IndexError):
                continue
            if 0 <= start < end <= len(doc.text):
                spans.append(Span(start, end, "toxicity", f"{stage} {score:.2f}"))
    return spans


def _pii_spans(doc: Document, context: dict[str, Any]) -> list[Span]:
    pii = context.get("pii")
    if not doc.metadata.get("pii"):
        return []
    if pii and pii["mode"] == "tag":
        try:
            from corpus.curate.pii import PIIRedactor

            found = PIIRedactor(kinds=pii["kinds"], mode="tag").find(doc.text)
        except Exception:  # the report must not fail on a matcher problem; the counts are still shown
            return []
        return [Span(s, e, "pii", f"PII: {kind}") for s, e, kind in found]
    placeholders = (pii or {}).get("placeholders")
    if placeholders is None:
        from corpus.curate.pii import PLACEHOLDERS

        placeholders = PLACEHOLDERS
    spans = []
    for kind, placeholder in placeholders.items():
        start = doc.text.find(placeholder)
        while start >= 0 and placeholder:
            spans.append(Span(start, start + len(placeholder), "pii", f"PII redacted: {kind}"))
            start = doc.text.find(placeholder, start + len(placeholder))
    return spans


def _identity_spans(doc: Document, context: dict[str, Any]) -> list[Span]:
    if not doc.metadata.get("identity"):
        return []
    language = str(context.get("identity_language") or doc.metadata.get("language") or "en")
    lexicons = context.setdefault("lexicons", {})
    if language not in lexicons:
        try:
            from corpus.curate.bias import load_lexicon

            lexicons[language] = load_lexicon(language, context.get("lexicon"), context.get("lexicon_replace", False))
        except Exception:  # a missing user lexicon file: no highlighting, the counts still stand
            lexicons[language] = None
    lexicon = lexicons[language]
    if lexicon is None:
        return []
    return [Span(m.start, m.end, "identity", f"identity: {m.group}/{m.subgroup}") for m in lexicon.find(doc.text)]


def _details(doc: Document) -> dict[str, Any]:
    """The measurements that explain the decision: the rule's signal, scores, the duplicate's keeper."""
    meta = doc.metadata
    details: dict[str, Any] = {}
    if "language" in meta:
        details["language"] = f"{meta['language']} ({meta.get('language_score', '?')})"
    signals = meta.get("signals")
    if isinstance(signals, dict) and signals:
        last = list(signals)[-1]  # filters record signals rule by rule: the last one is the rule that decided
        details["last signal"] = f"{last} = {signals[last]}"
    for stage, note in toxicity_notes(meta).items():
        details[f"{stage} score"] = note.get("score")
        if note.get("hate_groups"):
            details[f"{stage} hate groups"] = ", ".join(map(str, note["hate_groups"]))
    if meta.get("duplicate_of"):
        details["duplicate of"] = meta["duplicate_of"]
    for key, value in meta.items():
        if key.endswith("_cluster_size"):
            details[key.replace("_", " ")] = value
    if isinstance(meta.get("pii"), dict) and meta["pii"]:
        details["PII"] = ", ".join(f"{k}: {v}" for k, v in meta["pii"].items())
    if isinstance(meta.get("identity"), dict) and meta["identity"]:
        details["identity groups"] = ", ".join(f"{k}: {v}" for k, v in meta["identity"].items())
    return details


def make_sample(doc: Document, context: dict[str, Any]) -> Sample:
    """An excerpt of `doc` around its first span, with the spans inside it."""
    spans = _toxicity_spans(doc, context) + _pii_spans(doc, context) + _identity_spans(doc, context)
    spans.sort(key=lambda s: (s.start, s.end))
    offset = 0
    if spans and spans[0].start > EXCERPT_CHARS - 200:
        offset = max(0, spans[0].start - 300)
    end = min(len(doc.text), offset + EXCERPT_CHARS)
    inside = [Span(max(s.start, offset) - offset, min(s.end, end) - offset, s.kind, s.label)
              for s in spans if s.start < end and s.end > offset]
    meta = doc.metadata
    return Sample(
        id=doc.id, url=str(meta.get("url", "")), title=str(meta.get("title", "")),
        stage=str(meta.get("stage", "")), reason=str(meta.get("reason", "")),
        language=str(meta.get("language", "")), chars=len(doc.text), offset=offset,
        text=doc.text[offset:end], spans=inside, details=_details(doc),
    )


def highlight(sample: Sample) -> Markup:
    """The excerpt as safe HTML: escaped text, <mark> around spans (overlaps split into segments)."""
    text = sample.text
    bounds = sorted({0, len(text), *(s.start for s in sample.spans), *(s.end for s in sample.spans)})
    pieces = ["…" if sample.offset else ""]
    for start, end in zip(bounds, bounds[1:], strict=False):
        covering = [s for s in sample.spans if s.start <= start and end <= s.end]
        chunk = escape(text[start:end])
        if covering:
            kind = min((s.kind for s in covering), key=KIND_ORDER.index)
            title = escape("; ".join(dict.fromkeys(s.label for s in covering)))
            pieces.append(f'<mark class="hl-{kind}" title="{title}">{chunk}</mark>')
        else:
            pieces.append(str(chunk))
    if sample.offset + len(text) < sample.chars:
        pieces.append("…")
    return Markup("".join(pieces))
