"""Training throughput: our loop (`train/loop.py`), unpadded and padded, against the Hugging Face `Trainer`.

    python benchmarks/train_throughput.py --device cpu --preset mini          # CPU: a small preset
    python benchmarks/train_throughput.py --device cuda --preset base         # GPU: BERT-base, seq 128, bf16

Three runs side by side, all training `BertForPreTraining` (same config, same initial weights, same
pre-masked batches from our data pipeline) with AdamW, warmup, clipping, bf16 autocast on CUDA and fp32 on CPU:
- ours, unpadded: each batch through `corpus.train.unpadded.unpad` (real tokens only, a fixed token budget:
  the largest batch of the pool rounded up to 64) and `UnpaddedBertForPreTraining`; compiled on CUDA;
- ours, padded: today's path, `PretrainingObjective` on the padded batches;
- the HF `Trainer` on the stock model and the padded batches.
Tokens/s counts real (non-padding) tokens after a few warm-up steps. MFU: model FLOPs (6 x non-embedding params
per real token + attention over real lengths, `corpus.train.hardware`) per second over the device's peak; HFU:
the FLOPs each run executes. GPUs: the dense bf16 datasheet peak; on CPU the peak is measured (a large fp32
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
from corpus.train.hardware import hardware_flops, lookup_peak, model_flops
from corpus.train.loop import LoopConfig, Runtime, train
from corpus.train.models import bert_config, build_model, non_embedding_params
from corpus.train.pretrain import PretrainingObjective
from corpus.train.tokenizer import round_up, train_tokenizer
from corpus.train.unpadded import UnpaddedBertForPreTraining, attention_backend, unpad

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


def run_ours(module: torch.nn.Module, batches: list[dict], args: argparse.Namespace, device: torch.device,
             out: Path, compile: bool = False) -> float:
    """Tokens/s of our loop over the steps after the warm-up ones (timed by its own log)."""
    config = LoopConfig(steps=args.warmup + args.steps, lr=1e-4, warmup_steps=args.warmup,
                        log_every=args.warmup, progress=False, compile=compile)
    train(module, itertools.cycle(batches), lambda m, b: m(**b), config, out, Runtime(device))
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert records[0]["step"] == args.warmup and records[-1]["step"] == args.warmup + args.steps
    return measured_tokens(batches, args) / (records[-1]["elapsed_s"] - records[0]["elapsed_s"])


def token_budget(batches: list[dict]) -> int:
    """The fixed budget for unpadding these batches: the largest batch's real tokens, rounded up to 64."""
    return -(-max(int(b["attention_mask"].sum()) for b in batches) // 64) * 64


def utilisation(config: Any, n_params: int, padded: list[dict], unpadded: list[dict] | None,
                args: argparse.Namespace) -> dict[str, float]:
    """FLOPs per measured step for MFU (real tokens) and HFU (what each path executes)."""
    steps = [padded[i % len(padded)] for i in range(args.warmup, args.warmup + args.steps)]
    lengths = torch.cat([b["attention_mask"].sum(1) for b in steps])
    rows = sum(b["input_ids"].numel() for b in steps)
    square = sum(b["input_ids"].shape[0] * b["input_ids"].shape[1] ** 2 for b in steps)
    flops = {"model": model_flops(config, n_params, lengths),
             "hf": hardware_flops(config, n_params, tokens=rows, attention_square=square, head_rows=rows),
             "padded": hardware_flops(config, n_params, tokens=rows, attention_square=square,
                                      head_rows=sum(len(b["mlm_positions"]) for b in steps))}
    if unpadded is not None:
        budget, slots = unpadded[0]["input_ids"].numel(), len(unpadded[0]["mlm_positions"])
        if args.attention == "sdpa":  # the padded (sequences x seq_len) grid
            square = len(steps) * (len(unpadded[0]["cu_seqlens"]) - 1) * args.seq_len**2
        else:  # each real sequence, plus the budget's tail in sequences of at most seq_len
            square = float((lengths.double() ** 2).sum()) + (budget * len(steps) - float(lengths.sum())) * args.seq_len
        flops["unpadded"] = hardware_flops(config, n_params, tokens=budget * len(steps), attention_square=square,
                                           head_rows=slots * len(steps))
    return flops


def run_hf_trainer(model: torch.nn.Module, batches: list[dict], args: argparse.Namespace,
                   device: torch.device, out: Path) -> float:
    """Tokens/s of `transformers.Trainer` on the same batches (one pre-collated batch per dataset item)."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    times: list[float] = []

    class Clock(TrainerCallback):  # waits for the GPU only where it reads the clock, as our loop does
        def on_step_end(self, _args: Any, state: Any, *__: Any, **___: Any) -> None:
            if state.global_step in (args.warmup, args.warmup + args.steps):
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
    return measured_tokens(batches, args) / (times[-1] - times[0])


def write_docs(result: dict[str, Any], command: str) -> Path:
    """Replace (or append) our section of docs/benchmarks.md, leaving the others alone."""
    def pct(value: float | None) -> str:
        return f"{value:.1%}" if value is not None else "n/a"

    runs = result["runs"]
    lines = [
        SECTION,
        "",
        f"`{command}`",
        "",
        f"{result['device']}, bert-{result['preset']}, seq {result['seq_len']} x batch {result['batch_size']}, "
        f"{result['precision']}; real tokens are {result['real_token_fraction']:.0%} of the padded batches. "
        f"Peak: {result['peak_flops_source']}.",
        "",
        "| run | tokens/s | vs HF Trainer | MFU | HFU |",
        "|---|---|---|---|---|",
    ]
    hf = runs["HF Trainer"]["tokens_per_s"]
    for name, run in runs.items():
        lines.append(f"| {name} | {run['tokens_per_s']:,.0f} | {run['tokens_per_s'] / hf:.2f}x"
                     f" | {pct(run['mfu'])} | {pct(run['hfu'])} |")
    lines += [
        "",
        "Same `BertForPreTraining` config, initial weights and pre-masked batches for all three; tokens/s counts real "
        f"(non-padding) tokens only, after {result['warmup_steps']} warm-up steps, best of {result['repeats']} "
        "alternating runs. *unpadded*: `corpus.train.unpadded` (each batch's real tokens in a fixed budget of "
        f"{result['token_budget']} tokens, attention `{result['attention']}`"
        f"{', torch.compile' if result['compile_unpadded'] else ', eager'}); *padded*: today's `PretrainingObjective` "
        "on the padded batches; both run the MLM vocabulary projection on the masked positions only. The Trainer "
        "runs the stock model, which projects every position. MFU counts 6 x non-embedding parameters per real token "
        "plus attention over each sequence's real length; HFU counts what each run executes (padding, the budget's "
        "tail, the vocabulary projection on every row it runs on).",
        "",
        f"Machine load average at the end of the run: {result['load_average']} on {result['cpu_cores']} cores"
        + ("; on CPU the peak is a measured fp32 matmul, so MFU reads as a fraction of what this CPU reaches on "
           "a plain matmul. GPU figures: section \"GPU pretraining (gpu_suite.sh)\"."
           if "cpu" in result["device"] else "."),
        "",
    ]
    return replace_section(SECTION, "\n".join(lines))


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
    parser.add_argument("--compile", action="store_true", help="torch.compile the padded runs (ours and HF)")
    parser.add_argument("--compile-unpadded", choices=("auto", "on", "off"), default="auto",
                        help="torch.compile the unpadded run (auto: on for CUDA, off on CPU)")
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
    compile_unpadded = args.compile_unpadded == "on" or (args.compile_unpadded == "auto" and cuda)
    args.attention = attention_backend(device, torch.bfloat16 if cuda else torch.float32)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok, batches = make_batches(args.data, args, tmp / "tokenizer")
        budget = token_budget(batches)
        flat = [unpad(b, token_budget=budget, max_sequences=args.batch_size) for b in batches]
        config = bert_config(args.preset, vocab_size=round_up(len(tok)))
        torch.manual_seed(0)
        initial = build_model(config).state_dict()

        def fresh() -> torch.nn.Module:
            model = build_model(config)
            model.load_state_dict(initial)
            return model

        best = {"ours, unpadded": 0.0, "ours, padded": 0.0, "HF Trainer": 0.0}
        for _ in range(args.repeats):  # alternate, keep the best of each: robust to a busy machine
            runs = {
                "ours, unpadded": lambda: run_ours(UnpaddedBertForPreTraining(fresh(), max_seqlen=args.seq_len),
                                                   flat, args, device, tmp / "unpadded", compile_unpadded),
                "ours, padded": lambda: run_ours(PretrainingObjective(fresh()), batches, args, device,
                                                 tmp / "padded", args.compile),
                "HF Trainer": lambda: run_hf_trainer(fresh().to(device), batches, args, device, tmp / "hf"),
            }
            for name, run in runs.items():
                best[name] = max(best[name], run())
        n_params = non_embedding_params(fresh())

    if cuda:
        peak, source = lookup_peak(torch.cuda.get_device_name(device), "bf16")
        source = f"{torch.cuda.get_device_name(device)}, dense bf16, {source}"
    else:
        peak, source = measured_matmul_flops(device), "measured fp32 matmul"
    flops = utilisation(config, n_params, batches, flat, args)
    steps = [batches[i % len(batches)] for i in range(args.warmup, args.warmup + args.steps)]
    tokens = sum(int(b["attention_mask"].sum()) for b in steps)
    executed = {"ours, unpadded": "unpadded", "ours, padded": "padded", "HF Trainer": "hf"}

    def rate(name: str, kind: str) -> float | None:
        seconds = tokens / best[name]  # the measured steps' wall time
        return round(flops[kind] / seconds / peak, 4) if peak else None

    runs_out = {name: {"tokens_per_s": round(value, 1), "mfu": rate(name, "model"), "hfu": rate(name, executed[name])}
                for name, value in best.items()}
    ours, hf = best["ours, unpadded"], best["HF Trainer"]
    result = {
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "model": f"bert-{args.preset}",
        "preset": args.preset,
        "runs": runs_out,
        "tokens_per_s": round(ours, 1),
        "padded_tokens_per_s": round(best["ours, padded"], 1),
        "hf_trainer_tokens_per_s": round(hf, 1),
        "ratio_vs_hf_trainer": round(ours / hf, 3),
        "ratio_vs_padded": round(ours / best["ours, padded"], 3),
        "mfu": runs_out["ours, unpadded"]["mfu"],
        "hfu": runs_out["ours, unpadded"]["hfu"],
        "hf_trainer_mfu": runs_out["HF Trainer"]["mfu"],
        "real_token_fraction": round(tokens / sum(b["input_ids"].numel() for b in steps), 4),
        "budget_fill": round(tokens / (budget * len(steps)), 4),
        "token_budget": budget,
        "attention": args.attention,
        "compile_unpadded": compile_unpadded,
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
