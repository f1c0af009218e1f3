"""Does pretraining learn? Held-out MLM accuracy of a CPU-budget BERT against the unigram-frequency baseline.

    python benchmarks/pretrain_learning.py --preset mini --minutes 20

Trains a tokenizer on the corpus, times a few steps to turn the budget into a step count (the learning-rate
schedule needs to know where it ends), pretrains with `corpus.train.pretrain.pretrain`, and compares the held-out
MLM accuracy and loss with what always guessing the most frequent token (accuracy) and the unigram
distribution (loss) score on the same masked positions. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from docs_section import replace_section

from corpus.core.io import read_documents
from corpus.train.pretrain import pretrain
from corpus.train.tokenizer import train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "agnews"
SECTION = "## Pretraining: learning on CPU"


def write_docs(r: dict, command: str) -> Path:
    """Replace (or append) our section of docs/benchmarks.md, leaving the others alone."""
    section = "\n".join([
        SECTION,
        "",
        f"`{command}`",
        "",
        "| corpus | model | objective | budget | steps | tokens | held-out MLM acc | unigram acc "
        "| held-out MLM loss | unigram loss | NSP acc |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        "| " + " | ".join([
            f"{r['corpus']} ({r['documents']:,} docs)", f"bert-{r['preset']}", r["objective"],
            f"{r['minutes']} min", f"{r['steps']:,}", f"{r['tokens']:,}", f"{r['eval_mlm_acc']:.3f}",
            f"{r['unigram_mlm_acc']:.3f}", f"{r['eval_mlm_loss']:.2f}", f"{r['unigram_mlm_loss']:.2f}",
            "n/a" if r["eval_nsp_acc"] is None else f"{r['eval_nsp_acc']:.3f}",
        ]) + " |",
        "",
        "Held-out: 5% of the documents, masked once with a fixed seed; the unigram numbers are scored on the "
        "same masked positions with token frequencies from the training documents. "
        f"{r['threads']} torch thread(s); machine load average at the end: {r['load_average']}. "
        "NSP accuracy means little on corpora of one- or two-sentence documents (AG News descriptions): "
        "a one-segment chunk always gets a random next segment, so most pairs are label 1.",
        "",
    ])
    path = replace_section(SECTION, section)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="a folder of shards")
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--objective", default="mlm+nsp")
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    common = {"preset": args.preset, "objective": args.objective, "seq_len": args.seq_len,
              "batch_size": args.batch_size, "lr": args.lr, "device": args.device}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts = (d.text for d in read_documents(args.data) if d.text.strip())
        tokenizer = tmp / "tokenizer"
        train_tokenizer(itertools.islice(texts, 100_000), tokenizer, vocab_size=args.vocab_size)

        # Calibrate: seconds per step after a few warm-up steps.
        pretrain(args.data, tmp / "calibrate", steps=15, tokenizer=tokenizer, log_every=5, eval_fraction=0.0,
                 progress=False, **common)
        log = [json.loads(line) for line in (tmp / "calibrate" / "log.jsonl").read_text().splitlines()]
        per_step = (log[-1]["elapsed_s"] - log[0]["elapsed_s"]) / (log[-1]["step"] - log[0]["step"])
        steps = max(10, int(args.minutes * 60 / per_step))
        print(f"{per_step:.3f} s/step: {steps} steps fit in {args.minutes} min", file=sys.stderr)

        started = time.perf_counter()
        summary = pretrain(args.data, tmp / "model", steps=steps, tokenizer=tokenizer, log_every=50,
                           eval_every=max(1, steps // 4), progress=True, **common)
        wall = time.perf_counter() - started

    result = {
        "corpus": args.data.name,
        "documents": summary["documents"],
        "preset": args.preset,
        "objective": args.objective,
        "minutes": args.minutes,
        "steps": summary["steps"],
        "tokens": summary["tokens"],
        "tokens_per_s": summary["tokens_per_s"],
        "wall_s": round(wall, 1),
        "eval_mlm_acc": summary["eval_mlm_acc"],
        "unigram_mlm_acc": summary["eval_unigram_mlm_acc"],
        "eval_mlm_loss": summary["eval_mlm_loss"],
        "unigram_mlm_loss": summary["eval_unigram_mlm_loss"],
        "eval_nsp_acc": summary.get("eval_nsp_acc"),
        "final_train_loss": summary["final_loss"],
        "threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 1),
    }
    if args.write_docs:
        flags = " ".join(a for a in sys.argv[1:] if a != "--write-docs")
        print(f"wrote {write_docs(result, f'python benchmarks/pretrain_learning.py {flags}'.strip())}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
