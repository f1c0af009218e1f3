"""Sequence classification: labelled texts → features → cross-entropy (optionally class-weighted) → metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from corpus.core.errors import CorpusError
from corpus.train.labelled import Feature, label_key, read_records, sort_labels

AUTO_CLASS = "AutoModelForSequenceClassification"
METRICS = ("macro_f1", "accuracy")  # the first is the default early-stopping metric
FIELDS = {"text_field": "text", "label_field": "label"}


@dataclass
class TextExample:
    text: str
    label: str | None  # None for unlabelled input (prediction)
    where: str  # file:line, for error messages
    pair: str | None = None  # second text for pair tasks (entailment, paraphrase)
    record: dict[str, Any] | None = None  # the original record, kept for prediction output


def read_examples(
    path: str | Path, text_field: str = "text", label_field: str = "label", pair_field: str | None = None,
    require_labels: bool = True, keep_records: bool = False,
) -> list[TextExample]:
    """Texts and labels (strings, integers or booleans) from JSONL(.gz), Parquet, CSV or TSV."""
    examples = []
    for number, record in read_records(path):
        where = f"{path}:{number}"
        text = record.get(text_field)
        if not isinstance(text, str):
            raise CorpusError(f"{where}: no string {text_field!r} field (set the text field)")
        pair = None
        if pair_field is not None:
            pair = record.get(pair_field)
            if not isinstance(pair, str):
                raise CorpusError(f"{where}: no string {pair_field!r} field")
        label = record.get(label_field)
        if label is None or isinstance(label, list | dict) or label_key(label) == "":
            if require_labels:
                raise CorpusError(f"{where}: no {label_field!r} value (a string, number or bool)")
            label = None
        examples.append(TextExample(text, None if label is None else label_key(label), where, pair,
                                    record if keep_records else None))
    if not examples:
        raise CorpusError(f"{path}: no records")
    return examples


def labels_of(examples: Sequence[TextExample]) -> list[str]:
    labels = {e.label for e in examples if e.label is not None}
    if len(labels) < 2:
        raise CorpusError(f"need at least two labels to train a classifier, found {sorted(labels) or 'none'}")
    return sort_labels(labels)


def label_type(examples: Sequence[TextExample]) -> str:
    """"int" when every label was an integer (predictions then give integers back), else "str"."""
    return "int" if all(e.label is None or e.label.lstrip("-").isdigit() for e in examples) else "str"


def encode(
    examples: Sequence[TextExample], tokenizer: Any, label2id: dict[str, int] | None, max_length: int
) -> list[Feature]:
    """Tokenise (truncating to `max_length`); `label2id=None` leaves the features unlabelled."""
    texts = [e.text for e in examples]
    pairs = [e.pair or "" for e in examples] if examples and examples[0].pair is not None else None
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    features: list[Feature] = []
    for i, example in enumerate(examples):
        feature = {k: encoded[k][i] for k in names}
        if label2id is not None and example.label is not None:
            if example.label not in label2id:
                raise CorpusError(f"{example.where}: label {example.label!r} is not one the model knows "
                                  f"({', '.join(label2id)})")
            feature["labels"] = label2id[example.label]
        features.append(feature)
    return features


def class_weights(
    examples: Sequence[TextExample], label2id: dict[str, int], spec: str | dict[str, float] | None
) -> torch.Tensor | None:
    """None (plain cross-entropy), "balanced" (n / (classes x count), as scikit-learn) or {label: weight}."""
    if spec is None or spec == "none":
        return None
    weights = torch.ones(len(label2id))
    if spec == "balanced":
        counts = Counter(e.label for e in examples)
        for label, index in label2id.items():
            weights[index] = len(examples) / (len(label2id) * counts[label]) if counts[label] else 1.0
        return weights
    if isinstance(spec, str):
        try:
            spec = {k.strip(): float(v) for k, v in (item.split("=", 1) for item in spec.split(","))}
        except ValueError:
            raise CorpusError(f"class weights {spec!r}: use 'balanced', 'none' or LABEL=WEIGHT,...") from None
    for label, weight in spec.items():
        if label_key(label) not in label2id:
            raise CorpusError(f"class weight for unknown label {label!r}; labels: {', '.join(label2id)}")
        weights[label2id[label_key(label)]] = float(weight)
    return weights


class Objective(torch.nn.Module):
    """Cross-entropy over the classes, with optional class weights; reports batch accuracy."""

    def __init__(self, model: torch.nn.Module, weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("weights", weights, persistent=False)

    def forward(self, labels: torch.Tensor, **inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.model(**inputs).logits.float()
        loss = F.cross_entropy(logits, labels, weight=self.weights)
        return loss, {"acc": (logits.argmax(-1) == labels).float().mean()}


def metrics(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 (over the labels seen in gold or predictions) and per-label precision/recall/F1."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = sort_labels(set(gold) | set(predicted))
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(f1.mean()),
        "examples": len(gold),
        "per_label": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        },
    }


def probabilities(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Softmax over the classes, one row per example (fp32 even when the model ran in bf16)."""
    return torch.softmax(torch.stack(list(logits)).float(), dim=-1)


def predicted_ids(probs: torch.Tensor, threshold: dict[str, Any] | None, label2id: dict[str, int]) -> list[int]:
    """Argmax, or for a binary model with a tuned threshold: its label when that label's probability reaches it."""
    if threshold is None:
        return [int(i) for i in probs.argmax(-1)]
    chosen = label2id[threshold["label"]]
    other = 1 - chosen
    return [chosen if float(row[chosen]) >= threshold["probability"] else other for row in probs]


def tune_threshold(probs: torch.Tensor, gold: Sequence[str], labels: Sequence[str], metric: str) -> dict[str, Any]:
    """The probability cut for the rarer label that maximises `metric` on these (held-out) examples.

    Argmax is the right rule only when the training loss matched the costs of the metric; with class weights
    or a macro average it rarely does (sklearn's TunedThresholdClassifierCV does the same search).
    """
    if len(labels) != 2:
        raise CorpusError(f"a decision threshold needs a binary classifier; this one has {len(labels)} labels")
    counts = Counter(gold)
    label = min(labels, key=lambda name: (counts[name], labels.index(name)))
    label2id = {name: i for i, name in enumerate(labels)}
    best: tuple[float, float, float] | None = None  # (score, -distance from 0.5, cut)
    for step in range(5, 96):
        cut = step / 100
        rule = {"label": label, "probability": cut}
        predicted = [labels[i] for i in predicted_ids(probs, rule, label2id)]
        candidate = (metrics(gold, predicted)[metric], -abs(cut - 0.5), cut)
        if best is None or candidate > best:
            best = candidate
    assert best is not None
    return {"label": label, "probability": best[2], "metric": metric, "tuned_score": best[0]}


def decode(examples: Sequence[TextExample], features: Sequence[Feature], logits: Sequence[torch.Tensor],
           id2label: dict[int, str], threshold: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Predicted label and the probability of every label, per example."""
    if not logits:
        return []
    probs = probabilities(logits)
    label2id = {label: i for i, label in id2label.items()}
    return [
        {"label": id2label[index],
         "probabilities": {id2label[i]: round(float(p), 6) for i, p in enumerate(row)}}
        for index, row in zip(predicted_ids(probs, threshold, label2id), probs, strict=True)
    ]


def evaluate(examples: Sequence[TextExample], features: Sequence[Feature], logits: Sequence[torch.Tensor],
             id2label: dict[int, str], threshold: dict[str, Any] | None = None) -> dict[str, Any]:
    predicted = [p["label"] for p in decode(examples, features, logits, id2label, threshold)]
    return metrics([e.label for e in examples], predicted)
