"""Dedup benchmark: planted copies with truth by construction, our `--preset dedup` against datatrove's MinHash.

    python benchmarks/dedup.py [DATA] [--corpus tuning|heldout|both] [--workers 2] [--write-docs]
    python benchmarks/dedup.py --scale 100000,300000,1000000 [--write-docs]

Quality run. `benchmarks/dedup_corpus.py` builds each corpus from real text (DATA, default ../shared/data:
AG News, OLID and Davidson tweets; plus the Vim manual and the AWS CLI's example pages found on this
machine) and plants copies with recorded edits (word deletions, insertions, substitutions, added
boilerplate lines, reordered paragraphs, truncation, exact copies); unrelated originals wrapped in the
same boilerplate are the hard negatives, and the originals' own near-duplicates are labelled by word
alignment. The truth does not depend on any shingle similarity: a copy is a duplicate of its original.
`tuning` is the corpus the defaults were chosen on (`benchmarks/dedup_tune.py`); `heldout` is built from
other source texts with another seed. In the same run, on the same shards and worker count, our preset,
our previous default (verified 5-gram Jaccard 0.75) and HF datatrove's 4-stage MinHash (its defaults:
5-grams, 14 bands x 8 rows) run; we report pair precision, recall and F1, the precision of removals,
recall per kind of copy, per edit-rate band and per source, wall time and peak memory (summed RSS of the
process tree, sampled).

Scale run (`--scale`). Generated documents (real sentences recombined, 10% near and 5% exact copies)
go through `corpus curate --preset dedup`; we report wall time, peak memory, the bytes per document
of the dedup index, and what `corpus curate --plan` predicted.

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
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import dedup_corpus as dc
from docs_section import replace_section
from process_tree import corpus_command, measure

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SIZES = {"news": 4000, "docs": 2000, "forum": 3000}
PREVIOUS = ["--set", "minhash.threshold=0.75", "--set", "minhash.common_df=null", "--set", "minhash.bands=16",
            "--set", "minhash.rows=6"]
NAMES = {"ours": "corpus `--preset dedup`", "previous": "corpus, previous default (5-gram Jaccard 0.75, 16x6)",
         "datatrove": "datatrove MinHash (14x8)"}


def write_corpus(docs: list[dict[str, Any]], folder: Path, shards: int) -> None:
    from corpus.core.document import Document
    from corpus.core.io import write_shard

    folder.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        write_shard(folder / f"part-{s:03d}.parquet",
                    (Document(d["id"], d["text"], d["metadata"]) for d in docs[s::shards]))


# --- datatrove -----------------------------------------------------------------------------------


def run_datatrove(inp: Path, work: Path, workers: int) -> None:
    """HF datatrove's 4-stage MinHash dedup with its defaults (5-grams, 14 buckets x 8 hashes)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import JsonlWriter

    config = MinhashConfig()
    files = len(list(inp.glob("*.parquet")))

    def reader() -> ParquetReader:
        return ParquetReader(str(inp), glob_pattern="*.parquet")

    logs = work / "logs"
    stages = [
        ([reader(), MinhashDedupSignature(output_folder=str(work / "sigs"), config=config)], files),
        ([MinhashDedupBuckets(input_folder=str(work / "sigs"), output_folder=str(work / "buckets"),
                              config=config)], config.num_buckets),
        ([MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "remove_ids"),
                              config=config, save_cluster_id=True)], 1),
        ([reader(), MinhashDedupFilter(input_folder=str(work / "remove_ids"), load_cluster_ids=True,
                                       exclusion_writer=JsonlWriter(str(work / "removed"))),
          JsonlWriter(str(work / "output"))], files),
    ]
    for index, (pipeline, tasks) in enumerate(stages):
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=min(workers, tasks),
                              logging_dir=str(logs / f"stage{index}"), skip_completed=False).run()


def datatrove_clusters(work: Path) -> list[set[str]]:
    import gzip

    groups: dict[int, set[str]] = defaultdict(set)
    for folder in (work / "output", work / "removed"):
        for path in sorted(folder.glob("*.jsonl.gz")):
            with gzip.open(path, "rt") as handle:
                for line in handle:
                    record = json.loads(line)
                    cluster = record.get("metadata", {}).get("minhash_cluster_id", -1)
                    if cluster != -1:
                        groups[int(cluster)].add(record["id"])
    return [g for g in groups.values() if len(g) > 1]


# --- our run -------------------------------------------------------------------------------------


def our_clusters(out: Path) -> tuple[list[set[str]], set[str]]:
    """Clusters from the exact and MinHash cluster ids on kept and rejected documents, and the kept ids.

    A cluster id is the id of the document the cluster keeps, so linking to it adds no member of its own."""
    from corpus.core.io import read_documents

    links, kept = [], set()
    for folder in (out / "data", out / "rejected"):
        if not any(folder.glob("*.parquet")):
            continue
        for doc in read_documents(folder):
            if folder.name == "data":
                kept.add(doc.id)
            for key in ("exact_cluster_id", "minhash_cluster_id"):
                if key in doc.metadata:
                    links.append((doc.id, str(doc.metadata[key])))
    return dc.components(links), kept


def datatrove_kept(work: Path) -> set[str]:
    import gzip

    kept = set()
    for path in sorted((work / "output").glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as handle:
            kept.update(json.loads(line)["id"] for line in handle)
    return kept


# --- the quality run -----------------------------------------------------------------------------


def quality_run(args: argparse.Namespace, work: Path, split: str) -> dict[str, Any]:
    started = time.perf_counter()
    seed = args.seed if split == "tuning" else args.seed + 1
    folder = args.tuning_docs if split == "tuning" else args.heldout_docs
    corpus = dc.build(split, args.data, seed, args.sizes, folder)
    inp = work / split / "input"
    write_corpus(corpus.docs, inp, args.shards)
    print(f"{split}: {len(corpus.docs)} documents, {len(corpus.planted)} planted copies, built in "
          f"{time.perf_counter() - started:.0f}s", flush=True)
    runs: dict[str, dict[str, Any]] = {}
    for name, extra in {"ours": [], "previous": PREVIOUS}.items():
        out = work / split / name
        runs[name] = measure(corpus_command("curate", str(inp), "-o", str(out), "--preset", "dedup",
                                            "--workers", str(args.workers), "--overwrite", *extra),
                             work / f"{split}-{name}.log")
        runs[name]["clusters"], runs[name]["kept"] = our_clusters(out)
        print(f"{split} {name}: {runs[name]['seconds']}s, {runs[name]['peak_rss_mb']} MB", flush=True)
    if not args.skip_datatrove:
        out = work / split / "datatrove"
        runs["datatrove"] = measure([args.datatrove_python, __file__, "--datatrove", str(inp), str(out),
                                     str(args.workers)], work / f"{split}-datatrove.log")
        runs["datatrove"]["clusters"], runs["datatrove"]["kept"] = datatrove_clusters(out), datatrove_kept(out)
        print(f"{split} datatrove: {runs['datatrove']['seconds']}s, {runs['datatrove']['peak_rss_mb']} MB",
              flush=True)
    dc.label_natural(corpus, {p for r in runs.values() for p in dc.pairs_of(r["clusters"])})
    texts = [d["text"] for d in corpus.docs]
    results = {name: {**dc.score(corpus, r["clusters"], r["kept"]), "seconds": r["seconds"],
                      "peak_rss_mb": r["peak_rss_mb"], "cpu_seconds": r["cpu_seconds"]} for name, r in runs.items()}
    kinds = defaultdict(int)
    for _, copy in corpus.planted:
        kinds[corpus.by_id[copy]["metadata"]["planted"]] += 1
    return {"corpus": split, "seed": seed, "documents": len(corpus.docs),
            "text_mib": round(sum(len(t) for t in texts) / 2**20, 1), "sources": corpus.sources,
            "planted_pairs": len(corpus.planted), "natural_pairs": len(corpus.natural),
            "ambiguous_pairs": len(corpus.ambiguous),
            "truth_pairs": len(dc.pairs_of(dc.truth_clusters(corpus))),
            "negatives": sum(1 for d in corpus.docs if d["metadata"].get("boilerplate_negative")),
            "results": results}


# --- the scale run -------------------------------------------------------------------------------


def generate(n: int, folder: Path, seed: int, data: Path, shards: int) -> None:
    """`n` documents of 8-20 real sentences each; 10% near copies (a sentence swapped), 5% exact copies."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    texts = dc.agnews(data, "dev") + dc.agnews(data, "test") + dc.vim_pages(dc.VIM_DOC, rng)
    sentences = [s for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if len(s.split()) >= 5]
    folder.mkdir(parents=True, exist_ok=True)
    per_shard = -(-n // shards)
    made = 0
    for s in range(shards):
        ids, texts = [], []
        recent: list[str] = []
        for i in range(min(per_shard, n - made)):
            roll = rng.random()
            if roll < 0.05 and recent:
                text = rng.choice(recent)
            elif roll < 0.15 and recent:
                parts = rng.choice(recent).split(". ")
                parts[rng.randrange(len(parts))] = rng.choice(sentences)
                text = ". ".join(parts)
            else:
                text = " ".join(rng.choices(sentences, k=rng.randint(8, 20)))
                recent.append(text)
                if len(recent) > 1000:
                    recent.pop(rng.randrange(len(recent)))
            ids.append(f"g{s:03d}-{i:07d}")
            texts.append(text)
        made += len(ids)
        table = pa.table({"id": ids, "text": texts, "metadata": ["{}"] * len(ids)})
        pq.write_table(table, folder / f"part-{s:03d}.parquet", compression="zstd")


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def scale_run(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    from corpus.core.config import load_config
    from corpus.curate.dedup_plan import peak_bytes, plan_pipeline

    rows = []
    for n in args.scale:
        inp, out = work / f"scale-{n}", work / f"scale-{n}-out"
        shards = max(2, n // 62_500)
        started = time.perf_counter()
        generate(n, inp, args.seed, args.data, shards)
        made = time.perf_counter() - started
        plan = plan_pipeline(load_config(preset="dedup"), inp)
        run = measure(corpus_command("curate", str(inp), "-o", str(out), "--preset", "dedup",
                                     "--workers", str(args.workers), "--overwrite"), work / f"scale-{n}.log")
        stats = json.loads((out / "stats.json").read_text())
        dedup_disk = folder_bytes(out / "_work" / "dedup")
        sig = out / "_work" / "dedup" / "minhash" / "sig"
        shingle_bytes = sum(p.stat().st_size for p in sig.glob("*shingle*"))
        minhash_sig = folder_bytes(sig) - shingle_bytes
        minhash_plan = next(s for s in plan["stages"] if s["stage"] == "MinhashDedup")
        predicted_peak = peak_bytes(plan, min(args.workers, shards))
        row = {"documents": n, "shards": shards, "text_mib": round(plan["text_bytes"] / 2**20),
               "seconds": run["seconds"], "docs_per_s": round(n / run["seconds"]),
               "peak_rss_mb": run["peak_rss_mb"], "predicted_peak_mb": round(predicted_peak / 2**20),
               "index_bytes_per_doc": round(minhash_sig / n, 1),
               "predicted_index_bytes_per_doc": minhash_plan["index_bytes_per_document"],
               "shingle_bytes_per_doc": round(shingle_bytes / n, 1),
               "predicted_shingle_bytes_per_doc": minhash_plan["shingle_bytes_per_document"],
               "dedup_disk_mb": round(dedup_disk / 2**20, 1),
               "predicted_dedup_disk_mb": round(sum(s["disk_bytes"] for s in plan["stages"]) / 2**20, 1),
               "removed": stats["documents_rejected"], "generate_seconds": round(made, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        shutil.rmtree(inp, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return rows


# --- docs ----------------------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def quality_markdown(q: dict[str, Any]) -> list[str]:
    r = q["results"]
    names = list(r)
    lines = [f"### {q['corpus']} corpus (seed {q['seed']})", "",
             f"{q['documents']:,} documents ({q['text_mib']} MiB): " + "; ".join(
                 f"{k} from {v}" for k, v in q["sources"].items()) +
             f". {q['planted_pairs']:,} planted copies, {q['natural_pairs']} natural duplicate pairs "
             f"({q['ambiguous_pairs']} more pairs of originals are ambiguous and left out of the scores: linked by "
             + ", ".join(f"{NAMES[n].split(' (')[0]} {r[n]['ambiguous_pairs_linked']}" for n in names) + "), "
             f"{q['negatives']} unrelated originals wrapped in shared boilerplate; {q['truth_pairs']:,} true pairs.",
             "", "| system | pair P | pair R | pair F1 | recall, copies with <= 5% edits | removal precision | "
             "documents wrongly removed | seconds | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        x = r[name]
        p, rem = x["pairs"], x["removals"]
        lines.append(f"| {NAMES[name]} | {p['precision']} | {p['recall']} | {p['f1']} | "
                     f"{x['recall_edits_le_5pct']} | {rem['precision']} | {rem['wrongly_removed']} | "
                     f"{x['seconds']} | {x['peak_rss_mb']} |")
    if "datatrove" in r:
        ours, dt = r["ours"], r["datatrove"]
        lines += ["", f"Ours / datatrove: time {ratio(ours['seconds'], dt['seconds'])}, peak memory "
                  f"{ratio(ours['peak_rss_mb'], dt['peak_rss_mb'])}, CPU seconds "
                  f"{ratio(ours['cpu_seconds'], dt['cpu_seconds'])}."]
    lines += ["", "Recall per kind of copy (pairs):", "",
              "| kind | pairs | " + " | ".join(NAMES[n].split(" (")[0] for n in names) + " |",
              "|---|---|" + "---|" * len(names)]
    first = r[names[0]]
    for kind, v in first["recall_by_kind"].items():
        lines.append(f"| {kind} | {v['pairs']} | " + " | ".join(
            str(r[n]["recall_by_kind"].get(kind, {}).get("recall", "-")) for n in names) + " |")
    lines += ["", "Recall per edit rate (words deleted, inserted, substituted, added or cut, over the original's "
              "words; reordering alone counts 0):", "",
              "| edit rate | pairs | " + " | ".join(NAMES[n].split(" (")[0] for n in names) + " |",
              "|---|---|" + "---|" * len(names)]
    for band, v in first["recall_by_band"].items():
        lines.append(f"| {band} | {v['pairs']} | " + " | ".join(
            str(r[n]["recall_by_band"][band]["recall"]) for n in names) + " |")
    lines += ["", "Recall per source: " + "; ".join(
        f"{NAMES[n].split(' (')[0]}: " + ", ".join(f"{k} {v}" for k, v in r[n]["recall_by_source"].items())
        for n in names) + ".", "", "False pairs by source: " + "; ".join(
        f"{NAMES[n].split(' (')[0]}: " + (", ".join(f"{k} {v}" for k, v in r[n]["false_pairs_by_source"].items())
                                          or "none") for n in names) + ".", ""]
    return lines


def markdown(quality: list[dict[str, Any]] | None, scale: list[dict[str, Any]] | None, command: str) -> str:
    title = "## Deduplication at scale" if scale else "## Deduplication"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [title, "", f"Command: `{command}` (2-core machine shared with other jobs: load average {load} "
             "when the run ended; `--workers 2` for every system; times are wall clock).", ""]
    if quality:
        lines += ["Truth by construction (`benchmarks/dedup_corpus.py`): every planted copy is a duplicate of its "
                  "original whatever its shingle similarity; natural duplicates among the originals are pairs whose "
                  f"word alignment (difflib ratio, runs of a repeated word counted once) is >= {dc.NATURAL_RATIO}, "
                  f"and pairs between {dc.AMBIGUOUS_RATIO} and {dc.NATURAL_RATIO} (mostly templated pages) count "
                  "neither way. Pair scores count every pair inside "
                  "a cluster; removal precision is the share of removed documents whose cluster keeps a true "
                  "duplicate of them. The defaults were chosen on the tuning corpus only (docs/dedup.md); the "
                  "held-out corpus shares no source text with it.", ""]
        for q in quality:
            lines += quality_markdown(q)
    if scale:
        lines += ["", "Scale (generated documents, `corpus curate --preset dedup`, exact + MinHash):", "",
                  "| documents | text MiB | seconds | docs/s | peak RSS MB (plan) | index bytes/doc (plan) | "
                  "shingle-set bytes/doc (plan) | dedup disk MB (plan) | removed |",
                  "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['documents']:,} | {r['text_mib']} | {r['seconds']} | {r['docs_per_s']:,} | "
                  f"{r['peak_rss_mb']} ({r['predicted_peak_mb']}) | {r['index_bytes_per_doc']} "
                  f"({r['predicted_index_bytes_per_doc']}) | {r['shingle_bytes_per_doc']} "
                  f"({r['predicted_shingle_bytes_per_doc']}) | {r['dedup_disk_mb']} ({r['predicted_dedup_disk_mb']}) | "
                  f"{r['removed']:,} |" for r in scale]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_docs(section: str) -> Path:
    return replace_section(section.splitlines()[0], section)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--datatrove":  # internal: the datatrove run, measured by the parent
        run_datatrove(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA,
                        help="folder with agnews/, olid_offenseval2019/, hate_offensive_davidson/")
    parser.add_argument("--corpus", choices=["tuning", "heldout", "both"], default="both")
    parser.add_argument("--sizes", type=lambda s: dict(zip(SIZES, map(int, s.split(",")), strict=True)),
                        default=SIZES, help="originals per kind: news,docs,forum (default 4000,2000,3000)")
    parser.add_argument("--tuning-docs", type=Path, default=None, help="Vim help files (default: the installed ones)")
    parser.add_argument("--heldout-docs", type=Path, default=None, help="AWS CLI examples (default: found)")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="tuning corpus seed; held-out uses seed + 1")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--datatrove-python", default=sys.executable,
                        help="interpreter with datatrove installed (e.g. .venv-bench/bin/python)")
    parser.add_argument("--scale", type=lambda s: [int(x) for x in s.split(",")], default=None,
                        help="comma-separated document counts for the scale run (skips the quality run)")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir, removed)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data}: data folder does not exist")
    work = args.work or Path(tempfile.mkdtemp(prefix="dedup-bench-"))
    command = "python benchmarks/dedup.py " + " ".join(sys.argv[1:])
    try:
        if args.scale:
            scale = scale_run(args, work)
            summary: dict[str, Any] = {"scale": scale}
            section = markdown(None, scale, command)
        else:
            splits = ["tuning", "heldout"] if args.corpus == "both" else [args.corpus]
            quality = [quality_run(args, work, split) for split in splits]
            print(json.dumps(quality, indent=1))
            section = markdown(quality, None, command)
            summary = {}
            for q in quality:
                r = q["results"]
                dt = r.get("datatrove", {})
                summary[q["corpus"]] = {
                    "f1": r["ours"]["pairs"]["f1"], "precision": r["ours"]["pairs"]["precision"],
                    "recall_le_5pct": r["ours"]["recall_edits_le_5pct"],
                    "datatrove_f1": dt.get("pairs", {}).get("f1"),
                    "datatrove_recall_le_5pct": dt.get("recall_edits_le_5pct"),
                    "time_ratio": round(r["ours"]["seconds"] / dt["seconds"], 3) if dt else None,
                    "memory_ratio": round(r["ours"]["peak_rss_mb"] / dt["peak_rss_mb"], 3) if dt else None}
        print(section)
        if args.write_docs:
            write_docs(section)
        print(json.dumps(summary))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
