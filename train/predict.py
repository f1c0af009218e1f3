"""Batch inference with a fine-tuned model folder: `corpus predict --model OUT data.jsonl`.

    from corpus.train.predict import Predictor
    clf = Predictor("runs/clf")
    clf.classify(["a fine film"])  # [{"label": "1", "probabilities": {"0": 0.1, "1": 0.9}}]

Classifiers give each record a `prediction` (the label, an integer again when trained on integers) and
`probabilities`; NER models give `tags` (one per word), their `scores` and `entities` (word spans).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from corpus.core.errors import CorpusError
from corpus.train.finetune import check_model_dir, load_model, load_tokenizer, max_positions, task_module, task_of
from corpus.train.labelled import infer


class Predictor:
    """A fine-tuned classifier or tagger, loaded once; batches sorted by length for speed."""

    def __init__(self, model_dir: str | Path, device: str = "auto", batch_size: int = 64,
                 max_length: int | None = None, precision: str = "auto") -> None:
        from transformers import AutoConfig

        self.path = check_model_dir(model_dir)
        config = AutoConfig.from_pretrained(str(self.path), local_files_only=True)
        self.task = task_of(config)
        self.module = task_module(self.task)
        self.model = load_model(self.path, self.task)
        self.tokenizer = load_tokenizer(self.path)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        wanted = max_length or getattr(config, "corpus_max_length", None) or 512
        self.max_length = max_positions(self.model, self.tokenizer, wanted)
        self.id2label = {int(k): v for k, v in self.model.config.id2label.items()}
        self.int_labels = getattr(config, "corpus_label_type", "str") == "int"
        # A decision threshold tuned at fine-tuning time (`tune_threshold`); None: argmax.
        self.threshold: dict[str, Any] | None = getattr(config, "corpus_threshold", None) if self.task == "classify" \
            else None
        self._decision = {"threshold": self.threshold} if self.threshold else {}
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        self._autocast = (lambda: torch.autocast(self.device.type, dtype=torch.bfloat16)) if bf16 else nullcontext

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]

    def _logits(self, examples: Sequence[Any], progress: Callable[[int], None] | None = None
                ) -> tuple[list[dict[str, Any]], list[torch.Tensor]]:
        features = self.module.encode(examples, self.tokenizer, None, self.max_length)
        with self._autocast():
            logits = infer(self.model, features, self.pad_id, self.batch_size, self.device, progress)
        return features, logits

    def probabilities(self, texts: Sequence[str]) -> torch.Tensor:
        """Class probabilities, one row per text (classifiers only)."""
        if self.task != "classify":
            raise CorpusError(f"{self.path}: a {self.task} model gives tags, not class probabilities")
        if not texts:
            return torch.zeros((0, len(self.id2label)))
        _, logits = self._logits(self._text_examples(texts))
        return self.module.probabilities(logits)

    def classify(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Label (by the model's tuned threshold when it has one) and every label's probability, per text."""
        if self.task != "classify":
            raise CorpusError(f"{self.path}: a {self.task} model gives tags, not class labels")
        return self.predict_examples(self._text_examples(texts)) if texts else []

    def _text_examples(self, texts: Sequence[str]) -> list[Any]:
        return [self.module.TextExample(t, None, "") for t in texts]

    def tag(self, sentences: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
        """Tags, scores and entity spans for sentences given as lists of words (NER models only)."""
        if self.task != "ner":
            raise CorpusError(f"{self.path}: a {self.task} model gives labels, not tags")
        examples = [self.module.TaggedExample(list(words), None, "") for words in sentences]
        features, logits = self._logits(examples)
        return self.module.decode(examples, features, logits, self.id2label)

    def read(self, path: str | Path, text_field: str | None = None, require_labels: bool = False,
             label_field: str | None = None) -> list[Any]:
        fields = {k: v for k, v in (("text_field", text_field), ("label_field", label_field)) if v}
        return self.module.read_examples(path, **{**self.module.FIELDS, **fields}, require_labels=require_labels,
                                         keep_records=True)

    def predict_examples(self, examples: Sequence[Any], progress: Callable[[int], None] | None = None
                         ) -> list[dict[str, Any]]:
        features, logits = self._logits(examples, progress)
        results = self.module.decode(examples, features, logits, self.id2label, **self._decision)
        if self.task == "classify" and self.int_labels:
            for result in results:
                result["label"] = int(result["label"])
        return results

    def evaluate_file(self, path: str | Path, text_field: str | None = None, label_field: str | None = None
                      ) -> dict[str, Any]:
        """The task's metrics on a labelled file (its labels must be ones the model knows)."""
        examples = self.read(path, text_field, require_labels=True, label_field=label_field)
        known = set(self.id2label.values())
        for example in examples:
            gold = [example.label] if self.task == "classify" else example.tags
            unknown = [g for g in gold if g not in known]
            if unknown:
                raise CorpusError(f"{example.where}: label {unknown[0]!r} is not one the model knows "
                                  f"({', '.join(self.labels)})")
        features, logits = self._logits(examples)
        return self.module.evaluate(examples, features, logits, self.id2label, **self._decision)


def predict_file(model_dir: str | Path, data: str | Path, out: str | Path | None = None, *,
                 text_field: str | None = None, batch_size: int = 64, device: str = "auto",
                 progress: bool = True) -> dict[str, Any]:
    """Predict every record of `data`; write JSONL (the input record plus the prediction) to `out` or stdout."""
    import os
    import sys

    from corpus.core.runs import check_separate

    if batch_size < 1:
        raise CorpusError(f"--batch-size {batch_size}: must be at least 1")
    if out is not None:  # checked before the model runs: a bad -o must not cost the whole prediction
        out = Path(out)
        check_separate(out, [data, model_dir])
        if out.is_dir():
            raise CorpusError(f"-o {out}: is a folder; give a file name such as {out / 'predictions.jsonl'}")
    predictor = Predictor(model_dir, device=device, batch_size=batch_size)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    examples = predictor.read(data, text_field)
    started = time.perf_counter()
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True, console=_stderr_console())
        bar.start()
        job = bar.add_task("predicting", total=len(examples))
    try:
        results = predictor.predict_examples(examples, (lambda n: bar.advance(job, n)) if bar else None)
    finally:
        if bar is not None:
            bar.stop()
    counts: Counter[str] = Counter()
    # A file is written beside its final name and renamed at the end: no half-written predictions.
    partial = out.with_name(f".{out.name}.tmp-{os.getpid()}") if out else None
    handle = open(partial, "w", encoding="utf-8") if partial else sys.stdout  # noqa: SIM115 - stdout stays open
    try:
        for example, result in zip(examples, results, strict=True):
            record = dict(example.record or {})
            if predictor.task == "classify":
                record["prediction"] = result["label"]
                record["probabilities"] = result["probabilities"]
                counts[str(result["label"])] += 1
            else:
                record.update(predicted_tags=result["tags"], scores=result["scores"], entities=result["entities"])
                counts.update(e["type"] for e in result["entities"])
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    except BaseException:
        if partial:
            handle.close()
            partial.unlink(missing_ok=True)
        raise
    if partial:
        handle.close()
        os.replace(partial, out)
    seconds = time.perf_counter() - started
    return {"task": predictor.task, "records": len(examples), "counts": dict(sorted(counts.items())),
            "seconds": round(seconds, 2), "records_per_s": round(len(examples) / seconds, 1) if seconds else 0.0,
            "output": str(out) if out else "stdout"}


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)
