"""The one training loop, shared by pretraining and fine-tuning. Reads top to bottom in `train()`:

    for each step:  schedule → eval + checkpoint → micro-steps under autocast → clip → step → log

It knows nothing about BERT: it takes a model, an endless batch iterator, a loss function
`loss_fn(model, batch) -> (loss, {name: tensor})` and a `LoopConfig`. Batch iterators with
`state_dict()`/`load_state_dict()` (like `corpus.train.data.PretrainBatches`) make `resume` continue exactly.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import math
import os
import random
import re
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from corpus.core.errors import CorpusError
from corpus.core.io import sha256_file
from corpus.train.hardware import PEAK_BF16_FLOPS, peak_flops  # noqa: F401 - per-GPU peaks live there

Batch = dict[str, torch.Tensor]
LossFn = Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, dict[str, torch.Tensor]]]
EvalFn = Callable[[torch.nn.Module], dict[str, float]]


@dataclass
class LoopConfig:
    """Everything the loop needs; saved in checkpoints and in the run's resolved config."""

    steps: int = 200  # optimizer updates
    lr: float = 5e-4
    warmup_steps: int = 0
    schedule: str = "linear"  # linear | cosine | constant (after warmup)
    min_lr_ratio: float = 0.0  # the decay ends at lr * min_lr_ratio
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    grad_accum: int = 1  # micro-batches per update
    clip_grad: float = 1.0  # max gradient norm; 0 disables clipping
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere | bf16 | fp32
    compile: bool = False  # torch.compile the model
    log_every: int = 10
    eval_every: int = 0  # 0: evaluate only at the end
    checkpoint_every: int = 0  # 0: no checkpoints
    keep_checkpoints: int = 2  # older ones are deleted; two, so a corrupt latest one has a fallback
    resume: bool = False  # continue from the newest valid checkpoint in out_dir (a fresh start if none)
    stop_after: int | None = None  # stop (with a checkpoint) after this many steps in this run: time limits
    progress: bool = True
    tensorboard: bool = False
    seed: int = 0
    peak_flops: float | None = None  # per device; None: looked up for known GPUs, unknown on CPU
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        if self.steps < 1 or self.grad_accum < 1:
            raise CorpusError("steps and grad_accum must be at least 1")
        if self.schedule not in ("linear", "cosine", "constant"):
            raise CorpusError(f"unknown schedule {self.schedule!r}; choose linear, cosine or constant")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise CorpusError(f"unknown precision {self.precision!r}; choose auto, bf16 or fp32")
        if self.lr <= 0:
            raise CorpusError(f"lr must be positive, got {self.lr}")


@dataclass
class Runtime:
    """Where this process runs: its device and its place among torchrun's processes."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_runtime(device: str = "auto") -> Runtime:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and join the process group if there is one.

    NCCL on CUDA, gloo on CPU; each process drives the GPU with its LOCAL_RANK.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError as err:
        raise CorpusError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from err
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CorpusError("device 'cuda' requested but no CUDA GPU is visible; use --device cpu")
        if device == "cuda":
            device = f"cuda:{local_rank if world_size > 1 else torch.cuda.current_device()}"
        torch.cuda.set_device(torch.device(device))
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls (outside autocast) on tensor cores
        torch.backends.cudnn.allow_tf32 = True
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return Runtime(torch.device(device), rank, world_size, local_rank)


def lr_at(step: int, config: LoopConfig) -> float:
    """Linear warmup to `lr`, then linear or cosine decay to `lr * min_lr_ratio` at the last step."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    progress = min(1.0, progress)
    decay = 1 - progress if config.schedule == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * decay)


def make_optimizer(model: torch.nn.Module, config: LoopConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and LayerNorm weights (as BERT); fused kernels on CUDA."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "LayerNorm" in name else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps, fused=fused)


def count_tokens(batch: Batch) -> torch.Tensor:
    """Real (non-padding) tokens in a batch: throughput and MFU count only these."""
    if "attention_mask" in batch:
        return batch["attention_mask"].sum()
    return torch.tensor(batch["input_ids"].numel())


# --- checkpoints -------------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(
    folder: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: Any,
    config: LoopConfig, meta: dict[str, Any], runtime: Runtime, keep: int,
) -> Path | None:
    """Write `folder/step-NNNNNNN/state.pt` and its sha256 atomically (temp folder, then rename).

    Every rank's RNG state is gathered so each one continues its own dropout stream after a resume.
    """
    rng = _rng_state()
    if runtime.distributed:
        states: list[Any] = [None] * runtime.world_size
        dist.all_gather_object(states, rng)
    else:
        states = [rng]
    if not runtime.main:
        return None
    final = folder / f"step-{step:07d}"
    tmp = folder / f".step-{step:07d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": {"step": step, "lr": lr_at(step, config)},  # the schedule is a pure function of step
        "data": batches.state_dict() if hasattr(batches, "state_dict") else None,
        "rng": states,
        "meta": meta,
        "loop": asdict(config),
    }
    torch.save(state, tmp / "state.pt")
    (tmp / "state.pt.sha256").write_text(sha256_file(tmp / "state.pt") + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(folder.glob("step-*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_checkpoints(folder: Path) -> None:
    """Remove the checkpoints this loop wrote (`step-NNNNNNN/` and their temp folders), nothing else."""
    for path in folder.glob("*step-*"):
        if path.is_dir() and re.fullmatch(r"\.?step-\d{7}(\.tmp)?", path.name):
            shutil.rmtree(path)


def load_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The newest checkpoint that passes its checksum and loads; corrupt ones are skipped with a warning."""
    for candidate in sorted(folder.glob("step-*"), reverse=True):
        path = candidate / "state.pt"
        try:
            expected = (candidate / "state.pt.sha256").read_text().strip()
            if sha256_file(path) != expected:
                raise ValueError("checksum mismatch")
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated file fails in many ways; all mean "use the previous one"
            warnings.warn(f"{candidate}: unusable checkpoint ({err}); trying the previous one", stacklevel=2)
    return None


def _check_meta(saved: dict[str, Any], current: dict[str, Any], where: Path) -> None:
    differ = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if differ:
        detail = "; ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}" for k in differ[:4])
        raise CorpusError(
            f"{where}: checkpoint is from another configuration ({detail}); "
            "resume with the original settings or train into a new output folder"
        )


# --- logging -----------------------------------------------------------------------------------------


class RunLog:
    """`log.jsonl` (one JSON object per line) and, optionally, TensorBoard; only the main rank writes."""

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int | None, tensorboard: bool) -> None:
        self.path = out_dir / "log.jsonl"
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        kept = []
        if resume_step is not None and self.path.exists():  # drop lines past the checkpoint we resume from
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= resume_step]
        self.path.write_text("".join(line + "\n" for line in kept))
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise CorpusError("tensorboard logging needs the package: pip install tensorboard") from err
            self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self.writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _progress_bar(config: LoopConfig, start: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=config.steps, initial=start, unit="step", dynamic_ncols=True, file=sys.stderr)


# --- the loop ----------------------------------------------------------------------------------------


def train(
    model: torch.nn.Module,
    batches: Iterator[Batch],
    loss_fn: LossFn,
    config: LoopConfig,
    out_dir: str | Path,
    runtime: Runtime | None = None,
    *,
    eval_fn: EvalFn | None = None,
    flops_per_token: float | None = None,
    meta: dict[str, Any] | None = None,
    on_batch: Callable[[Batch], None] | None = None,
    should_stop: Callable[[dict[str, float]], bool] | None = None,
) -> dict[str, Any]:
    """Train `model` for `config.steps` optimizer updates; returns a summary.

    `model` is the module `loss_fn` receives (wrapped in DDP / torch.compile as configured); the unwrapped
    module is what checkpoints hold and what `eval_fn` gets. `meta` describes the run (model config, data,
    batch size): a checkpoint whose meta differs is refused on resume. `on_batch` sees every batch this
    rank trains on (for fingerprints in tests and debugging). `should_stop(eval results)` returning True
    ends the run after that evaluation (early stopping; `summary["stopped_early"]`).
    """
    config.check()
    runtime = runtime or setup_runtime()
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    meta = meta or {}
    device = runtime.device
    raw = model.to(device)
    optimizer = make_optimizer(raw, config, device)
    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    autocast = (functools.partial(torch.autocast, device.type, dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext)
    peak = config.peak_flops or peak_flops(device, "bf16" if bf16 else "fp32")

    # Resume: model, optimizer, data position and every rank's RNG from the newest valid checkpoint.
    start = 0
    if config.resume:
        state = load_checkpoint(ckpt_dir)
        if state is not None:
            _check_meta(state["meta"], meta, ckpt_dir)
            try:
                raw.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
            except (RuntimeError, ValueError, KeyError) as err:
                raise CorpusError(f"{ckpt_dir}: checkpoint does not fit this model ({err})") from err
            if state["data"] is not None:
                batches.load_state_dict(state["data"])  # type: ignore[attr-defined]
            rng_states = state["rng"]
            _set_rng_state(rng_states[runtime.rank] if runtime.rank < len(rng_states) else rng_states[0])
            start = int(state["step"])
    elif runtime.main and ckpt_dir.exists():
        remove_checkpoints(ckpt_dir)  # a fresh run must never resume later from an older run's checkpoints
    if runtime.distributed:
        dist.barrier()

    if config.compile:
        model = torch.compile(raw)
    if runtime.distributed:
        from torch.nn.parallel import DistributedDataParallel

        # Buffers (position ids) are constants, so no per-forward broadcast is needed; torch 2.13 renamed
        # the switch.
        no_buffer_sync = ({"forward_sync_buffers": False}
                          if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
                          else {"broadcast_buffers": False})
        model = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, **no_buffer_sync
        )

    log = RunLog(out_dir, runtime.main, start if config.resume else None, config.tensorboard)
    bar = _progress_bar(config, start, config.progress and runtime.main)
    summary: dict[str, Any] = {"start_step": start, "world_size": runtime.world_size}
    tokens_total = 0
    interval_tokens = torch.zeros((), device=device)
    interval_sums: dict[str, torch.Tensor] = {}
    interval_steps = 0
    t_start = t_log = time.perf_counter()
    last: dict[str, Any] = {}
    stop_at = config.steps if config.stop_after is None else min(config.steps, start + config.stop_after)
    first_batch = True

    for step in range(start, stop_at + 1):
        # 1. schedule: the learning rate is a pure function of the step (nothing to restore on resume)
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr

        # 2. eval + checkpoint, before the step's work (and once more after the last step)
        is_last = step == stop_at
        stop = False
        if eval_fn is not None and ((config.eval_every and step % config.eval_every == 0 and step > start)
                                    or (is_last and step == config.steps)):
            if runtime.main:
                raw.eval()
                with torch.no_grad(), autocast():
                    results = eval_fn(raw)
                raw.train()
                stop = should_stop is not None and bool(should_stop(results))
                summary["eval"] = results
                log.write({"step": step, **{f"eval/{k}": v for k, v in results.items()}})
                if bar is not None:
                    bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in results.items()))
            if runtime.distributed:
                dist.barrier()
                if should_stop is not None:  # every rank stops together
                    flag = torch.tensor(float(stop), device=device)
                    dist.broadcast(flag, 0)
                    stop = bool(flag.item())
        if stop and not is_last:
            summary["stopped_early"] = True
            stop_at = step
            break
        if step > start and ((config.checkpoint_every and step % config.checkpoint_every == 0)
                             or (is_last and (config.checkpoint_every or config.stop_after))):
            save_checkpoint(ckpt_dir, step, raw, optimizer, batches, config, meta, runtime,
                            config.keep_checkpoints)
        if is_last:
            break

        # 3. micro-steps under autocast; DDP all-reduces gradients only on the last one
        for micro in range(config.grad_accum):
            if first_batch and bar is not None:
                bar.set_description_str("waiting for the first batch")
            batch = next(batches)
            if first_batch:
                first_batch = False
                summary["first_batch_s"] = time.perf_counter() - t_start
                if bar is not None:
                    bar.set_description_str("")
            if on_batch is not None:
                on_batch(batch)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            sync = (model.no_sync() if runtime.distributed and micro < config.grad_accum - 1
                    else contextlib.nullcontext())
            try:
                with sync:
                    with autocast():
                        loss, metrics = loss_fn(model, batch)
                    (loss / config.grad_accum).backward()
            except torch.cuda.OutOfMemoryError as err:
                raise CorpusError(
                    f"out of memory on {device} with a micro-batch of {batch['input_ids'].numel()} token slots; "
                    "lower the batch size (and raise grad_accum to "
                    "keep the effective batch) or the sequence length"
                ) from err
            interval_tokens += count_tokens(batch)
            for key, value in {"loss": loss, **metrics}.items():
                interval_sums[key] = interval_sums.get(key, 0) + value.detach().float() / config.grad_accum

        # 4. clip, 5. step
        if config.clip_grad > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), config.clip_grad)
        else:
            grad_norm = torch.zeros(())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        interval_steps += 1
        if "first_step_s" not in summary:
            summary["first_step_s"] = time.perf_counter() - t_start

        # 6. log: the only place the host waits for the device
        if (step + 1) % config.log_every == 0 or step + 1 == stop_at:
            names = sorted(interval_sums)
            packed = torch.stack([interval_sums[k] for k in names] + [interval_tokens.float()])
            if runtime.distributed:
                dist.all_reduce(packed)
                packed[:-1] /= runtime.world_size  # mean of the metrics, sum of the tokens
            values = packed.tolist()
            now = time.perf_counter()
            tokens = int(values[-1])
            tokens_total += tokens
            record: dict[str, Any] = {"step": step + 1}
            record.update({k: v / interval_steps for k, v in zip(names, values[:-1], strict=True)})
            record.update({
                "lr": lr,
                "grad_norm": float(grad_norm),
                "tokens_per_s": tokens / (now - t_log),
                "elapsed_s": now - t_start,
            })
            if flops_per_token and peak:
                record["mfu"] = flops_per_token * record["tokens_per_s"] / (peak * runtime.world_size)
            if not all(math.isfinite(record[k]) for k in names):
                raise CorpusError(f"loss became {record['loss']} at step {step + 1}; lower the learning rate "
                                  f"(now {config.lr}) or raise warmup_steps")
            log.write(record)
            last = record
            interval_sums, interval_tokens, interval_steps, t_log = {}, torch.zeros((), device=device), 0, now
            if bar is not None:
                postfix = {"loss": f"{record['loss']:.3f}", "tok/s": f"{record['tokens_per_s']:,.0f}"}
                if "mfu" in record:
                    postfix["mfu"] = f"{record['mfu']:.1%}"
                bar.set_postfix(postfix, refresh=False)
        if bar is not None:
            bar.update(1)

    if bar is not None:
        bar.close()
    log.close()
    seconds = time.perf_counter() - t_start
    summary.update({
        "steps": stop_at,
        "finished": stop_at == config.steps,
        "loss": last.get("loss"),
        "tokens": tokens_total,
        "seconds": seconds,
        "tokens_per_s": tokens_total / seconds if seconds > 0 else 0.0,
        "last_log": last,
    })
    if flops_per_token and peak:
        summary["mfu"] = flops_per_token * summary["tokens_per_s"] / (peak * runtime.world_size)
    return summary
