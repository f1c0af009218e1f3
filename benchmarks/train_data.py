"""Training data path at corpus scale: token store, streamed loader, memory, time to the first step.

    python benchmarks/train_data.py [DATA] [--docs 100000,1000000] [--workers 2] [--write-docs]

A corpus is generated from real sentences (AG News, DATA, default ../shared/data/agnews, recombined into
documents of ~5 KB, 100,000 documents per Parquet shard; or synthetic words when DATA is missing), at each size
in `--docs`. Then, for each size:
- `corpus train tokenize` builds the token store (tokenizer trained on a seeded sample), in a subprocess whose
  process tree is sampled for wall time, CPU seconds and peak RSS;
- `corpus train pretrain` runs 30 steps from the cached store (tiny preset, seq 128, batch 32), sampled the same
  way; its `first_step_s` is the time from the call of pretrain() to the first optimizer step.
Side by side on the smallest corpus's first shard, with the same fast tokenizer and the same worker count:
our tokenisation (the store's executor) against `datasets.map(batched=True, num_proc=W)` over the same Parquet
file (the usual peer), as documents/s and MB/s per CPU-second of each process tree.
And the loader alone: masked batches of seq 128 x 32 delivered per second, with 1 and 2 DataLoader workers.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from docs_section import replace_section
from process_tree import corpus_command, measure

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "agnews"
SECTION = "## Training data path"
DOC_CHARS = 5000
SHARD_DOCS = 100_000


def sentences(data: Path) -> list[str]:
    found: list[str] = []
    for name in ("dev.jsonl", "test.jsonl", "train.jsonl"):
        path = data / name
        if path.exists():
            for line in path.read_text().splitlines():
                text = json.loads(line)["text"].replace(" #39;", "'").replace("#39;", "'")
                found += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]
    if not found:  # no data here: synthetic words with a Zipf-like frequency
        rng = random.Random(0)
        words = ["".join(rng.choice("etaoinshrdlucmfwypvbgk") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
        weights = [1 / (i + 1) for i in range(len(words))]
        found = [" ".join(rng.choices(words, weights, k=rng.randint(6, 25))).capitalize() + "." for _ in range(20000)]
    return found


def generate(folder: Path, docs: int, pool: list[str], seed: int = 0) -> Path:
    """`docs` documents of ~DOC_CHARS characters in Parquet shards of SHARD_DOCS; reused when already there."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = folder / "_complete"
    if done.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    per_doc = max(1, DOC_CHARS // (sum(len(s) for s in pool[:1000]) // 1000 + 1))
    for shard in range(0, docs, SHARD_DOCS):
        n = min(SHARD_DOCS, docs - shard)
        texts = []
        for _ in range(n):
            picked = rng.choices(pool, k=per_doc)
            texts.append("\n".join(" ".join(picked[i : i + 5]) for i in range(0, per_doc, 5)))
        ids = [f"doc-{shard + i}" for i in range(n)]
        pq.write_table(pa.table({"id": ids, "text": texts, "metadata": ["{}"] * n}),
                       folder / f"part-{shard // SHARD_DOCS:05d}.parquet", row_group_size=10_000)
    done.write_text("")
    return folder


def tokenize_peer(parquet: Path, tokenizer: Path, workers: int, cache: Path) -> None:
    """The usual way: `datasets.map(batched=True)` with the same fast tokenizer, written to Arrow."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    dataset = Dataset.from_parquet(str(parquet), cache_dir=str(cache))
    dataset.map(lambda batch: tok(batch["text"], add_special_tokens=False, return_attention_mask=False,
                                  return_token_type_ids=False),
                batched=True, num_proc=workers if workers > 1 else None, remove_columns=dataset.column_names,
                cache_file_name=str(cache / "tokens.arrow"))


def loader_throughput(store: Path, workers: int, batches: int = 300) -> float:
    """Tokens per second of masked seq-128 batches delivered by the loader alone (no model)."""
    from corpus.train import data as D
    from corpus.train.stream import PretrainStream, StreamedBatches
    from corpus.train.tokenizer import load_tokenizer, round_up

    tok = load_tokenizer(store / "tokenizer")
    collator = D.MaskingCollator.for_tokenizer(tok, round_up(len(tok)))
    dataset = PretrainStream(store, objective="mlm+nsp", seq_len=128, batch_size=32, collator=collator,
                             cls_id=tok.cls_token_id, sep_id=tok.sep_token_id, streams=max(1, workers))
    loader = StreamedBatches(dataset, workers=workers)
    for _ in range(20):  # workers started, first chunks built
        next(loader)
    start, tokens = time.perf_counter(), 0
    for _ in range(batches):
        tokens += int(next(loader)["attention_mask"].sum())
    seconds = time.perf_counter() - start
    loader.close()
    return tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--docs", default="100000,1000000", help="corpus sizes, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parents[1] / "runs" / "bench-train-data")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--prepare", action="store_true", help="only generate the corpora and build the stores")
    args = parser.parse_args()
    sizes = [int(x) for x in args.docs.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    pool = sentences(args.data)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results: dict[str, Any] = {"sizes": {}}

    for size in sizes:
        corpus = generate(args.work / f"corpus-{size}", size, pool)
        text_bytes = sum(p.stat().st_size for p in corpus.glob("*.parquet"))
        store = args.work / f"tokens-{size}"
        measured = args.work / f"tokenize-{size}.json"  # a built store is reused (hours for 1M on 2 cores)
        if not (store / "manifest.json").exists() or not measured.exists():
            shutil.rmtree(store, ignore_errors=True)
            tokenize = measure(corpus_command("train", "tokenize", "--data", str(corpus), "-o", str(store),
                                              "--vocab-size", "8000", "--workers", str(args.workers)),
                               args.work / f"tokenize-{size}.log", env=env)
            measured.write_text(json.dumps(tokenize))
        tokenize = json.loads(measured.read_text())
        if args.prepare:
            continue
        model = args.work / f"model-{size}"
        shutil.rmtree(model, ignore_errors=True)
        pretrain = measure(corpus_command("train", "pretrain", "--data", str(store), "-o", str(model), "--steps",
                                          "30", "--seq-len", "128", "--batch-size", "32", "--device", "cpu",
                                          "--loader-workers", "1", "--threads", "1"),
                           args.work / f"pretrain-{size}.log", env=env)
        summary = json.loads((model / "train_summary.json").read_text())
        manifest = json.loads((store / "manifest.json").read_text())
        results["sizes"][size] = {"parquet_mb": round(text_bytes / 2**20),
                                  "tokens": manifest["splits"]["train"]["tokens"],
                                  "tokenize": tokenize, "pretrain": pretrain,
                                  "first_step_s": summary.get("first_step_s")}
        print(json.dumps({size: results["sizes"][size]}), flush=True)

    if args.prepare:
        return
    # Tokenisation side by side on one shard: ours vs datasets.map, same tokenizer and workers.
    smallest = args.work / f"corpus-{sizes[0]}"
    shard = sorted(smallest.glob("*.parquet"))[0]
    one = args.work / "one-shard"
    one.mkdir(exist_ok=True)
    if not (one / shard.name).exists():
        os.link(shard, one / shard.name)
    tokenizer = args.work / f"tokens-{sizes[0]}" / "tokenizer"
    ours_store = args.work / "tokens-one"
    shutil.rmtree(ours_store, ignore_errors=True)
    ours = measure(corpus_command("train", "tokenize", "--data", str(one), "-o", str(ours_store), "--tokenizer",
                                  str(tokenizer), "--workers", str(args.workers)),
                   args.work / "tokenize-ours.log", env=env)
    peer_cache = args.work / "peer-cache"
    shutil.rmtree(peer_cache, ignore_errors=True)
    peer_cache.mkdir()
    peer = measure([sys.executable, __file__, "--peer", str(shard), str(tokenizer), str(args.workers),
                    str(peer_cache)], args.work / "tokenize-peer.log", env=env)
    docs = SHARD_DOCS if sizes[0] >= SHARD_DOCS else sizes[0]
    mb = shard.stat().st_size / 2**20
    side = {"documents": docs, "parquet_mb": round(mb, 1),
            "ours": {**ours, "docs_per_cpu_s": round(docs / ours["cpu_seconds"], 1),
                     "mb_per_cpu_s": round(mb / ours["cpu_seconds"], 2)},
            "datasets_map": {**peer, "docs_per_cpu_s": round(docs / peer["cpu_seconds"], 1),
                             "mb_per_cpu_s": round(mb / peer["cpu_seconds"], 2)}}
    side["ratio_per_cpu_s"] = round(peer["cpu_seconds"] / ours["cpu_seconds"], 2)
    side["ratio_wall"] = round(peer["seconds"] / ours["seconds"], 2)
    results["tokenize_side_by_side"] = side
    print(json.dumps(side), flush=True)

    loader = {w: round(loader_throughput(args.work / f"tokens-{sizes[0]}", w)) for w in (1, 2)}
    results["loader_tokens_per_s"] = loader
    print(json.dumps({"loader_tokens_per_s": loader}), flush=True)

    small, large = sizes[0], sizes[-1]
    final = {
        "peak_rss_mb_100k": results["sizes"][small]["pretrain"]["peak_rss_mb"],
        "peak_rss_mb_1m": results["sizes"][large]["pretrain"]["peak_rss_mb"],
        "tokenize_peak_rss_mb_1m": results["sizes"][large]["tokenize"]["peak_rss_mb"],
        "tokenize_ratio_vs_datasets_map": side["ratio_per_cpu_s"],
        "loader_tokens_per_s_per_worker": round(loader[1]),
        "loader_tokens_per_s_2_workers": round(loader[2]),
        "first_step_seconds": results["sizes"][large]["first_step_s"],
        "sizes": list(results["sizes"]),
    }
    if args.write_docs:
        replace_section(SECTION, render(results, final, args))
    print(json.dumps(final))


def render(results: dict[str, Any], final: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [SECTION, "",
             f"`python benchmarks/train_data.py --docs {args.docs} --workers {args.workers} --write-docs` on this "
             "2-core machine (CPU only); generated corpora of AG News sentences recombined into ~5 KB documents.", "",
             "| corpus | Parquet | train tokens | tokenize wall s | tokenize CPU s | tokenize peak RSS | "
             "pretrain (30 steps) peak RSS | first step s |", "|---|---|---|---|---|---|---|---|"]
    for size, r in results["sizes"].items():
        lines.append(f"| {int(size):,} docs | {r['parquet_mb']:,} MB | {r['tokens']:,} | {r['tokenize']['seconds']} | "
                     f"{r['tokenize']['cpu_seconds']} | {r['tokenize']['peak_rss_mb']:,} MB | "
                     f"{r['pretrain']['peak_rss_mb']:,} MB | {r['first_step_s']} |")
    side = results["tokenize_side_by_side"]
    lines += ["", f"Tokenisation side by side ({side['documents']:,} documents, {side['parquet_mb']} MB of Parquet, "
              f"{args.workers} workers, same fast tokenizer):", "",
              "| | wall s | CPU s | docs / CPU s | MB / CPU s | peak RSS |", "|---|---|---|---|---|---|"]
    for name in ("ours", "datasets_map"):
        r = side[name]
        label = "corpus train tokenize (sentences + ids + index)" if name == "ours" else \
            "datasets.map(batched=True) (ids only)"
        lines.append(f"| {label} | {r['seconds']} | {r['cpu_seconds']} | {r['docs_per_cpu_s']:,} | "
                     f"{r['mb_per_cpu_s']} | {r['peak_rss_mb']:,} MB |")
    loader = results["loader_tokens_per_s"]
    lines += ["", f"Ratio per CPU-second, ours / peer: **{side['ratio_per_cpu_s']}x** (wall: {side['ratio_wall']}x).",
              "", f"Loader alone (masked seq 128 x 32 batches, mlm+nsp): {loader[1]:,} tokens/s "
              f"with 1 worker, {loader[2]:,} with 2.", "",
              "Goals: 1M-document peak RSS within 1.2x of 100k and under 2 GB "
              f"({final['peak_rss_mb_1m']} vs {final['peak_rss_mb_100k']} MB); tokenisation >= 1.0x the peer "
              f"({final['tokenize_ratio_vs_datasets_map']}x); loader >= 150k tokens/s per worker "
              f"({final['loader_tokens_per_s_per_worker']:,}); "
              f"first step < 10 s ({final['first_step_seconds']} s).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peer":
        tokenize_peer(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    else:
        main()
