"""Training throughput: our loop (`train/loop.py`) against the Hugging Face `Trainer` on the same batches.

    python benchmarks/train_throughput.py --device cpu --preset mini          # CPU: a small preset
    python benchmarks/train_throughput.py --device cuda --preset base         # GPU: BERT-base, seq 128, bf16

Both train `BertForPreTraining` (same config, same initial weights, same pre-masked batches from our data
pipeline) with AdamW, warmup, clipping, bf16 autocast on CUDA and fp32 on CPU. Tokens/s counts real
(non-padding) tokens after a few warm-up steps. MFU = (6 x non-embedding params + attention term) x tokens/s
over the device's peak: a table of dense bf16/TF32 peaks for GPUs; on CPU the peak is measured (a large fp32
matmul), so CPU "MFU" means "fraction of what this CPU reaches on a plain matmul".
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from docs_section import replace_section

from corpus.core.io import read_documents
from corpus.train import data as D
from corpus.train.loop import LoopConfig, Runtime, peak_flops, train
from corpus.train.models import bert_config, build_model, flops_per_token, non_embedding_params
from corpus.train.pretrain import PretrainingObjective
from corpus.train.tokenizer import round_up, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "agnews"
SECTION = "## Training throughput"


def measured_matmul_flops(device: torch.device, seconds: float = 1.0) -> float:
    """What this device reaches on a large fp32 matmul: the CPU stand-in for a datasheet peak."""
    n = 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - start)


def make_batches(data: Path, args: argparse.Namespace, tokenizer_dir: Path) -> tuple[Any, list[dict]]:
    texts = [d.text for d in itertools.islice(read_documents(data), args.documents) if d.text.strip()]
    tok = train_tokenizer(texts, tokenizer_dir, vocab_size=args.vocab_size)
    docs = D.segment_documents(texts, tok, max_segment_tokens=(args.seq_len - 3) // 2)
    examples = D.build_examples(docs, "mlm+nsp", args.seq_len, random.Random(0), cls_id=tok.cls_token_id,
                                sep_id=tok.sep_token_id)
    collator = D.MaskingCollator.for_tokenizer(tok, round_up(len(tok)))
    count = args.batch_size * args.pool
    return tok, D.fixed_batches(examples[:count], args.batch_size, collator, seed=0)


def measured_tokens(batches: list[dict], args: argparse.Namespace) -> int:
    """Real tokens in the measured steps: both loops take the batches in order, cycling through the pool."""
    steps = range(args.warmup, args.warmup + args.steps)
    return sum(int(batches[i % len(batches)]["attention_mask"].sum()) for i in steps)


def run_ours(model: torch.nn.Module, batches: list[dict], args: argparse.Namespace, device: torch.device,
             out: Path) -> float:
    """Tokens/s of our loop over the steps after the warm-up ones (timed by its own log)."""
    config = LoopConfig(steps=args.warmup + args.steps, lr=1e-4, warmup_steps=args.warmup,
                        log_every=args.warmup, progress=False, compile=args.compile)
    train(PretrainingObjective(model), itertools.cycle(batches), lambda m, b: m(**b), config, out,
          Runtime(device))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert records[0]["step"] == args.warmup and records[-1]["step"] == args.warmup + args.steps
    return measured_tokens(batches, args) / (records[-1]["elapsed_s"] - records[0]["elapsed_s"])


def run_hf_trainer(model: torch.nn.Module, batches: list[dict], args: argparse.Namespace,
                   device: torch.device, out: Path) -> float:
    """Tokens/s of `transformers.Trainer` on the same batches (one pre-collated batch per dataset item)."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter())

    class InOrder(Trainer):  # the same batch order as our loop, so both count the same tokens
        def _get_train_sampler(self, *_: Any, **__: Any) -> torch.utils.data.Sampler:
            return torch.utils.data.SequentialSampler(self.train_dataset)

    training_args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=1, max_steps=args.warmup + args.steps,
        learning_rate=1e-4, warmup_steps=args.warmup, weight_decay=0.01, max_grad_norm=1.0,
        logging_steps=10**9,
        save_strategy="no", report_to=[], disable_tqdm=True, remove_unused_columns=False,
        use_cpu=device.type == "cpu", bf16=device.type == "cuda", dataloader_num_workers=0,
        optim="adamw_torch_fused" if device.type == "cuda" else "adamw_torch", torch_compile=args.compile,
    )
    stock = [{k: v for k, v in b.items() if k not in ("mlm_positions", "mlm_labels")} for b in batches]
    trainer = InOrder(model=model, args=training_args, train_dataset=stock,
                      data_collator=lambda items: items[0], callbacks=[Clock()])
    trainer.train()
    return measured_tokens(batches, args) / (times[-1] - times[args.warmup - 1])


def write_docs(result: dict[str, Any], command: str) -> Path:
    """Replace (or append) our section of docs/benchmarks.md, leaving the others alone."""
    mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a"
    gpu_note = "; no GPU figure yet: run with `--device cuda --preset base` where one is available."
    section = "\n".join([
        SECTION,
        "",
        f"`{command}`",
        "",
        "| device | model | seq x batch | ours tokens/s | HF Trainer tokens/s | ratio | MFU (ours) "
        "| peak used |",
        "|---|---|---|---|---|---|---|---|",
        f"| {result['device']} | {result['model']} | {result['seq_len']} x {result['batch_size']} | "
        f"{result['tokens_per_s']:,.0f} | {result['hf_trainer_tokens_per_s']:,.0f} | "
        f"{result['ratio_vs_hf_trainer']:.2f}x | {mfu} | {result['peak_flops_source']} |",
        "",
        "Same `BertForPreTraining`, initial weights and pre-masked batches for both; real (non-padding) "
        f"tokens only, after {result['warmup_steps']} warm-up steps. Our loop runs the MLM vocabulary "
        "projection on the masked positions only; the Trainer runs the stock model, which projects every "
        "position.",
        "",
        f"Machine load average at the end of the run: {result['load_average']} on {result['cpu_cores']} cores"
        + (gpu_note if "cpu" in result["device"] else "."),
        "",
    ])
    path = replace_section(SECTION, section)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="a folder of shards")
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto")
    parser.add_argument("--preset", default=None, help="model size (default: mini on CPU, base on CUDA)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 16 on CPU, 128 on CUDA")
    parser.add_argument("--steps", type=int, default=None, help="measured steps (default: 20 CPU, 100 CUDA)")
    parser.add_argument("--warmup", type=int, default=5, help="steps not measured")
    parser.add_argument("--pool", type=int, default=32, help="distinct batches cycled through")
    parser.add_argument("--documents", type=int, default=4000)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the best counts")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--compile", action="store_true", help="torch.compile in both loops")
    parser.add_argument("--write-docs", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    args.preset = args.preset or ("base" if cuda else "mini")
    args.batch_size = args.batch_size or (128 if cuda else 16)
    args.steps = args.steps or (100 if cuda else 20)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok, batches = make_batches(args.data, args, tmp / "tokenizer")
        config = bert_config(args.preset, vocab_size=round_up(len(tok)))
        torch.manual_seed(0)
        initial = build_model(config).state_dict()

        def fresh() -> torch.nn.Module:
            model = build_model(config)
            model.load_state_dict(initial)
            return model

        ours = hf = 0.0
        for _ in range(args.repeats):  # alternate, keep the best of each: robust to a busy machine
            ours = max(ours, run_ours(fresh(), batches, args, device, tmp / "ours"))
            hf = max(hf, run_hf_trainer(fresh().to(device), batches, args, device, tmp / "hf"))
        n_params = non_embedding_params(fresh())

    if cuda:
        peak, source = peak_flops(device, "bf16"), f"{torch.cuda.get_device_name(device)} bf16 datasheet"
    else:
        peak, source = measured_matmul_flops(device), "measured fp32 matmul"
    flops = flops_per_token(config, n_params, args.seq_len)
    result = {
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "model": f"bert-{args.preset}",
        "tokens_per_s": round(ours, 1),
        "hf_trainer_tokens_per_s": round(hf, 1),
        "ratio_vs_hf_trainer": round(ours / hf, 3),
        "mfu": round(flops * ours / peak, 4) if peak else None,
        "hf_trainer_mfu": round(flops * hf / peak, 4) if peak else None,
        "peak_flops": peak,
        "peak_flops_source": source,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "measured_steps": args.steps,
        "repeats": args.repeats,
        "warmup_steps": args.warmup,
        "precision": "bf16" if cuda else "fp32",
        "load_average": round(os.getloadavg()[0], 1),
        "cpu_cores": os.cpu_count(),
    }
    if args.write_docs:
        flags = " ".join(a for a in sys.argv[1:] if a != "--write-docs")
        command = f"python benchmarks/train_throughput.py {flags}"
        print(f"wrote {write_docs(result, command.strip())}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
