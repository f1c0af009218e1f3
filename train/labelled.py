"""Labelled data for fine-tuning: reading records, padding batches, an endless shuffled batch stream, inference.

Shared by `corpus.train.classify` and `corpus.train.ner`; knows nothing about either task.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from corpus.core.errors import CorpusError

IGNORE_INDEX = -100  # positions without a label (PyTorch's cross-entropy default)
Feature = dict[str, Any]  # input_ids, attention_mask, token_type_ids (lists) and labels (int or list)


def read_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number, record) from JSONL(.gz), Parquet, CSV or TSV; a bad record names file and line."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: data file does not exist")
    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow raises several types for a corrupt file
            raise CorpusError(f"{path}: unreadable Parquet file ({err})") from err
        yield from enumerate(rows, start=1)
        return
    if name.endswith((".csv", ".tsv")):
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: a byte order mark is not data
            reader = csv.DictReader(handle, delimiter="\t" if name.endswith(".tsv") else ",")
            for row in reader:
                yield reader.line_num, dict(row)
        return
    opener = gzip.open if name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as err:
                    raise CorpusError(f"{path}:{number}: not valid JSON ({err})") from None
                if not isinstance(record, dict):
                    raise CorpusError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
                yield number, record
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 text ({err.reason})") from None
    except (OSError, EOFError) as err:
        raise CorpusError(f"{path}: unreadable ({err})") from None


def label_key(value: Any) -> str:
    """Labels are stored as strings in the model config; ints, bools and strings all map to one form."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def sort_labels(labels: set[str]) -> list[str]:
    """Numeric labels in numeric order ("2" before "10"), others alphabetically."""
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def collate(features: Sequence[Feature], pad_id: int, pad_to_multiple_of: int = 8) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence in the batch (rounded up to a multiple of 8 for efficient kernels)."""
    width = max(len(f["input_ids"]) for f in features)
    width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    rows = len(features)
    batch = {
        "input_ids": torch.full((rows, width), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros((rows, width), dtype=torch.long),
    }
    if "token_type_ids" in features[0]:
        batch["token_type_ids"] = torch.zeros((rows, width), dtype=torch.long)
    token_labels = "labels" in features[0] and isinstance(features[0]["labels"], list)
    if token_labels:
        batch["labels"] = torch.full((rows, width), IGNORE_INDEX, dtype=torch.long)
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        batch["input_ids"][row, :n] = torch.tensor(feature["input_ids"])
        batch["attention_mask"][row, :n] = 1
        if "token_type_ids" in batch:
            batch["token_type_ids"][row, :n] = torch.tensor(feature["token_type_ids"])
        if token_labels:
            batch["labels"][row, :n] = torch.tensor(feature["labels"])
    if "labels" in features[0] and not token_labels:
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
    return batch


class Batches:
    """An endless, resumable stream of padded training batches.

    Each epoch is a fresh permutation seeded by (seed, epoch). Within windows of 50 batches the examples are
    sorted by length before cutting batches (and the batches shuffled again), which saves most of the padding
    without making batch composition predictable. `state_dict()` (epoch, position) is all a resume needs.
    """

    def __init__(self, features: Sequence[Feature], batch_size: int, pad_id: int, seed: int = 0,
                 window: int = 50) -> None:
        if not features:
            raise CorpusError("no training examples")
        self.features = features
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.seed = seed
        self.window = window
        self.epoch = 0
        self.position = 0
        self._order: tuple[int, list[list[int]]] | None = None

    def batches_per_epoch(self) -> int:
        return -(-len(self.features) // self.batch_size)

    def _epoch_batches(self) -> list[list[int]]:
        if self._order is None or self._order[0] != self.epoch:
            rng = random.Random(self.seed * 1_000_003 + self.epoch)
            order = list(range(len(self.features)))
            rng.shuffle(order)
            span = self.batch_size * self.window
            batches: list[list[int]] = []
            for start in range(0, len(order), span):
                chunk = sorted(order[start : start + span], key=lambda i: len(self.features[i]["input_ids"]))
                batches.extend(chunk[k : k + self.batch_size] for k in range(0, len(chunk), self.batch_size))
            rng.shuffle(batches)
            self._order = (self.epoch, batches)
        return self._order[1]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.position >= self.batches_per_epoch():
            self.epoch, self.position = self.epoch + 1, 0
        indices = self._epoch_batches()[self.position]
        self.position += 1
        return collate([self.features[i] for i in indices], self.pad_id)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


@torch.no_grad()
def infer(model: torch.nn.Module, features: Sequence[Feature], pad_id: int, batch_size: int = 64,
          device: torch.device | str = "cpu", progress: Any = None) -> list[torch.Tensor]:
    """Logits for every feature, in input order (float32, on the CPU).

    Examples are run longest-first in batches of similar length, so little compute goes to padding.
    `progress(n)` is called after each batch with the number of examples done.
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    results: list[torch.Tensor | None] = [None] * len(features)
    names = ("input_ids", "attention_mask", "token_type_ids")
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = collate([{k: features[i][k] for k in names if k in features[i]} for i in indices], pad_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(**batch).logits.float().cpu()
        for row, index in enumerate(indices):
            n = len(features[index]["input_ids"])
            results[index] = logits[row] if logits.dim() == 2 else logits[row, :n]
        if progress is not None:
            progress(len(indices))
    if was_training:
        model.train()
    return results  # type: ignore[return-value]
