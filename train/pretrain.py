"""Pretrain BERT (masked LM + next-sentence prediction) on a folder of shards: `corpus train pretrain`.

    from corpus.train.pretrain import pretrain
    summary = pretrain("runs/demo/curated", "runs/demo/model", steps=100)

The output folder loads with `AutoModelForPreTraining` / `AutoModelForMaskedLM` / `pipeline("fill-mask")`.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from corpus.core.errors import CorpusError
from corpus.core.io import atomic_write_json, read_documents
from corpus.train import data as D
from corpus.train.loop import LoopConfig, Runtime, setup_runtime, train
from corpus.train.models import PRESETS, bert_config, build_model, flops_per_token, non_embedding_params
from corpus.train.tokenizer import load_tokenizer, round_up, train_tokenizer


@dataclass
class PretrainConfig:
    """Every pretraining setting; the resolved values are saved as `train_config.json` beside the model."""

    data: str
    out: str
    steps: int = 200
    preset: str = "tiny"  # tiny | mini | small | medium | base | large, or a BertConfig JSON file
    objective: str = "mlm+nsp"  # mlm+nsp (BERT) | mlm (packed full sequences, RoBERTa style)
    seq_len: int = 128
    batch_size: int = 16  # sequences per micro-batch per process
    vocab_size: int = 8000  # for a trained tokenizer; rounded up to a multiple of 64
    tokenizer: str | None = None  # an existing tokenizer directory instead of training one
    lr: float = 5e-4
    warmup_steps: int | None = None  # None: 10% of the steps (at most 10,000)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch CPU threads (None: torch's default, one per core)
    progress: bool = True
    # tokenizer
    lowercase: bool = True
    strip_accents: bool | None = None  # None: same as lowercase
    min_frequency: int = 2
    # data
    mlm_probability: float = 0.15
    short_seq_prob: float = 0.1
    eval_fraction: float = 0.05  # documents held out for evaluation (none for corpora under 10 documents)
    max_eval_examples: int = 512
    # model
    dropout: float = 0.1
    # loop
    grad_accum: int = 1
    schedule: str = "linear"
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.01
    clip_grad: float = 1.0
    precision: str = "auto"
    compile: bool = False
    log_every: int = 10
    eval_every: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    resume: bool = False
    stop_after: int | None = None
    tensorboard: bool = False
    peak_flops: float | None = None

    def loop_config(self) -> LoopConfig:
        names = {f.name for f in fields(LoopConfig)}
        values = {k: v for k, v in asdict(self).items() if k in names}
        return LoopConfig(**values)


class PretrainingObjective(torch.nn.Module):
    """`BertForPreTraining`'s losses, with the vocabulary projection run only on the masked positions.

    The dense head computes logits for every token although only ~15% are predicted; for small models that
    projection costs as much as the encoder (NVIDIA's BERT recipe does the same gather). Wrapping the model
    in a module (rather than a loss function) is what lets DDP see the whole forward pass.
    """

    def __init__(self, model: torch.nn.Module, nsp: bool = True) -> None:
        super().__init__()
        self.model = model
        self.nsp = nsp
        if not nsp:  # unused parameters would make DDP wait for gradients that never come
            for module in (model.bert.pooler, model.cls.seq_relationship):
                module.requires_grad_(False)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor,
        labels: torch.Tensor,
        next_sentence_label: torch.Tensor | None = None,
        mlm_positions: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Losses and accuracies; `mlm_positions`/`mlm_labels` (from `MaskingCollator`) avoid a host sync."""
        out = self.model.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        hidden = out.last_hidden_state.flatten(0, 1)
        if mlm_positions is None or mlm_labels is None:
            mlm_positions = (labels.view(-1) != D.IGNORE_INDEX).nonzero().squeeze(1)
            mlm_labels = labels.view(-1)[mlm_positions]
        logits = self.model.cls.predictions(hidden.index_select(0, mlm_positions)).float()
        mlm_loss = F.cross_entropy(logits, mlm_labels, ignore_index=D.IGNORE_INDEX)
        real = mlm_labels != D.IGNORE_INDEX
        correct = (logits.argmax(-1) == mlm_labels) & real
        metrics = {"mlm_loss": mlm_loss.detach(), "mlm_acc": correct.sum() / real.sum().clamp(min=1)}
        loss = mlm_loss
        if self.nsp and next_sentence_label is not None:
            nsp_logits = self.model.cls.seq_relationship(out.pooler_output).float()
            nsp_loss = F.cross_entropy(nsp_logits, next_sentence_label)
            metrics["nsp_loss"] = nsp_loss.detach()
            metrics["nsp_acc"] = (nsp_logits.argmax(-1) == next_sentence_label).float().mean()
            loss = loss + nsp_loss
        return loss, metrics


def evaluate(
    objective: PretrainingObjective, batches: list[dict[str, torch.Tensor]], device: torch.device
) -> dict[str, float]:
    """Held-out MLM loss and accuracy (per masked token) and NSP accuracy (per pair)."""
    totals: dict[str, float] = {}
    masked_total = pairs_total = 0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        _, metrics = objective(**batch)
        masked = int((batch["labels"] != D.IGNORE_INDEX).sum())
        pairs = len(batch["input_ids"])
        masked_total += masked
        pairs_total += pairs
        for key, value in metrics.items():
            weight = masked if key.startswith("mlm") else pairs
            totals[key] = totals.get(key, 0.0) + float(value) * weight
    return {k: v / (masked_total if k.startswith("mlm") else pairs_total) for k, v in sorted(totals.items())}


def unigram_baseline(
    train_docs: list[D.Segments], batches: list[dict[str, torch.Tensor]], vocab_size: int
) -> dict[str, float]:
    """What token frequencies alone score on the held-out masked positions: the bar a model must clear.

    Accuracy of always guessing the most frequent training token, and the cross-entropy of the
    (add-one smoothed) unigram distribution.
    """
    counts = torch.ones(vocab_size, dtype=torch.float64)
    for doc in train_docs:
        for segment in doc:
            counts += torch.bincount(torch.tensor(segment, dtype=torch.long), minlength=vocab_size)
    log_p = (counts / counts.sum()).log()
    targets = torch.cat([b["labels"][b["labels"] != D.IGNORE_INDEX] for b in batches])
    return {
        "mlm_acc": float((targets == counts.argmax()).double().mean()),
        "mlm_loss": float(-log_p[targets].mean()),
    }


def _held_out(ids: list[str], fraction: float) -> set[int]:
    """Indices of documents held out for evaluation: chosen by a hash of the id, so stable across runs."""
    if fraction <= 0 or len(ids) < 10:
        return set()
    count = max(1, round(len(ids) * fraction))
    order = sorted(range(len(ids)), key=lambda i: hashlib.sha1(ids[i].encode()).hexdigest())
    return set(order[:count])


def _load_corpus(folder: str) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for doc in read_documents(folder):
        if doc.text.strip():
            ids.append(doc.id)
            texts.append(doc.text)
    if not texts:
        raise CorpusError(f"{folder}: the corpus has no documents with text; point --data at curated shards")
    return ids, texts


def _resolve_tokenizer(cfg: PretrainConfig, texts: list[str], runtime: Runtime) -> Any:
    """An existing tokenizer, the one saved in `out` by the run we resume, or a new one trained by rank 0."""
    out = Path(cfg.out)
    if cfg.tokenizer:
        return load_tokenizer(cfg.tokenizer)
    if cfg.resume and (out / "tokenizer.json").exists():
        return load_tokenizer(out)
    if runtime.main:
        train_tokenizer(texts, out, vocab_size=cfg.vocab_size, lowercase=cfg.lowercase,
                        strip_accents=cfg.strip_accents, min_frequency=cfg.min_frequency)
    if runtime.distributed:
        torch.distributed.barrier()
    return load_tokenizer(out)


def _weights_sha256(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def pretrain(
    data: str | Path,
    out: str | Path,
    *,
    steps: int = 200,
    preset: str = "tiny",
    objective: str = "mlm+nsp",
    seq_len: int = 128,
    batch_size: int = 16,
    vocab_size: int = 8000,
    tokenizer: str | Path | None = None,
    lr: float = 5e-4,
    warmup_steps: int | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    **more: Any,
) -> dict[str, Any]:
    """Train a tokenizer (unless given) and pretrain a BERT on the shards in `data`; save it to `out`.

    `more` takes any other `PretrainConfig` field (grad_accum, eval_every, checkpoint_every, resume, …).
    Returns a summary: steps, final loss, tokens, seconds, model path, held-out metrics. Under torchrun
    every process calls this; rank 0 writes the outputs.
    """
    known = {f.name for f in fields(PretrainConfig)} - {"data", "out"}
    unknown = sorted(set(more) - known)
    if unknown:
        raise CorpusError(
            f"unknown pretraining option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )
    cfg = PretrainConfig(
        data=str(data), out=str(out), steps=steps, preset=str(preset), objective=objective, seq_len=seq_len,
        batch_size=batch_size, vocab_size=vocab_size, tokenizer=str(tokenizer) if tokenizer else None, lr=lr,
        warmup_steps=warmup_steps, seed=seed, device=device, progress=progress, **more,
    )
    if cfg.objective not in D.OBJECTIVES:
        raise CorpusError(f"unknown objective {cfg.objective!r}; choose one of {', '.join(D.OBJECTIVES)}")
    if cfg.warmup_steps is None:
        cfg.warmup_steps = min(10_000, cfg.steps // 10)
    if cfg.seq_len < 8 or cfg.batch_size < 1:
        raise CorpusError(f"seq_len must be >= 8 and batch_size >= 1 (got {cfg.seq_len}, {cfg.batch_size})")
    if cfg.threads:
        # On a machine busy with other work, OpenMP threads that spin waiting for each other can make small
        # models many times slower; one thread is then often the fastest choice.
        torch.set_num_threads(cfg.threads)
    runtime = setup_runtime(cfg.device)
    out_dir = Path(cfg.out)
    if runtime.main:
        out_dir.mkdir(parents=True, exist_ok=True)

    # Data: documents → held-out split → tokenizer → sentence segments.
    ids, texts = _load_corpus(cfg.data)
    held_out = _held_out(ids, cfg.eval_fraction)
    train_texts = [t for i, t in enumerate(texts) if i not in held_out]
    eval_texts = [t for i, t in enumerate(texts) if i in held_out]
    tok = _resolve_tokenizer(cfg, train_texts, runtime)
    max_segment = cfg.seq_len if cfg.objective == "mlm" else max(1, (cfg.seq_len - 3) // 2)
    train_docs = D.segment_documents(train_texts, tok, max_segment_tokens=max_segment)
    eval_docs = D.segment_documents(eval_texts, tok, max_segment_tokens=max_segment)
    if not train_docs:
        raise CorpusError(f"{cfg.data}: no document produced any token; is the text empty or binary?")

    # Model: a preset (vocabulary sized to the tokenizer) or a config file (checked against it).
    vocab = round_up(len(tok))
    model_config = bert_config(
        cfg.preset, vocab_size=vocab, max_position_embeddings=max(512, cfg.seq_len),
        hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
    )
    if cfg.seq_len > model_config.max_position_embeddings:
        raise CorpusError(f"seq_len {cfg.seq_len} exceeds the model's max_position_embeddings "
                          f"{model_config.max_position_embeddings}; lower seq_len")
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    bert = build_model(model_config)
    objective_module = PretrainingObjective(bert, nsp=cfg.objective == "mlm+nsp")
    torch.manual_seed(cfg.seed + runtime.rank)  # but each rank its own dropout stream
    random.seed(cfg.seed + runtime.rank)

    collator = D.MaskingCollator.for_tokenizer(
        tok, model_config.vocab_size, mlm_probability=cfg.mlm_probability
    )
    batches = D.PretrainBatches(
        train_docs, objective=cfg.objective, seq_len=cfg.seq_len, batch_size=cfg.batch_size,
        collator=collator, cls_id=tok.cls_token_id, sep_id=tok.sep_token_id, seed=cfg.seed,
        rank=runtime.rank, world_size=runtime.world_size, short_seq_prob=cfg.short_seq_prob,
    )
    eval_fn = None
    baseline: dict[str, float] = {}
    if eval_docs:
        eval_examples = D.build_examples(
            eval_docs, cfg.objective, cfg.seq_len, random.Random(cfg.seed + 1), cls_id=tok.cls_token_id,
            sep_id=tok.sep_token_id, short_seq_prob=cfg.short_seq_prob, random_pool=eval_docs + train_docs,
        )[: cfg.max_eval_examples]
        eval_batches = D.fixed_batches(eval_examples, cfg.batch_size, collator, seed=cfg.seed + 1)
        eval_fn = functools.partial(evaluate, batches=eval_batches, device=runtime.device)
        baseline = unigram_baseline(train_docs, eval_batches, model_config.vocab_size)

    n_params = non_embedding_params(bert)
    loop_config = cfg.loop_config()
    meta = {
        "model": {k: model_config.to_dict()[k] for k in (
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "max_position_embeddings")},
        "objective": cfg.objective, "seq_len": cfg.seq_len, "batch_size": cfg.batch_size,
        "grad_accum": cfg.grad_accum, "world_size": runtime.world_size, "seed": cfg.seed,
        "train_documents": len(train_docs),
    }
    data_stats = {
        "documents": len(texts), "train_documents": len(train_docs), "eval_documents": len(eval_docs),
        "train_tokens": sum(len(s) for doc in train_docs for s in doc),
        "examples_per_epoch": batches.epoch_size() * runtime.world_size,
        "batches_per_epoch": batches.batches_per_epoch(),
    }
    if runtime.main:
        atomic_write_json(out_dir / "train_config.json", {
            **asdict(cfg), "world_size": runtime.world_size, "model": model_config.to_dict(),
            "non_embedding_params": n_params, "tokenizer_size": len(tok), "data_stats": data_stats,
            "loop": asdict(loop_config),
            "versions": {"torch": torch.__version__, "transformers": _transformers_version()},
        })

    fingerprint = hashlib.sha256()
    result = train(
        objective_module,
        batches,
        lambda module, batch: module(**batch),
        loop_config,
        out_dir,
        runtime,
        eval_fn=eval_fn,
        flops_per_token=flops_per_token(model_config, n_params, cfg.seq_len),
        meta=meta,
        on_batch=(lambda batch: fingerprint.update(batch["input_ids"].numpy().tobytes()))
        if runtime.distributed else None,
    )
    last = result["last_log"]
    summary: dict[str, Any] = {
        "steps": result["steps"],
        "finished": result["finished"],
        "final_loss": result["loss"],
        **{k: last[k] for k in ("mlm_loss", "nsp_loss", "mlm_acc", "nsp_acc") if k in last},
        **{f"eval_{k}": v for k, v in result.get("eval", {}).items()},
        **{f"eval_unigram_{k}": v for k, v in baseline.items()},
        "tokens": result["tokens"],
        "tokens_per_s": round(result["tokens_per_s"], 1),
        "seconds": round(result["seconds"], 2),
        "model_path": str(out_dir),
        "preset": cfg.preset,
        "objective": cfg.objective,
        "vocab_size": vocab,
        "non_embedding_params": n_params,
        "documents": len(texts),
        "eval_documents": len(eval_docs),
        "world_size": runtime.world_size,
        "rank": runtime.rank,
    }
    if "mfu" in result:
        summary["mfu"] = result["mfu"]
    summary = {k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}  # for tables
    if runtime.distributed:  # lets a caller check that every rank ended with the same weights
        summary["data_fingerprint"] = fingerprint.hexdigest()
        summary["weights_sha256"] = _weights_sha256(bert)
    if runtime.main:
        bert.save_pretrained(str(out_dir))
        tok.save_pretrained(str(out_dir))
        atomic_write_json(out_dir / "train_summary.json", summary)
    if runtime.distributed:
        torch.distributed.barrier()
    return summary


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


__all__ = ["PRESETS", "PretrainConfig", "PretrainingObjective", "evaluate", "pretrain"]
