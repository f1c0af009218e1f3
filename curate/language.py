"""fastText language identification (lid.176), annotating every document and filtering optionally."""

from __future__ import annotations

from corpus.document import Document
from corpus.stage import Filter
from curate.fasttext_model import lid176_path, load_model


class LanguageFilter(Filter):
    """Writes `language` and `language_score` into metadata; drops documents outside `languages`
    or under `threshold` (a float, or a per-language mapping with an optional `default`)."""

    batch_size = 256

    def __init__(
        self,
        languages: list[str] | None = None,
        threshold: float | dict[str, float] | None = 0.65,
        model_path: str | None = None,
    ) -> None:
        self.languages = set(languages) if languages else None
        self.threshold = threshold
        self.model_path = model_path

    def _threshold(self, language: str) -> float:
        if isinstance(self.threshold, dict):
            return float(self.threshold.get(language, self.threshold.get("default", 0.0)))
        return float(self.threshold or 0.0)

    def predict(self, texts: list[str]) -> list[tuple[str, float]]:
        model = load_model(str(self.model_path or lid176_path()))
        # fastText predicts one line at a time: newlines must go.
        labels, scores = model.predict([t.replace("\n", " ") for t in texts], k=1)
        pairs = zip(labels, scores, strict=True)
        return [(label[0].removeprefix("__label__"), float(min(score[0], 1.0))) for label, score in pairs]

    def keep_batch(self, docs: list[Document]) -> list[bool | tuple[bool, str]]:
        results: list[bool | tuple[bool, str]] = []
        for doc, (language, score) in zip(docs, self.predict([d.text for d in docs]), strict=True):
            doc.metadata["language"] = language
            doc.metadata["language_score"] = round(score, 4)
            if hasattr(self, "stats"):
                self.stats.add(f"lang/{language}")
            if self.languages is not None and language not in self.languages:
                results.append((False, "lang_not_allowed"))
            elif score < self._threshold(language):
                results.append((False, "lang_low_score"))
            else:
                results.append(True)
        return results

    def keep(self, doc: Document) -> bool | tuple[bool, str]:
        return self.keep_batch([doc])[0]
