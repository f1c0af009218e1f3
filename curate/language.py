"""Language identification: fastText (lid.176 or any fastText LID model), optionally a lingua cascade.

Every document gets `language` and `language_score` in metadata (and `language_source` when the
cascade decided); the filter drops documents outside the keep-list or under a per-language threshold.
With `per_paragraph`, each paragraph is identified too (all in the same batched call), the character
share of each language goes to `metadata["languages"]`, and `drop_paragraphs` removes paragraphs in
other languages from mixed documents before the document-level decision.

The cascade (`cascade: true`, needs `lingua-language-detector`): fastText answers alone when it is sure;
when it is unsure (top score under `cascade_below`) or picks a language of a group it is known to confuse
(Indonesian/Malay, Bosnian/Croatian/Serbian, the Norwegians...), lingua decides among fastText's top
candidates and their groups (a lingua detector over a few languages is fast); when fastText has no idea
(top score under `cascade_full_below`), lingua's faster low-accuracy mode also considers the languages
fastText cannot name (those of `cascade_languages` the model lacks) and those it is known to miss
(`cascade_weak`: lid.176.ftz finds Yoruba and Somali sentences less than a third of the time).
Thresholds were chosen on the dev part of lingua's test sentences (benchmarks/langid.py).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.stage import Filter
from corpus.curate.fasttext_model import lid176_path, load_model

# lid.176 pairs that are known to be confused; a prediction in one of them is checked by lingua.
CONFUSABLE = [["id", "ms"], ["hr", "bs", "sr", "sh"], ["no", "nb", "nn", "da"], ["af", "nl"], ["cs", "sk"]]
_PARAGRAPHS = re.compile(r"\n\s*\n")


class LanguageFilter(Filter):
    """Annotates `language`/`language_score` and keeps documents in `languages` (all if unset) whose score
    reaches `threshold` (a float, or {language: float, default: float})."""

    batch_size = 256

    def __init__(
        self,
        languages: list[str] | None = None,
        threshold: float | dict[str, float] | None = 0.65,
        model_path: str | None = None,
        per_paragraph: bool = False,
        drop_paragraphs: bool = False,
        min_paragraph_chars: int = 20,
        cascade: bool = False,
        cascade_below: float = 0.8,
        cascade_full_below: float = 0.3,
        cascade_group_below: float = 0.97,
        cascade_top_k: int = 5,
        cascade_min_candidate: float = 0.02,
        cascade_languages: list[str] | None = None,
        cascade_weak: list[str] | None = None,
        confusable: list[list[str]] | None = None,
        label_prefix: str = "__label__",
    ) -> None:
        if drop_paragraphs and not per_paragraph:
            raise ValueError("drop_paragraphs needs per_paragraph: true")
        if drop_paragraphs and not languages:
            raise ValueError("drop_paragraphs needs a `languages` keep-list")
        self.languages = set(languages) if languages else None
        self.threshold = threshold
        self.model_path = model_path
        self.per_paragraph = per_paragraph
        self.drop_paragraphs = drop_paragraphs
        self.min_paragraph_chars = min_paragraph_chars
        self.cascade = cascade
        self.cascade_below = cascade_below
        self.cascade_full_below = cascade_full_below
        self.cascade_group_below = cascade_group_below
        self.cascade_top_k = cascade_top_k
        self.cascade_min_candidate = cascade_min_candidate
        self.cascade_languages = cascade_languages
        self.cascade_weak = list(cascade_weak) if cascade_weak is not None else ["yo", "so"]
        self.confusable = [set(g) for g in (confusable if confusable is not None else CONFUSABLE)]
        self.label_prefix = label_prefix

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Before any work (corpus.core.config.validate): every language code must be one the model can name,
        or the filter would silently drop every document."""
        codes = list(params.get("languages") or [])
        threshold = params.get("threshold")
        if isinstance(threshold, dict):
            codes += [code for code in threshold if code != "default"]
        if not codes:
            return
        prefix = params.get("label_prefix", "__label__")
        model_path = params.get("model_path")
        names = {label[len(prefix):] for label in load_model(str(model_path or lid176_path())).get_labels()}
        unknown = sorted({str(code) for code in codes} - names)
        if unknown:
            close = {code: [n for n in sorted(names) if n.startswith(code[:2].lower())][:3] for code in unknown}
            hints = "; ".join(f"{code}: did you mean {', '.join(c)}?" for code, c in close.items() if c)
            raise ValueError(f"language code(s) {', '.join(unknown)} unknown to the model "
                             f"{model_path or 'lid.176'} ({len(names)} codes, ISO 639 such as en, fr, de, no)"
                             + (f"; {hints}" if hints else ""))

    # --- prediction --------------------------------------------------------------------------

    def _threshold(self, language: str) -> float:
        if isinstance(self.threshold, dict):
            return float(self.threshold.get(language, self.threshold.get("default", 0.0)))
        return float(self.threshold or 0.0)

    @property
    def model(self) -> Any:
        return load_model(str(self.model_path or lid176_path()))

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        """(language, score) per text, one batched fastText call (plus lingua where the cascade asks)."""
        if not texts:
            return []
        k = self.cascade_top_k if self.cascade else 1
        # fastText predicts one line at a time: newlines must go.
        labels, scores = self.model.predict([t.replace("\n", " ") for t in texts], k=k)
        prefix = len(self.label_prefix)
        results = []
        for text, label_row, score_row in zip(texts, labels, scores, strict=True):
            candidates = [label[prefix:] for label in label_row]
            top = (candidates[0], float(min(score_row[0], 1.0)))
            if self.cascade:
                top = self._cascade(text, candidates, [float(s) for s in score_row], top)
            results.append(top)
        return results

    def _cascade(self, text: str, candidates: list[str], scores: list[float],
                 top: tuple[str, float]) -> tuple[str, float] | tuple[str, float, str]:
        language, score = top
        group = next((g for g in self.confusable if language in g), None)
        if score >= self.cascade_below and (group is None or score >= self.cascade_group_below):
            return top
        pool = {c for c, s in zip(candidates, scores, strict=True) if s >= self.cascade_min_candidate} | {language}
        for g in self.confusable:
            if pool & g:
                pool |= g
        unsure = score < self.cascade_full_below
        if unsure:
            pool |= self._unnamed() | set(self.cascade_weak)
        codes = tuple(sorted(c for c in pool if _lingua_language(c) is not None))
        if len(codes) < 2:
            return top
        values = _detector(codes, unsure).compute_language_confidence_values(text)
        if not values or values[0].value <= 0:
            return top
        best = values[0]
        return (best.language.iso_code_639_1.name.lower(), float(best.value), "lingua")

    def _unnamed(self) -> set[str]:
        """Languages of the cascade's universe that the fastText model has no label for."""
        if not hasattr(self, "_unnamed_cache"):
            labels = {label[len(self.label_prefix):] for label in self.model.get_labels()}
            universe = self.cascade_languages or [lang.iso_code_639_1.name.lower() for lang in _lingua().Language.all()]
            self._unnamed_cache = {c for c in universe if c not in labels}
        return self._unnamed_cache

    # --- filtering ---------------------------------------------------------------------------

    def _paragraphs(self, text: str) -> list[str]:
        parts = [p for p in _PARAGRAPHS.split(text) if p.strip()]
        return parts or [text]

    def keep_batch(self, docs: list[Document]) -> list[bool | tuple[bool, str]]:
        texts = [d.text for d in docs]
        spans: list[tuple[int, int]] = []
        paragraphs: list[str] = []
        if self.per_paragraph:
            for doc in docs:
                parts = self._paragraphs(doc.text)
                spans.append((len(texts) + len(paragraphs), len(parts)))
                paragraphs.extend(parts)
        predictions = self.predict(texts + paragraphs)
        results: list[bool | tuple[bool, str]] = []
        for i, doc in enumerate(docs):
            if self.per_paragraph:
                start, n = spans[i]
                parts = paragraphs[start - len(texts):start - len(texts) + n]
                self._annotate_paragraphs(doc, parts, predictions[start:start + n])
                if self.drop_paragraphs and doc.metadata.get("language_paragraphs_dropped"):
                    # The document changed: identify what is left.
                    predictions[i] = self.predict([doc.text])[0] if doc.text else ("", 0.0)
            results.append(self._decide(doc, predictions[i]))
        return results

    def _annotate_paragraphs(self, doc: Document, parts: list[str], predictions: list[tuple]) -> None:
        shares: dict[str, int] = {}
        kept = []
        for part, prediction in zip(parts, predictions, strict=True):
            language, score = prediction[0], prediction[1]
            size = len(part)
            shares[language] = shares.get(language, 0) + size
            foreign = self.languages is not None and (language not in self.languages
                                                      or score < self._threshold(language))
            # Short paragraphs (headings, captions) are too short to judge: they stay.
            if self.drop_paragraphs and foreign and size >= self.min_paragraph_chars:
                continue
            kept.append(part)
        total = sum(shares.values()) or 1
        doc.metadata["languages"] = {k: round(v / total, 4) for k, v in sorted(shares.items(), key=lambda x: -x[1])}
        if self.drop_paragraphs and len(kept) < len(parts):
            doc.metadata["language_paragraphs_dropped"] = len(parts) - len(kept)
            self.count("paragraphs_dropped", len(parts) - len(kept))
            doc.text = "\n\n".join(kept)

    def _decide(self, doc: Document, prediction: tuple) -> bool | tuple[bool, str]:
        language, score = prediction[0], prediction[1]
        doc.metadata["language"] = language
        doc.metadata["language_score"] = round(score, 4)
        if len(prediction) > 2:
            doc.metadata["language_source"] = prediction[2]
            self.count("cascade/lingua")
        self.count(f"lang/{language}")
        if not doc.text:
            return False, "lang_empty"
        if self.languages is not None and language not in self.languages:
            return False, "lang_not_allowed"
        if score < self._threshold(language):
            return False, "lang_low_score"
        return True

    def keep(self, doc: Document) -> bool | tuple[bool, str]:
        return self.keep_batch([doc])[0]


# --- lingua (optional) ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _lingua() -> Any:
    try:
        import lingua
    except ImportError as err:
        raise CorpusError("cascade: true needs lingua: pip install 'corpus[langid]' "
                          "(or lingua-language-detector)") from err
    return lingua


@functools.lru_cache(maxsize=512)
def _lingua_language(code: str) -> Any:
    lingua = _lingua()
    iso = getattr(lingua.IsoCode639_1, code.upper(), None)
    if iso is None:
        return None
    try:
        return lingua.Language.from_iso_code_639_1(iso)
    except ValueError:
        return None


@functools.lru_cache(maxsize=2048)
def _detector(codes: tuple[str, ...], low_accuracy: bool = False) -> Any:
    """A detector over a few languages; lingua loads each language's models once per process."""
    builder = _lingua().LanguageDetectorBuilder.from_languages(*(_lingua_language(c) for c in codes))
    return (builder.with_low_accuracy_mode() if low_accuracy else builder).build()
