"""Pretrain BERT (masked LM + next-sentence prediction) on a folder of shards: `corpus train pretrain`.

    from corpus.train.pretrain import pretrain
    summary = pretrain("runs/demo/curated", "runs/demo/model", steps=100)

The output folder loads with `AutoModelForPreTraining` / `AutoModelForMaskedLM` / `pipeline("fill-mask")`.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from corpus.core.errors import CorpusError
from corpus.core.io import atomic_write_json
from corpus.train import data as D
from corpus.train.loop import LoopConfig, Runtime, setup_runtime, train
from corpus.train.models import PRESETS, bert_config, build_model, flops_per_token, non_embedding_params
from corpus.train.tokenizer import load_tokenizer, round_up


@dataclass
class PretrainConfig:
    """Every pretraining setting; the resolved values are saved as `train_config.json` beside the model.

    Each field is a keyword of `pretrain(...)` and a `--set key=value` of `corpus train pretrain`.
    """

    data: str  # curated shards (tokenised into the token store first) or a token store folder
    out: str
    steps: int = 200
    preset: str = "tiny"  # tiny | mini | small | medium | base | large, or a BertConfig JSON file
    objective: str = "mlm+nsp"  # mlm+nsp (BERT) | mlm (packed full sequences, RoBERTa style)
    seq_len: int = 128
    batch_size: int = 16  # sequences per micro-batch per process
    vocab_size: int = 8000  # for a trained tokenizer; rounded up to a multiple of 64
    tokenizer: str | None = None  # an existing tokenizer directory instead of training one
    init_from: str | None = None  # a saved model to continue from (BERT's phase 2): its weights and tokenizer
    lr: float = 5e-4
    warmup_steps: int | None = None  # None: 10% of the steps (at most 10,000)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch CPU threads (None: torch's default, one per core)
    progress: bool = True
    overwrite: bool = False  # replace the model in `out` (only files this command writes)
    # tokenizer
    lowercase: bool = True
    strip_accents: bool | None = None  # None: same as lowercase
    min_frequency: int = 2
    sample_docs: int = 1_000_000  # the tokenizer is trained on a seeded sample of this many documents...
    sample_bytes: int = 1_000_000_000  # ...or this many characters, whichever comes first
    # token store
    tokens: str | None = None  # where to build the token store (default: OUT/tokens)
    tokenize_workers: int = 1  # processes tokenising shards (like curate's --workers)
    eval_fraction: float = 0.05  # documents held out for evaluation (none for corpora under 10 documents)
    max_eval_docs: int = 10_000  # held out at most (expected)
    max_eval_examples: int = 512
    # data loader
    loader_workers: int | None = None  # DataLoader worker processes (None: 0 on CPU, 4 on CUDA)
    data_streams: int | None = None  # data streams per process (None: max(1, loader_workers)); fixes the order
    shuffle_docs: int = 1000  # documents per shuffle buffer (and NSP random-segment pool)
    mlm_probability: float = 0.15
    short_seq_prob: float = 0.1
    # model
    dropout: float = 0.1
    # loop
    grad_accum: int = 1
    schedule: str = "linear"  # linear | cosine | constant (after warmup)
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.01
    clip_grad: float = 1.0
    precision: str = "auto"  # auto | bf16 | fp32
    compile: bool | None = None  # torch.compile the model (None: on CUDA)
    unpad: bool | None = None  # unpadded batches at a fixed token budget (None: on CUDA; docs/train.md)
    log_every: int = 10
    eval_every: int = 0  # 0: evaluate only at the end
    checkpoint_every: int = 0  # 0: no checkpoints
    keep_checkpoints: int = 2
    resume: bool = False
    stop_after: int | None = None
    tensorboard: bool = False
    peak_flops: float | None = None

    def loop_config(self) -> LoopConfig:
        names = {f.name for f in fields(LoopConfig)}
        values = {k: v for k, v in asdict(self).items() if k in names}
        values["compile"] = bool(self.compile)
        return LoopConfig(**values)

    def check(self) -> None:
        """Every option checked before any work (a wrong preset must not wait for the tokenizer)."""
        rules = [
            (self.steps >= 1, "steps must be >= 1"),
            (self.seq_len >= 8, "seq_len must be >= 8"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.vocab_size >= 64, "vocab_size must be >= 64"),
            (self.lr > 0, "lr must be > 0"),
            (self.warmup_steps is None or self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
            (self.min_frequency >= 1, "min_frequency must be >= 1"),
            (self.sample_docs >= 1 and self.sample_bytes >= 1, "sample_docs and sample_bytes must be >= 1"),
            (self.tokenize_workers >= 1, "tokenize_workers must be >= 1"),
            (0 <= self.eval_fraction < 1, "eval_fraction must be in [0, 1)"),
            (self.max_eval_docs >= 0 and self.max_eval_examples >= 0, "max_eval_docs/examples must be >= 0"),
            (self.loader_workers is None or self.loader_workers >= 0, "loader_workers must be >= 0"),
            (self.data_streams is None or self.data_streams >= 1, "data_streams must be >= 1"),
            (self.shuffle_docs >= 2, "shuffle_docs must be >= 2"),
            (0 < self.mlm_probability < 1, "mlm_probability must be in (0, 1)"),
            (0 <= self.short_seq_prob <= 1, "short_seq_prob must be in [0, 1]"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.grad_accum >= 1, "grad_accum must be >= 1"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]"),
            (self.weight_decay >= 0 and self.clip_grad >= 0, "weight_decay and clip_grad must be >= 0"),
            (self.log_every >= 1, "log_every must be >= 1"),
            (self.eval_every >= 0 and self.checkpoint_every >= 0, "eval_every/checkpoint_every must be >= 0"),
            (self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1"),
            (self.stop_after is None or self.stop_after >= 1, "stop_after must be >= 1"),
            (not (self.resume and self.overwrite), "give --resume or --overwrite, not both"),
            (not (self.tokenizer and self.init_from), "--init-from brings its own tokenizer; drop --tokenizer"),
        ]
        broken = [message for ok, message in rules if not ok]
        if broken:
            raise CorpusError("; ".join(broken))
        if self.objective not in D.OBJECTIVES:
            raise CorpusError(f"unknown objective {self.objective!r}; choose one of {', '.join(D.OBJECTIVES)}")
        self.loop_config().check()
        if self.init_from is None:
            bert_config(self.preset, vocab_size=64)  # an unknown preset or a bad config file fails now
        elif not (Path(self.init_from) / "config.json").is_file():
            raise CorpusError(f"--init-from {self.init_from}: not a saved model (no config.json)")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError as err:
                raise CorpusError(f"unknown device {self.device!r}; use auto, cpu, cuda or cuda:N") from err


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`--set key=value` strings as typed `PretrainConfig` values (pydantic does the parsing and says what is
    wrong: `--set warmup_steps=abc` is an error, not a crash halfway through training)."""
    import typing

    import pydantic

    hints = typing.get_type_hints(PretrainConfig)
    names = [f.name for f in fields(PretrainConfig) if f.name not in ("data", "out")]
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise CorpusError(f"--set {item!r}: expected KEY=VALUE")
        if key not in names:
            raise CorpusError(f"--set {key}: unknown pretraining option; valid: {', '.join(names)}")
        text: Any = raw.strip()
        if text.lower() in ("none", "null", "") and type(None) in typing.get_args(hints[key]):
            text = None
        try:
            values[key] = pydantic.TypeAdapter(hints[key]).validate_python(text, strict=False)
        except pydantic.ValidationError as err:
            expected = getattr(hints[key], "__name__", str(hints[key]))
            raise CorpusError(f"--set {key}={raw}: not a valid {expected} "
                              f"({err.errors()[0]['msg']})") from None
    return values


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


def unigram_baseline(counts: torch.Tensor, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """What token frequencies alone score on the held-out masked positions: the bar a model must clear.

    Accuracy of always guessing the most frequent training token, and the cross-entropy of the
    (add-one smoothed) unigram distribution of the training split.
    """
    log_p = (counts / counts.sum()).log()
    targets = torch.cat([b["labels"][b["labels"] != D.IGNORE_INDEX] for b in batches])
    return {
        "mlm_acc": float((targets == counts.argmax()).double().mean()),
        "mlm_loss": float(-log_p[targets].mean()),
    }


# Files `pretrain` writes in its output folder: what `overwrite` may remove, and nothing else. Checkpoints
# are removed one by one by the loop (`step-NNNNNNN/` only); the token store is a cache checked by its key.
MODEL_FILES = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "train_config.json",
               "train_summary.json", "log.jsonl", "tensorboard")


def _claim_output(cfg: PretrainConfig) -> Any:
    """Refuse to replace a model without `overwrite` or `resume`; then record this run in the folder."""
    from corpus.core.runs import claim_output

    out = Path(cfg.out)
    has_model = any((out / name).exists() for name in ("config.json", "checkpoints", "train_summary.json"))
    if has_model and not (cfg.overwrite or cfg.resume):
        raise CorpusError(f"-o {out}: holds a model already; pass --overwrite to replace it (only files "
                          "pretraining writes are removed) or --resume to continue it")
    return claim_output(out, "model", inputs=[cfg.data, cfg.tokenizer, cfg.init_from], overwrite=cfg.overwrite,
                        writes=MODEL_FILES)


def _token_store(cfg: PretrainConfig, runtime: Runtime) -> Path:
    """The token store to train from: `data` itself, or one built from `data` (rank 0 builds, all wait)."""
    from corpus.train.tokens import StoreSettings, build_token_store, is_store, tokenizer_sha256

    if is_store(cfg.data):
        store = Path(cfg.data)
    else:
        store = Path(cfg.tokens) if cfg.tokens else Path(cfg.out) / "tokens"
        if runtime.main:
            settings = StoreSettings(eval_fraction=cfg.eval_fraction, max_eval_docs=cfg.max_eval_docs, seed=cfg.seed)
            build_token_store(
                cfg.data, store, tokenizer=cfg.tokenizer or cfg.init_from, vocab_size=cfg.vocab_size,
                sample_docs=cfg.sample_docs, sample_bytes=cfg.sample_bytes, lowercase=cfg.lowercase,
                strip_accents=cfg.strip_accents, min_frequency=cfg.min_frequency, settings=settings,
                workers=cfg.tokenize_workers, progress=cfg.progress,
                rebuild_stale=cfg.tokens is None and not cfg.resume,  # our private cache, unless resuming
            )
        if runtime.distributed:
            # Tokenising a large corpus takes longer than a collective's default timeout (10-30 min): the other
            # ranks wait on a CPU group of their own with a day's patience.
            from datetime import timedelta

            patient = torch.distributed.new_group(backend="gloo", timeout=timedelta(hours=24))
            torch.distributed.barrier(group=patient)
            torch.distributed.destroy_process_group(patient)
    wanted = cfg.tokenizer or cfg.init_from
    if wanted and tokenizer_sha256(wanted) != tokenizer_sha256(store / "tokenizer"):
        raise CorpusError(f"{store}: the token store was made with another tokenizer than {wanted}; "
                          "tokenize again with that tokenizer")
    return store


def _model_config(cfg: PretrainConfig, vocab: int) -> Any:
    """A preset (vocabulary sized to the tokenizer), a config file, or the config of `init_from`."""
    if cfg.init_from:
        from transformers import BertConfig

        config = BertConfig.from_pretrained(cfg.init_from)
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = cfg.dropout
        if config.vocab_size < vocab:
            raise CorpusError(f"--init-from {cfg.init_from}: its vocabulary ({config.vocab_size}) is smaller than "
                              f"the tokenizer's ({vocab})")
    else:
        config = bert_config(
            cfg.preset, vocab_size=vocab, max_position_embeddings=max(512, cfg.seq_len),
            hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.dropout,
        )
    if cfg.seq_len > config.max_position_embeddings:
        raise CorpusError(f"seq_len {cfg.seq_len} exceeds the model's max_position_embeddings "
                          f"{config.max_position_embeddings}; lower seq_len")
    return config


def _build_model(cfg: PretrainConfig, config: Any) -> Any:
    if not cfg.init_from:
        return build_model(config)
    from transformers import BertForPreTraining

    model, info = BertForPreTraining.from_pretrained(cfg.init_from, config=config, output_loading_info=True)
    if info["missing_keys"]:
        raise CorpusError(f"--init-from {cfg.init_from}: weights missing for {', '.join(info['missing_keys'][:4])}")
    return model


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
    """Tokenise `data` into a token store (unless it is one) and pretrain a BERT on it; save it to `out`.

    `more` takes any other `PretrainConfig` field (grad_accum, eval_every, checkpoint_every, resume, …).
    Returns a summary: steps, final loss, tokens, seconds, model path, held-out metrics. Under torchrun
    every process calls this; rank 0 writes the outputs.
    """
    started = time.perf_counter()
    known = {f.name for f in fields(PretrainConfig)} - {"data", "out"}
    unknown = sorted(set(more) - known)
    if unknown:
        raise CorpusError(
            f"unknown pretraining option(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )
    more = {k: str(v) if isinstance(v, Path) else v for k, v in more.items()}
    cfg = PretrainConfig(
        data=str(data), out=str(out), steps=steps, preset=str(preset), objective=objective, seq_len=seq_len,
        batch_size=batch_size, vocab_size=vocab_size, tokenizer=str(tokenizer) if tokenizer else None, lr=lr,
        warmup_steps=warmup_steps, seed=seed, device=device, progress=progress, **more,
    )
    if cfg.warmup_steps is None:
        cfg.warmup_steps = min(10_000, cfg.steps // 10)
    cfg.check()
    if not Path(cfg.data).exists():
        raise CorpusError(f"--data {cfg.data}: does not exist")
    if cfg.threads:
        # On a machine busy with other work, OpenMP threads that spin waiting for each other can make small
        # models many times slower; one thread is then often the fastest choice.
        torch.set_num_threads(cfg.threads)
    runtime = setup_runtime(cfg.device)
    out_dir = Path(cfg.out)
    run = _claim_output(cfg) if runtime.main else None
    try:
        summary = _pretrain(cfg, runtime, out_dir, started)
    except BaseException as err:
        if run is not None:
            run.fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
        raise
    if run is not None:
        run.finish(steps=summary["steps"], completed=summary["finished"], final_loss=summary["final_loss"])
    return summary


def _pretrain(cfg: PretrainConfig, runtime: Runtime, out_dir: Path, started: float) -> dict[str, Any]:
    from corpus.train.stream import PretrainStream, StreamedBatches, eval_examples, unigram_counts
    from corpus.train.tokens import read_store_manifest

    # Data: the token store, its tokenizer, and this rank's streams over it.
    store = _token_store(cfg, runtime)
    manifest = read_store_manifest(store)
    tok = load_tokenizer(store / "tokenizer")
    vocab = round_up(len(tok))
    model_config = _model_config(cfg, vocab)

    cuda = runtime.device.type == "cuda"
    cfg.unpad = cuda if cfg.unpad is None else cfg.unpad
    cfg.compile = cuda if cfg.compile is None else cfg.compile
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    bert = _build_model(cfg, model_config)
    if cfg.unpad:
        from corpus.train.unpadded import UnpaddedBertForPreTraining

        objective_module: torch.nn.Module = UnpaddedBertForPreTraining(
            bert, max_seqlen=cfg.seq_len, nsp=cfg.objective == "mlm+nsp")
    else:
        objective_module = PretrainingObjective(bert, nsp=cfg.objective == "mlm+nsp")
    torch.manual_seed(cfg.seed + runtime.rank)  # but each rank its own dropout stream
    random.seed(cfg.seed + runtime.rank)

    collator = D.MaskingCollator.for_tokenizer(tok, model_config.vocab_size, mlm_probability=cfg.mlm_probability)
    workers = cfg.loader_workers if cfg.loader_workers is not None else (4 if runtime.device.type == "cuda" else 0)
    streams = cfg.data_streams or max(1, workers)
    dataset = PretrainStream(
        store, objective=cfg.objective, seq_len=cfg.seq_len, batch_size=cfg.batch_size, collator=collator,
        cls_id=tok.cls_token_id, sep_id=tok.sep_token_id, seed=cfg.seed, rank=runtime.rank,
        world_size=runtime.world_size, streams=streams, shuffle_docs=cfg.shuffle_docs,
        short_seq_prob=cfg.short_seq_prob, token_budget=cfg.batch_size * cfg.seq_len if cfg.unpad else None,
    )
    batches = StreamedBatches(dataset, workers=workers, pin_memory=runtime.device.type == "cuda")
    eval_fn = None
    baseline: dict[str, float] = {}
    if manifest["splits"]["eval"]["documents"]:  # on every rank: the loop's barriers around evaluation match
        examples = eval_examples(store, objective=cfg.objective, seq_len=cfg.seq_len, cls_id=tok.cls_token_id,
                                 sep_id=tok.sep_token_id, short_seq_prob=cfg.short_seq_prob,
                                 limit=cfg.max_eval_examples, seed=cfg.seed)
        if examples:
            eval_batches = D.fixed_batches(examples, cfg.batch_size, collator, seed=cfg.seed + 1)
            eval_fn = functools.partial(evaluate, batches=eval_batches, device=runtime.device)
            baseline = unigram_baseline(unigram_counts(store, model_config.vocab_size), eval_batches)

    n_params = non_embedding_params(bert)
    loop_config = cfg.loop_config()
    train_split, eval_split = manifest["splits"]["train"], manifest["splits"]["eval"]
    meta = {
        "model": {k: model_config.to_dict()[k] for k in (
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "max_position_embeddings")},
        "objective": cfg.objective, "seq_len": cfg.seq_len, "batch_size": cfg.batch_size,
        "grad_accum": cfg.grad_accum, "world_size": runtime.world_size, "seed": cfg.seed,
        "token_store": manifest["key"], "data_streams": streams, "shuffle_docs": cfg.shuffle_docs,
        "unpad": cfg.unpad,
    }
    data_stats = {
        "documents": manifest["documents_in"], "train_documents": train_split["documents"],
        "eval_documents": eval_split["documents"], "train_tokens": train_split["tokens"],
        "token_store": str(store), "loader_workers": workers, "data_streams": streams,
    }
    if runtime.main:
        atomic_write_json(out_dir / "train_config.json", {
            **asdict(cfg), "world_size": runtime.world_size, "model": model_config.to_dict(),
            "non_embedding_params": n_params, "tokenizer_size": len(tok), "data_stats": data_stats,
            "loop": asdict(loop_config),
            "versions": {"torch": torch.__version__, "transformers": _transformers_version()},
        })

    fingerprint = hashlib.sha256()
    loop_started = time.perf_counter()
    try:
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
    finally:
        batches.close()
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
        "preset": cfg.preset if not cfg.init_from else f"init-from {cfg.init_from}",
        "objective": cfg.objective,
        "vocab_size": vocab,
        "non_embedding_params": n_params,
        "documents": manifest["documents_in"],
        "eval_documents": eval_split["documents"],
        "world_size": runtime.world_size,
        "rank": runtime.rank,
    }
    if "first_step_s" in result:  # from the call of pretrain(): store checks, model, first batch, first step
        summary["first_step_s"] = round(result["first_step_s"] + loop_started - started, 3)
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


__all__ = ["PRESETS", "PretrainConfig", "PretrainingObjective", "parse_overrides", "evaluate", "pretrain"]
