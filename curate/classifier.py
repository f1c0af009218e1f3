"""Train a fastText text classifier from labelled JSONL (the approach Dolma and DCLM use for their filters).

`corpus train classifier --data labelled.jsonl -o model.bin` reads records with a text and a label, holds out
a deterministic share for validation (or uses `--valid`), trains with fastText, prints held-out precision and
recall per label, and saves the model. `ToxicityFilter(scorer="fasttext", model_path=..., positive_label=...)`
then scores documents with it, using the same text preparation as training.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import tempfile
import unicodedata
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from corpus.core.errors import CorpusError
from corpus.core.io import Malformed, read_shard
from corpus.curate.fasttext_model import import_fasttext

_TOKEN = re.compile(r"\w+|[^\w\s]")


def prepare_text(text: str) -> str:
    """One line of lower-cased tokens, punctuation split off: what the classifier sees in training and scoring."""
    return " ".join(_TOKEN.findall(unicodedata.normalize("NFKC", text).casefold()))


def read_labelled(path: str | Path, text_field: str = "text", label_field: str = "label") -> Iterator[tuple[str, str]]:
    """(text, label) pairs from a JSONL(.gz) or Parquet file; a bad record is an error naming file and record."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"{path}: labelled data file does not exist")

    def malformed(bad: Malformed) -> None:
        raise CorpusError(f"{bad.where()}: {bad.error}")

    for number, doc in enumerate(read_shard(path, on_malformed=malformed), start=1):
        text = doc.text if text_field == "text" else doc.metadata.get(text_field)
        label = doc.metadata.get(label_field)
        if not isinstance(text, str):
            raise CorpusError(f"{path}: record {number} has no string {text_field!r} field")
        if label is None or isinstance(label, (list, dict)) or str(label).strip() == "":
            raise CorpusError(f"{path}: record {number} has no {label_field!r} value (a string, number or bool)")
        yield text, re.sub(r"\s+", "_", str(label).strip())


def _held_out(text: str, fraction: float, seed: int) -> bool:
    digest = hashlib.sha1(f"{seed}:{text}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "little") / 2**64 < fraction


def _write_fasttext_file(pairs: list[tuple[str, str]], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for text, label in pairs:
            handle.write(f"__label__{label} {prepare_text(text)}\n")


def evaluate(model: Any, pairs: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label, and macro averages, of the top prediction."""
    if not pairs:
        return {}
    labels, _ = model.predict([prepare_text(t) for t, _ in pairs], k=1)
    predicted = [ls[0].removeprefix("__label__") if ls else "" for ls in labels]
    gold = [label for _, label in pairs]
    result: dict[str, dict[str, float]] = {}
    for label in sorted(set(gold) | {p for p in predicted if p}):
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == label and p == label)
        n_pred = sum(1 for p in predicted if p == label)
        n_gold = sum(1 for g in gold if g == label)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                         "support": n_gold}
    per_label = [v for v in result.values() if v["support"]]
    metrics = ("precision", "recall", "f1")
    result["macro"] = {m: round(sum(v[m] for v in per_label) / len(per_label), 4) for m in metrics}
    result["macro"]["support"] = len(gold)
    result["accuracy"] = {"accuracy": round(sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold), 4)}
    return result


def _train_fasttext(train_file: str, out: str, params: dict[str, Any]) -> None:
    import_fasttext(need_training=True).train_supervised(train_file, **params).save_model(out)


def load_model_uncached(path: str | Path) -> Any:
    return import_fasttext().load_model(str(path))


def train_classifier(
    data: str | Path,
    out: str | Path,
    valid: str | Path | None = None,
    valid_fraction: float = 0.1,
    text_field: str = "text",
    label_field: str = "label",
    epoch: int = 10,
    lr: float = 0.2,
    word_ngrams: int = 2,
    dim: int = 50,
    min_count: int = 1,
    bucket: int = 200_000,
    threads: int = 1,
    seed: int = 0,
) -> dict[str, Any]:
    """Train, evaluate on held-out records, save to `out` atomically; returns counts and held-out metrics.

    One thread by default, so the same data and seed give the same model. `bucket` (hashed word n-gram rows)
    is a tenth of fastText's default: the model file is `bucket x dim` floats, 40 MB instead of 400 MB.
    """
    if not 0 <= valid_fraction < 1:
        raise CorpusError(f"valid fraction must be in [0, 1), not {valid_fraction}")
    pairs = list(read_labelled(data, text_field, label_field))
    if valid is not None:
        train_pairs, valid_pairs = pairs, list(read_labelled(valid, text_field, label_field))
    else:
        train_pairs = [p for p in pairs if not _held_out(p[0], valid_fraction, seed)]
        valid_pairs = [p for p in pairs if _held_out(p[0], valid_fraction, seed)]
    counts = Counter(label for _, label in train_pairs)
    if len(counts) < 2:
        raise CorpusError(f"{data}: need at least two labels to train a classifier, found {sorted(counts) or 'none'}")
    import_fasttext(need_training=True)  # a clear error here rather than in the child process
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    params = {"epoch": epoch, "lr": lr, "wordNgrams": word_ngrams, "dim": dim, "minCount": min_count,
              "bucket": bucket if word_ngrams > 1 else 0, "thread": threads, "seed": seed, "verbose": 0}
    try:
        with tempfile.TemporaryDirectory(prefix="corpus-classifier-") as tmp:
            train_file = Path(tmp) / "train.txt"
            _write_fasttext_file(train_pairs, train_file)
            # fastText 0.9 initialises only thread/10 of its input matrix and trains on whatever memory the
            # allocator hands back for the rest; a fresh process gets zeroed pages, so results are reproducible.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                pool.submit(_train_fasttext, str(train_file), str(partial), params).result()
        model = load_model_uncached(partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return {
        "model": str(out),
        "labels": dict(sorted(counts.items())),
        "train_records": len(train_pairs),
        "valid_records": len(valid_pairs),
        "held_out": evaluate(model, valid_pairs),
    }
