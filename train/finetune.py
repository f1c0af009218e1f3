"""Fine-tune a BERT-family model for classification or NER with the one training loop: `corpus train finetune`.

    from corpus.train.finetune import finetune
    summary = finetune("runs/demo/model", "train.jsonl", "runs/clf", eval="dev.jsonl", task="classify")

The model is our pretrained checkpoint or any local Hugging Face directory (BERT, DistilBERT, RoBERTa, MiniLM…).
Labels come from the training data and are saved in the model config (`id2label`/`label2id`), so the output
folder loads with `AutoModelForSequenceClassification` (or `…ForTokenClassification`) and `corpus predict`.
The evaluation file picks the best evaluation (early stopping on its metric); an optional test file is only
scored, never used for choices. `OUT/metrics.json` holds the evaluation (and test) metrics.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from corpus.core.errors import CorpusError
from corpus.core.io import atomic_write_json
from corpus.train.labelled import Batches, infer
from corpus.train.loop import LoopConfig, setup_runtime, train

TASKS = {"classify": "corpus.train.classify", "ner": "corpus.train.ner"}


@dataclass
class FinetuneConfig:
    """Every fine-tuning setting; the resolved values are saved as `finetune_config.json` beside the model."""

    model: str
    train: str
    out: str
    task: str = "classify"  # classify | ner
    eval: str | None = None  # None: hold out eval_fraction of the training file
    test: str | None = None  # scored with the chosen model only
    eval_fraction: float = 0.1
    epochs: float = 3.0
    steps: int | None = None  # overrides epochs
    batch_size: int = 32
    lr: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128
    class_weights: str | dict[str, float] | None = None  # none | balanced | {label: weight} | "A=2,B=1"
    tune_threshold: bool = False  # binary classify: pick the decision threshold on the eval split, save it
    metric: str | None = None  # early-stopping metric; default macro_f1 (classify) or f1 (ner)
    patience: int = 2  # evaluations without improvement before stopping; 0 never stops early
    eval_every: int | None = None  # steps between evaluations; None: once per epoch
    max_train_examples: int | None = None  # a seeded random sample of the training file
    max_eval_examples: int | None = None
    init: str = "pretrained"  # pretrained | random (same architecture, fresh weights: the baseline)
    labels: list[str] | None = None  # fix the label order instead of reading it from the data
    text_field: str | None = None  # default: text (classify) or tokens (ner)
    label_field: str | None = None  # default: label (classify) or tags (ner)
    pair_field: str | None = None  # classify: a second text (sentence-pair tasks)
    dropout: float | None = None  # None: the model's own
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    progress: bool = True
    log_every: int = 10
    eval_batch_size: int = 64


def task_module(task: str) -> ModuleType:
    if task not in TASKS:
        raise CorpusError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return importlib.import_module(TASKS[task])


def check_model_dir(path: str | Path) -> Path:
    """A local model folder with a config.json: never a hub id (nothing is downloaded at run time)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        what = "does not exist" if not path.exists() else "has no config.json"
        raise CorpusError(f"{path}: model folder {what}; give a folder from `corpus train pretrain`, "
                          "`corpus train finetune` or a local Hugging Face model")
    return path


def load_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(check_model_dir(path)), local_files_only=True)
    except (OSError, ValueError) as err:
        raise CorpusError(f"{path}: cannot load its tokenizer ({err})") from err


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No per-file progress bars or "newly initialised head" reports while loading and saving: a new head is
    the point of fine-tuning, and the bars only clutter the training progress."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def load_model(path: str | Path, task: str, labels: list[str] | None = None, init: str = "pretrained",
               dropout: float | None = None, extra: dict[str, Any] | None = None) -> Any:
    """The task's model class over `path`'s encoder with a new head for `labels` (None: keep the saved head)."""
    import transformers
    from transformers import AutoConfig

    path = check_model_dir(path)
    auto = getattr(transformers, task_module(task).AUTO_CLASS)
    options: dict[str, Any] = {}
    if labels is not None:
        options = {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
                   "label2id": {label: i for i, label in enumerate(labels)}}
    if dropout is not None:
        options.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    try:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True, **options)
        for key, value in (extra or {}).items():
            setattr(config, key, value)
        if init == "random":
            return auto.from_config(config)
        if init != "pretrained":
            raise CorpusError(f"init must be 'pretrained' or 'random', not {init!r}")
        with quiet_transformers():
            return auto.from_pretrained(str(path), config=config, local_files_only=True,
                                        ignore_mismatched_sizes=True)
    except (OSError, ValueError, KeyError) as err:
        raise CorpusError(f"{path}: cannot load it for {task} ({err})") from err


def task_of(config: Any) -> str:
    """The fine-tuning task a saved model was trained for (from our config key or its architecture)."""
    task = getattr(config, "corpus_task", None)
    if task in TASKS:
        return task
    arch = " ".join(getattr(config, "architectures", None) or [])
    if "TokenClassification" in arch:
        return "ner"
    if "SequenceClassification" in arch:
        return "classify"
    raise CorpusError(f"the model is not a fine-tuned classifier ({arch or 'no architecture'}); "
                      "fine-tune it first with `corpus train finetune`")


def max_positions(model: Any, tokenizer: Any, wanted: int) -> int:
    """`wanted`, capped by the model's position table and the tokenizer's own limit."""
    limit = getattr(model.config, "max_position_embeddings", wanted) or wanted
    if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= 2  # RoBERTa's position ids start after the padding index
    tok_limit = getattr(tokenizer, "model_max_length", wanted) or wanted
    return max(8, min(wanted, limit, tok_limit))


def _sample(examples: list[Any], limit: int | None, seed: int) -> list[Any]:
    if limit is None or len(examples) <= limit:
        return examples
    picked = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in picked]


def _split(examples: list[Any], fraction: float) -> tuple[list[Any], list[Any]]:
    """A stable held-out share of the training examples (by a hash of their position and content)."""
    if not 0 < fraction < 1:
        raise CorpusError(f"eval_fraction must be between 0 and 1 when no eval file is given, not {fraction}")

    def key(example: Any) -> str:
        return hashlib.sha1(repr((example.where, getattr(example, "text", None) or example.words)).encode()).hexdigest()

    ranked = sorted(examples, key=key)
    count = max(1, round(len(examples) * fraction))
    held = {id(e) for e in ranked[:count]}
    return [e for e in examples if id(e) not in held], [e for e in examples if id(e) in held]


def finetune(model: str | Path, train_file: str | Path, out: str | Path, *,
             before_writing: Callable[[], Any] | None = None, **options: Any) -> dict[str, Any]:
    """Fine-tune `model` on `train_file`; write the best model and `metrics.json` to `out`; return a summary.

    `options` are `FinetuneConfig` fields (task, eval, test, epochs, lr, class_weights, patience, …).
    `before_writing` runs once everything was read and checked, just before `out` is first written (the CLI
    claims the folder there, so a mistake in the options or the data never costs an existing model).
    """
    known = {f.name for f in fields(FinetuneConfig)} - {"model", "train", "out"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise CorpusError(f"unknown fine-tuning option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    from corpus.core.config import check_options

    options = check_options(FinetuneConfig, options, "fine-tuning option")  # types and ranges, before any work
    cfg = FinetuneConfig(model=str(model), train=str(train_file), out=str(out), **options)
    task = task_module(cfg.task)
    fields_ = {k: getattr(cfg, k) or v for k, v in task.FIELDS.items()}
    metric = cfg.metric or task.METRICS[0]
    if metric not in task.METRICS:
        raise CorpusError(f"metric {metric!r} for {cfg.task}: choose {', '.join(task.METRICS)}")
    if cfg.batch_size < 1 or cfg.epochs <= 0 or cfg.max_length < 8:
        raise CorpusError("batch_size >= 1, epochs > 0 and max_length >= 8 are required")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise CorpusError("fine-tuning runs in one process (one GPU or the CPU); run it without torchrun")
    runtime = setup_runtime(cfg.device)
    started = time.perf_counter()

    # Data and labels.
    read = {"pair_field": cfg.pair_field} if cfg.task == "classify" else {}
    train_examples = task.read_examples(cfg.train, **fields_, **read)
    if cfg.eval:
        eval_examples = task.read_examples(cfg.eval, **fields_, **read)
    else:
        train_examples, eval_examples = _split(train_examples, cfg.eval_fraction)
    train_examples = _sample(train_examples, cfg.max_train_examples, cfg.seed)
    eval_examples = _sample(eval_examples, cfg.max_eval_examples, cfg.seed + 1)
    test_examples = task.read_examples(cfg.test, **fields_, **read) if cfg.test else []
    labels = list(cfg.labels) if cfg.labels else task.labels_of(train_examples)
    label2id = {label: i for i, label in enumerate(labels)}
    if cfg.tune_threshold and (cfg.task != "classify" or len(labels) != 2):
        raise CorpusError(f"tune_threshold is for binary classifiers; this {cfg.task} task has {len(labels)} labels")

    # Model, tokenizer, features.
    tokenizer = load_tokenizer(cfg.model)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    extra = {"corpus_task": cfg.task, "corpus_label_type": task.label_type(train_examples),
             "corpus_max_length": cfg.max_length}
    model = load_model(cfg.model, cfg.task, labels, cfg.init, cfg.dropout, extra)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise CorpusError(f"{cfg.model}: the tokenizer has {len(tokenizer)} tokens but the model only "
                          f"{model.get_input_embeddings().num_embeddings} embeddings; they do not belong together")
    max_length = max_positions(model, tokenizer, cfg.max_length)
    model.config.corpus_max_length = max_length
    train_features = task.encode(train_examples, tokenizer, label2id, max_length)
    eval_features = task.encode(eval_examples, tokenizer, label2id, max_length)
    test_features = task.encode(test_examples, tokenizer, label2id, max_length) if test_examples else []
    weights = task.class_weights(train_examples, label2id, cfg.class_weights)
    objective = task.Objective(model, weights)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = Batches(train_features, cfg.batch_size, pad_id, seed=cfg.seed)
    per_epoch = batches.batches_per_epoch()
    steps = cfg.steps or max(1, math.ceil(cfg.epochs * per_epoch))
    eval_every = cfg.eval_every or per_epoch
    id2label = dict(enumerate(labels))
    device = runtime.device

    # Evaluation: the metric on the eval file; the best weights are kept (on the CPU) for the output.
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"score": -math.inf, "state": None, "metrics": None, "step": 0, "since": 0}
    progress_step = [0]

    def score(examples: list[Any], features: list[Any], decision: dict[str, Any] | None = None) -> dict[str, Any]:
        logits = infer(model, features, pad_id, cfg.eval_batch_size, device)
        return task.evaluate(examples, features, logits, id2label, **({"threshold": decision} if decision else {}))

    def eval_fn(_: torch.nn.Module) -> dict[str, float]:
        result = score(eval_examples, eval_features)
        progress_step[0] += eval_every
        step = min(progress_step[0], steps)
        history.append({"step": step, **{k: result[k] for k in task.METRICS}})
        if result[metric] > best["score"]:
            best.update(score=result[metric], metrics=result, step=step, since=0,
                        state={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
        else:
            best["since"] += 1
        return {k: result[k] for k in task.METRICS}

    def should_stop(_: dict[str, float]) -> bool:
        return cfg.patience > 0 and best["since"] >= cfg.patience

    loop_config = LoopConfig(
        steps=steps, lr=cfg.lr, warmup_steps=round(cfg.warmup_ratio * steps), schedule="linear",
        weight_decay=cfg.weight_decay, precision=cfg.precision, progress=cfg.progress, log_every=cfg.log_every,
        eval_every=eval_every if eval_every < steps else 0, seed=cfg.seed,
    )
    if before_writing is not None:
        before_writing()
    out_dir = Path(cfg.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = train(objective, batches, lambda module, batch: module(**batch), loop_config, out_dir, runtime,
                   eval_fn=eval_fn, should_stop=should_stop,
                   meta={"task": cfg.task, "model": cfg.model, "labels": labels, "batch_size": cfg.batch_size})

    # The chosen model: weights of the best evaluation, saved with its tokenizer and label maps.
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    threshold, decision = None, None
    if cfg.tune_threshold:
        logits = infer(model, eval_features, pad_id, cfg.eval_batch_size, device)
        threshold = task.tune_threshold(task.probabilities(logits), [e.label for e in eval_examples], labels, metric)
        threshold["argmax_score"] = best["metrics"][metric]
        decision = {"label": threshold["label"], "probability": threshold["probability"]}
        best["metrics"] = task.evaluate(eval_examples, eval_features, logits, id2label, threshold=decision)
    model.config.corpus_threshold = decision  # None: argmax (and no rule inherited from the starting model)
    test_metrics = score(test_examples, test_features, decision) if test_examples else None
    with quiet_transformers():
        model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
    summary: dict[str, Any] = {
        "task": cfg.task,
        "metric": metric,
        **{k: best["metrics"][k] for k in task.METRICS},
        "eval": best["metrics"],
        "eval_file": cfg.eval or f"{cfg.train} (held-out {cfg.eval_fraction:.0%})",
        "threshold": threshold,  # eval scores then use it too, so they flatter a little: it was tuned there
        "test": test_metrics,
        "test_file": cfg.test,
        "labels": labels,
        "train_examples": len(train_examples),
        "eval_examples": len(eval_examples),
        "best_step": best["step"],
        "steps": result["steps"],
        "planned_steps": steps,
        "stopped_early": bool(result.get("stopped_early")),
        "history": history,
        "train_loss": result["loss"],
        "seconds": round(time.perf_counter() - started, 2),
        "model_path": str(out_dir),
    }
    atomic_write_json(out_dir / "metrics.json", summary)
    atomic_write_json(out_dir / "finetune_config.json", {**asdict(cfg), "max_length": max_length,
                                                        "steps": steps, "eval_every": eval_every,
                                                        "loop": asdict(loop_config)})
    return summary


__all__ = ["FinetuneConfig", "finetune", "load_model", "load_tokenizer", "task_module", "task_of"]
