"""A fine-tuned transformers classifier as a curation signal (stage `hf_classifier`, toxicity scorer `hf`).

    stages:
      - stage: hf_classifier
        id: offensive
        model_path: runs/olid-minilm     # a folder from `corpus train finetune`
        label: OFF                       # the probability stored as the score
        threshold: 0.5                   # optional: drop documents scoring above it (drop: below keeps them)

Each document gets `metadata[<stage id>] = {"label": <argmax>, "score": <p(label)>}` (and every class's
probability with `store_probabilities`). The text is scored from its start up to the model's max_length
tokens; for span-level scores of long documents use `toxicity` with `scorer: hf`, which scores every sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.stage import Filter, RankContext

POSITIVE_NAMES = ("off", "offensive", "toxic", "hate", "abusive", "1", "true", "yes", "positive")


def pick_label(labels: Sequence[str], wanted: str | int | None, where: str) -> str:
    """The label whose probability is the score: the one asked for, else the binary model's positive class."""
    if wanted is not None:
        if str(wanted) not in labels:
            raise CorpusError(f"{where}: the model has no label {wanted!r}; its labels: {', '.join(labels)}")
        return str(wanted)
    if len(labels) == 2:
        named = [label for label in labels if label.lower() in POSITIVE_NAMES]
        return named[0] if len(named) == 1 else labels[1]
    raise CorpusError(f"{where}: the model has {len(labels)} labels ({', '.join(labels)}); say which one scores")


class HFClassifierScorer:
    """Probability of `positive_label` from a fine-tuned sequence classifier folder (toxicity scorer `hf`)."""

    name = "hf"

    def __init__(self, model_path: str, positive_label: str | int | None = None, batch_size: int = 32,
                 max_length: int | None = None, device: str = "cpu") -> None:
        if not (Path(model_path) / "config.json").is_file():
            raise CorpusError(f"{model_path}: not a model folder (no config.json); fine-tune one with "
                              "`corpus train finetune`")
        self.model_path = str(model_path)
        self.positive_label = positive_label
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self._predictor: Any = None
        self._index: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_predictor": None}

    def prepare(self) -> Any:
        """Load the model once per worker, and check it is a classifier with the wanted label."""
        if self._predictor is None:
            from corpus.train.predict import Predictor

            predictor = Predictor(self.model_path, device=self.device, batch_size=self.batch_size,
                                  max_length=self.max_length)
            if predictor.task != "classify":
                raise CorpusError(f"{self.model_path}: a {predictor.task} model, not a sequence classifier")
            label = pick_label(predictor.labels, self.positive_label, self.model_path)
            self._index = predictor.labels.index(label)
            self._predictor = predictor
        return self._predictor

    @property
    def default_threshold(self) -> float:
        """0.5, or the cut tuned when the model was fine-tuned (`tune_threshold`), turned round if it was tuned
        for the other label of the pair."""
        predictor = self.prepare()
        rule = predictor.threshold
        if rule is None:
            return 0.5
        return rule["probability"] if rule["label"] == predictor.labels[self._index] else 1 - rule["probability"]

    def probabilities(self, texts: Sequence[str]) -> Any:
        import torch

        return self.prepare().probabilities(list(texts)) if texts else torch.zeros((0, 0))

    def score(self, texts: list[str], languages: Sequence[str | None] | None = None) -> list[float]:
        if not texts:
            return []
        probs = self.probabilities(texts)
        return [float(p) for p in probs[:, self._index]]


class HFClassifierFilter(Filter):
    """Annotates documents with a fine-tuned classifier's probability; drops by `threshold` when it is set."""

    batch_size = 64
    _id = "hf_classifier"

    def __init__(self, model_path: str, label: str | int | None = None, threshold: float | None = None,
                 drop: str = "above", store_probabilities: bool = False, batch_size: int = 64,
                 max_length: int | None = None, device: str = "cpu") -> None:
        if drop not in ("above", "below"):
            raise ValueError(f"drop must be 'above' or 'below', not {drop!r}")
        self.scorer = HFClassifierScorer(model_path, label, batch_size, max_length, device)
        self.threshold = threshold
        self.drop = drop
        self.store_probabilities = store_probabilities
        self.batch_size = batch_size

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        self.scorer.prepare()  # a broken model stops the run here, not as an error on every document
        return super().run(docs, ctx)

    def keep_batch(self, docs: list[Document]) -> list[bool | tuple[bool, str]]:
        predictor = self.scorer.prepare()
        probs = self.scorer.probabilities([doc.text for doc in docs])
        labels = predictor.labels
        index = self.scorer._index
        results: list[bool | tuple[bool, str]] = []
        for doc, row in zip(docs, probs, strict=True):
            top = labels[int(row.argmax())]
            score = float(row[index])
            note: dict[str, Any] = {"label": top, "score": round(score, 4)}
            if self.store_probabilities:
                note["probabilities"] = {label: round(float(p), 4) for label, p in zip(labels, row, strict=True)}
            doc.metadata[self.id] = note
            self.count(f"{self.id}/label/{top}")
            self.count(f"{self.id}/score_sum", score)
            if self.threshold is not None and (score > self.threshold if self.drop == "above"
                                               else score < self.threshold):
                results.append((False, f"{self.id}_{'high' if self.drop == 'above' else 'low'}_score"))
            else:
                results.append(True)
        return results

    def keep(self, doc: Document) -> bool | tuple[bool, str]:
        return self.keep_batch([doc])[0]
