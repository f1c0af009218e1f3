"""Token classification (named entities): CoNLL or JSONL with BIO tags → word-piece aligned labels → seqeval F1.

Each word's tag is learnt and predicted on its first word piece; the other pieces (and special tokens) carry
no label (-100), as in BERT's CoNLL-2003 setup. Words cut off by `max_length` are predicted `O` and counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from corpus.core.errors import CorpusError
from corpus.train.labelled import IGNORE_INDEX, Feature, read_records

AUTO_CLASS = "AutoModelForTokenClassification"
METRICS = ("f1", "accuracy")  # entity-level F1 (seqeval) is the default early-stopping metric
FIELDS = {"text_field": "tokens", "label_field": "tags"}
_TAG = re.compile(r"^(O|[BI]-\S+)$")
_JSON_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")


@dataclass
class TaggedExample:
    words: list[str]
    tags: list[str] | None  # None for unlabelled input (prediction)
    where: str
    record: dict[str, Any] | None = None


def _check_tags(tags: list[str], where: str) -> None:
    for tag in tags:
        if not _TAG.match(tag):
            raise CorpusError(f"{where}: {tag!r} is not a BIO tag (O, B-TYPE or I-TYPE)")


def read_conll(path: str | Path, require_labels: bool = True) -> list[TaggedExample]:
    """CoNLL-style text: one word per line with its tag in the last column, a blank line between sentences.

    `-DOCSTART-` lines are skipped. Without labels a line may hold the word alone.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: data file does not exist")
    examples: list[TaggedExample] = []
    words: list[str] = []
    tags: list[str] = []
    start = 1

    def flush() -> None:
        if words:
            examples.append(TaggedExample(list(words), list(tags) if tags else None, f"{path}:{start}"))
        words.clear()
        tags.clear()

    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 text ({err.reason})") from None
    for number, line in enumerate(lines, start=1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            flush()
            start = number + 1
            continue
        if len(columns) == 1:
            if require_labels:
                raise CorpusError(f"{path}:{number}: expected a word and its tag, got {line.strip()!r}")
            words.append(columns[0])
            continue
        _check_tags([columns[-1]], f"{path}:{number}")
        words.append(columns[0])
        tags.append(columns[-1])
    flush()
    if not examples:
        raise CorpusError(f"{path}: no sentences")
    return examples


def read_examples(
    path: str | Path, text_field: str = "tokens", label_field: str = "tags", require_labels: bool = True,
    keep_records: bool = False, **_: Any,
) -> list[TaggedExample]:
    """JSONL/Parquet records with a list of words and a list of BIO tags, or a CoNLL file (any other name)."""
    if not str(path).lower().endswith(_JSON_SUFFIXES):
        return read_conll(path, require_labels)
    examples = []
    for number, record in read_records(path):
        where = f"{path}:{number}"
        words = record.get(text_field, record.get("words"))
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise CorpusError(f"{where}: no list of words in {text_field!r}")
        tags = record.get(label_field, record.get("ner_tags"))
        if tags is None and not require_labels:
            examples.append(TaggedExample(words, None, where, record if keep_records else None))
            continue
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise CorpusError(f"{where}: no list of BIO tag strings in {label_field!r}")
        if len(tags) != len(words):
            raise CorpusError(f"{where}: {len(words)} words but {len(tags)} tags")
        _check_tags(tags, where)
        examples.append(TaggedExample(words, tags, where, record if keep_records else None))
    if not examples:
        raise CorpusError(f"{path}: no records")
    return examples


def labels_of(examples: Sequence[TaggedExample]) -> list[str]:
    """`O` first, then B- and I- tags grouped by entity type; both tags of every type seen."""
    types = {t[2:] for e in examples for t in e.tags or [] if t != "O"}
    if not types:
        raise CorpusError("the training data has no entity tags (only O)")
    return ["O"] + [f"{prefix}-{kind}" for kind in sorted(types) for prefix in ("B", "I")]


def label_type(examples: Sequence[TaggedExample]) -> str:
    return "str"


def encode(
    examples: Sequence[TaggedExample], tokenizer: Any, label2id: dict[str, int] | None, max_length: int
) -> list[Feature]:
    """Word pieces of each sentence; `first` holds the position of each word's first piece (-1: cut off)."""
    if not getattr(tokenizer, "is_fast", False):
        raise CorpusError("token classification needs a fast tokenizer (a tokenizer.json in the model folder)")
    encoded = tokenizer([e.words for e in examples], is_split_into_words=True, truncation=True,
                        max_length=max_length)
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    features: list[Feature] = []
    for i, example in enumerate(examples):
        feature = {k: encoded[k][i] for k in names}
        first = [-1] * len(example.words)
        for position, word in enumerate(encoded.word_ids(i)):
            if word is not None and first[word] == -1:
                first[word] = position
        feature["first"] = first
        if label2id is not None and example.tags is not None:
            labels = [IGNORE_INDEX] * len(feature["input_ids"])
            for word, position in enumerate(first):
                if position >= 0:
                    tag = example.tags[word]
                    if tag not in label2id:
                        raise CorpusError(f"{example.where}: tag {tag!r} is not one the model knows "
                                          f"({', '.join(label2id)})")
                    labels[position] = label2id[tag]
            feature["labels"] = labels
        features.append(feature)
    return features


def class_weights(examples: Sequence[TaggedExample], label2id: dict[str, int], spec: Any) -> torch.Tensor | None:
    if spec is None or spec == "none":
        return None
    raise CorpusError("class weights apply to --task classify")


class Objective(torch.nn.Module):
    """Cross-entropy over the labelled (first word piece) positions; reports tag accuracy there."""

    def __init__(self, model: torch.nn.Module, weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.model = model

    def forward(self, labels: torch.Tensor, **inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.model(**inputs).logits.float()
        active = labels != IGNORE_INDEX
        loss = F.cross_entropy(logits[active], labels[active])
        return loss, {"acc": (logits[active].argmax(-1) == labels[active]).float().mean()}


def word_tags(feature: Feature, logits: torch.Tensor, id2label: dict[int, str]) -> tuple[list[str], list[float]]:
    """One tag per word from its first piece's logits (cut-off words: `O`, probability 0)."""
    probs = torch.softmax(logits, dim=-1)
    tags, scores = [], []
    for position in feature["first"]:
        if position < 0:
            tags.append("O")
            scores.append(0.0)
        else:
            index = int(probs[position].argmax())
            tags.append(id2label[index])
            scores.append(float(probs[position, index]))
    return repair_bio(tags), scores


def repair_bio(tags: list[str]) -> list[str]:
    """An `I-X` that does not continue an X entity starts one (`B-X`): what seqeval assumes in IOB2 anyway."""
    fixed = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (i == 0 or fixed[-1][2:] != tag[2:]):
            tag = "B-" + tag[2:]
        fixed.append(tag)
    return fixed


def entities(words: Sequence[str], tags: Sequence[str]) -> list[dict[str, Any]]:
    """Entity spans (type, first word, last word inclusive, text) from BIO tags."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [{"type": kind, "start": start, "end": end, "text": " ".join(words[start : end + 1])}
            for kind, start, end in get_entities(list(tags))]


def decode(examples: Sequence[TaggedExample], features: Sequence[Feature], logits: Sequence[torch.Tensor],
           id2label: dict[int, str]) -> list[dict[str, Any]]:
    results = []
    for feature, row, example in zip(features, logits, examples, strict=True):
        tags, scores = word_tags(feature, row, id2label)
        results.append({"tags": tags, "scores": [round(s, 6) for s in scores],
                        "entities": entities(example.words, tags),
                        "truncated_words": sum(1 for p in feature["first"] if p < 0)})
    return results


def metrics(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Entity-level precision/recall/F1 (seqeval, exact span and type), per type, and word-level accuracy."""
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    gold, predicted = [list(g) for g in gold], [list(p) for p in predicted]
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    per_type = {k: {"precision": float(v["precision"]), "recall": float(v["recall"]), "f1": float(v["f1-score"]),
                    "support": int(v["support"])}
                for k, v in report.items() if not k.endswith(" avg")}
    return {
        "f1": float(f1_score(gold, predicted, zero_division=0)),
        "precision": float(precision_score(gold, predicted, zero_division=0)),
        "recall": float(recall_score(gold, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(gold, predicted)),
        "macro_f1": float(report.get("macro avg", {}).get("f1-score", 0.0)),
        "examples": len(gold),
        "per_type": per_type,
    }


def evaluate(examples: Sequence[TaggedExample], features: Sequence[Feature], logits: Sequence[torch.Tensor],
             id2label: dict[int, str]) -> dict[str, Any]:
    predicted = decode(examples, features, logits, id2label)
    result = metrics([e.tags or [] for e in examples], [p["tags"] for p in predicted])
    result["truncated_words"] = sum(p["truncated_words"] for p in predicted)
    return result
