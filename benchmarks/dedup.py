"""Dedup benchmark: planted duplicates in real text, our `--preset dedup` against datatrove's MinHash.

    python benchmarks/dedup.py [DATA] [--base 12000] [--workers 2] [--write-docs]
    python benchmarks/dedup.py --scale 100000,300000,1000000 [--write-docs]

Quality run. A corpus is built from real prose on this machine: AG News articles (DATA, default
../shared/data/agnews), the Python documentation sources and the Vim manual (when installed), cut into
documents. Then duplicates are planted with known ground truth: exact copies; near copies at target
word-5-gram Jaccard similarities drawn from 0.5-0.95 (word substitutions, deletions, insertions,
swapped headers and footers, or a mix); and unrelated documents that share a boilerplate block. The
truth is exact Jaccard >= the threshold (0.75) on every planted pair and on every pair either system
put in one cluster; truth clusters are the connected components. We report pair-level and
cluster-level precision, recall and F1, and the measured probability that a planted pair becomes an
LSH candidate, per Jaccard band, next to the S-curve. In the same run, on the same shards and worker
count, HF datatrove's 4-stage MinHash dedup (its defaults: 5-grams, 14 bands x 8 rows) runs too.
Wall time and peak memory (summed RSS of the process tree, sampled) are measured for both.

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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from docs_section import replace_section
from process_tree import corpus_command, measure

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "agnews"
PROSE = [Path("/usr/share/doc/python3.11/html/_sources"), Path("/usr/share/vim/vim90/doc")]
THRESHOLD = 0.75
NGRAM = 5
WORD = re.compile(r"[^\W_]+")  # a word: a run of letters and digits
BOILERPLATE = [
    "Subscribe to our newsletter to get the latest stories delivered to your inbox every morning. We respect your "
    "privacy and you can unsubscribe at any time. By continuing to use this site you agree to our use of cookies.",
    "Home | News | Sport | Business | Culture | Weather. Copyright 2024 The Daily Chronicle. All rights reserved. "
    "Terms of use. Privacy policy. Contact the newsroom. Advertise with us. Careers.",
    "This article was written with the help of our readers. If you spotted an error please let us know through "
    "the feedback form. Share this article on social media. Related stories are listed below.",
]
HEADERS = [
    "Posted by the editorial team in Technology, Updated on Monday. Reading time about five minutes.",
    "From the archive: originally published in the weekly bulletin. Filed under guides and reference.",
    "Skip to main content. Menu. Search this site. Sign in or register for a free account today.",
    "Breaking: the latest update from our correspondents. Follow us for live coverage of the story.",
]


# --- the real-text corpus ------------------------------------------------------------------------


def prose_paragraphs(folder: Path) -> list[str]:
    """Paragraphs of prose (mostly words, at least 8 of them) from the text files under `folder`."""
    paragraphs = []
    for path in sorted(folder.rglob("*.txt")):
        try:
            raw = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for block in re.split(r"\n\s*\n", raw):
            lines = [ln.strip() for ln in block.splitlines() if not ln.lstrip().startswith((".. ", ":", "|", "*"))]
            block = " ".join(ln for ln in lines if ln)
            tokens = block.split()
            if len(tokens) >= 8 and sum(t.isalpha() for t in tokens) >= 0.6 * len(tokens):
                paragraphs.append(block)
    return paragraphs


def base_documents(data: Path, limit: int, rng: random.Random) -> list[tuple[str, str]]:
    """(source, text) pairs: news articles as they are, manual paragraphs packed into 100-600 word pages."""
    docs: list[tuple[str, str]] = []
    for name in ("dev.jsonl", "test.jsonl"):
        path = data / name
        if path.exists():
            for line in path.read_text().splitlines():
                text = json.loads(line)["text"].replace("\\", " ")
                if len(text.split()) >= 20:
                    docs.append(("agnews", text))
    for folder in PROSE:
        if not folder.is_dir():
            continue
        page: list[str] = []
        target = rng.randint(100, 600)
        for paragraph in prose_paragraphs(folder):
            page.append(paragraph)
            if sum(len(p.split()) for p in page) >= target:
                docs.append((folder.parts[-2] if folder.name == "doc" else "python-docs", "\n\n".join(page)))
                page, target = [], rng.randint(100, 600)
    seen, unique = set(), []
    for source, text in docs:  # the sources repeat themselves a little: start from distinct texts
        key = " ".join(WORD.findall(text.lower()))
        if key not in seen:
            seen.add(key)
            unique.append((source, text))
    rng.shuffle(unique)
    return unique[:limit]


def shingles(text: str) -> set[tuple[str, ...]]:
    words = WORD.findall(text.lower())
    return {tuple(words[i : i + NGRAM]) for i in range(max(1, len(words) - NGRAM + 1))} if words else set()


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_copy(text: str, target: float, kind: str, donor: str, rng: random.Random) -> tuple[str, float]:
    """A copy of `text` edited until its Jaccard similarity to `text` is as close to `target` as it gets."""
    words, extra = text.split(), donor.split() or ["word"]
    original = shingles(text)
    ops = []
    for position in rng.sample(range(len(words)), len(words)):
        op = kind if kind in ("substitute", "delete", "insert") else rng.choice(["substitute", "delete", "insert"])
        ops.append((op, position, rng.choice(extra)))
    header = footer = ""
    if kind == "header_footer":
        header, footer = rng.choice(HEADERS), rng.choice(BOILERPLATE)

    def apply(k: int) -> str:
        edits = {p: (op, w) for op, p, w in ops[:k]}
        out = []
        for i, word in enumerate(words):
            op, new = edits.get(i, (None, None))
            if op == "substitute":
                out.append(new)
            elif op == "insert":
                out += [word, new]
            elif op != "delete":
                out.append(word)
        return " ".join(filter(None, [header, " ".join(out), footer]))

    low, high = 0, len(ops)
    while low < high:  # the fewest edits that bring the similarity down to the target
        mid = (low + high) // 2
        if jaccard(original, shingles(apply(mid))) > target:
            low = mid + 1
        else:
            high = mid
    candidates = [k for k in (low - 1, low) if 0 <= k <= len(ops)]
    best = min(candidates, key=lambda k: abs(jaccard(original, shingles(apply(k))) - target))
    copy = apply(best)
    return copy, jaccard(original, shingles(copy))


def build_corpus(data: Path, base: int, seed: int) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Documents (id, text, metadata) and the planted families as (original id, copy id) pairs."""
    rng = random.Random(seed)
    texts = base_documents(data, base, rng)
    docs = [{"id": f"b{i:06d}", "text": t, "metadata": {"source": s, "planted": "original"}}
            for i, (s, t) in enumerate(texts)]
    pairs: list[tuple[str, str]] = []
    long_enough = [d for d in docs if len(d["text"].split()) >= 60]
    for d in rng.sample(docs, len(docs) // 25):  # exact copies
        for c in range(rng.choice([1, 1, 2])):
            copy = {"id": f"{d['id']}-x{c}", "text": d["text"], "metadata": {"source": "copy", "planted": "exact"}}
            docs.append(copy)
            pairs.append((d["id"], copy["id"]))
    kinds = ["substitute", "delete", "insert", "header_footer", "mixed"]
    for d in rng.sample(long_enough, len(docs) // 7):  # near copies at controlled similarity
        for c in range(rng.choice([1, 1, 2, 3])):
            kind, target = rng.choice(kinds), rng.uniform(0.5, 0.95)
            text, actual = near_copy(d["text"], target, kind, rng.choice(docs)["text"], rng)
            copy = {"id": f"{d['id']}-n{c}", "text": text,
                    "metadata": {"source": "copy", "planted": kind, "target_jaccard": round(target, 3),
                                 "jaccard": round(actual, 4)}}
            docs.append(copy)
            pairs.append((d["id"], copy["id"]))
    for d in rng.sample(docs, len(docs) // 20):  # unrelated documents that share boilerplate
        if "-" not in d["id"]:
            block = rng.choice(BOILERPLATE)
            d["text"] = f"{rng.choice(HEADERS)}\n\n{d['text']}\n\n{block}"
            d["metadata"]["boilerplate"] = True
    # Copies were made before boilerplate went onto some originals: measure truth on final texts.
    rng.shuffle(docs)
    return docs, pairs


def write_corpus(docs: list[dict[str, Any]], folder: Path, shards: int) -> None:
    from corpus.core.document import Document
    from corpus.core.io import write_shard

    folder.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        write_shard(folder / f"part-{s:03d}.parquet",
                    (Document(d["id"], d["text"], d["metadata"]) for d in docs[s::shards]))


# --- measuring a command -------------------------------------------------------------------------


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


def our_clusters(out: Path) -> list[set[str]]:
    """Clusters from the exact and MinHash cluster ids on kept and rejected documents."""
    from corpus.core.io import read_documents

    links = []
    for folder in (out / "data", out / "rejected"):
        if not any(folder.glob("*.parquet")):
            continue
        for doc in read_documents(folder):
            for key in ("exact_cluster_id", "minhash_cluster_id"):
                if key in doc.metadata:
                    links.append((doc.id, str(doc.metadata[key])))
    return components(links)


# --- scoring -------------------------------------------------------------------------------------


def components(links: Iterable[tuple[str, str]]) -> list[set[str]]:
    """Connected components (of two or more) of the graph these links make (union-find with path halving)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        parent[find(a)] = find(b)
    groups: dict[str, set[str]] = defaultdict(set)
    for x in list(parent):
        groups[find(x)].add(x)
    return [g for g in groups.values() if len(g) > 1]


def pairs_of(clusters: list[set[str]]) -> set[tuple[str, str]]:
    out = set()
    for c in clusters:
        members = sorted(c)
        out.update((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
    return out


def prf(tp: int, predicted: int, actual: int) -> dict[str, float]:
    p = tp / predicted if predicted else 1.0
    r = tp / actual if actual else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4)}


def truth_clusters(texts: dict[str, str], candidates: set[tuple[str, str]]) -> list[set[str]]:
    """Connected components of the pairs whose exact Jaccard similarity reaches the threshold."""
    cache: dict[str, set] = {}

    def sh(x: str) -> set:
        if x not in cache:
            cache[x] = shingles(texts[x])
        return cache[x]

    return components((a, b) for a, b in candidates if jaccard(sh(a), sh(b)) >= THRESHOLD)


def score(predicted: list[set[str]], truth: list[set[str]]) -> dict[str, Any]:
    pp, tp_pairs = pairs_of(predicted), pairs_of(truth)
    pc, tc = {frozenset(c) for c in predicted}, {frozenset(c) for c in truth}
    return {"pairs": prf(len(pp & tp_pairs), len(pp), len(tp_pairs)),
            "clusters": prf(len(pc & tc), len(pc), len(tc)),
            "predicted_clusters": len(pc), "documents_in_clusters": sum(len(c) for c in predicted)}


def candidate_curve(docs: dict[str, dict], pairs: list[tuple[str, str]], bands: int, rows: int,
                    num_perm: int) -> list[dict[str, Any]]:
    """Measured share of planted near pairs that share an LSH band, per Jaccard band, vs the S-curve."""
    import numpy as np

    from corpus.curate.minhash import band_keys, candidate_probability, shingle_hashes, signatures

    near = [(a, b) for a, b in pairs if docs[b]["metadata"]["planted"] not in ("exact",)]
    ids = sorted({x for p in near for x in p})
    position = {x: i for i, x in enumerate(ids)}
    keys = []
    for start in range(0, len(ids), 512):
        chunk = [docs[x]["text"] for x in ids[start : start + 512]]
        hashes, offsets = shingle_hashes(chunk, NGRAM)
        keys.append(band_keys(signatures(hashes, offsets, num_perm), bands, rows))
    key = np.concatenate(keys)
    hashed: dict[str, set] = {}
    bins: dict[float, list[tuple[float, bool]]] = defaultdict(list)
    for a, b in near:
        for x in (a, b):
            if x not in hashed:
                hashes, offsets = shingle_hashes([docs[x]["text"]], NGRAM)
                hashed[x] = set(hashes.tolist())
        j = jaccard(hashed[a], hashed[b])
        if j < 0.45:
            continue
        low = min(0.95, int(j * 20) / 20)
        bins[low].append((j, bool((key[position[a]] == key[position[b]]).any())))
    rows_out = []
    for low in sorted(bins):
        items = bins[low]
        expected = float(np.mean([candidate_probability(j, bands, rows) for j, _ in items]))
        rows_out.append({"jaccard": f"{low:.2f}-{low + 0.05:.2f}", "pairs": len(items),
                         "measured": round(sum(c for _, c in items) / len(items), 3),
                         "s_curve": round(expected, 3)})
    return rows_out


# --- the quality run -----------------------------------------------------------------------------


def quality_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from corpus.core.config import build_jobs, load_config

    started = time.perf_counter()
    docs, pairs = build_corpus(args.data, args.base, args.seed)
    inp = work / "input"
    write_corpus(docs, inp, args.shards)
    by_id = {d["id"]: d for d in docs}
    texts = {d["id"]: d["text"] for d in docs}
    print(f"corpus: {len(docs)} documents ({sum(len(t) for t in texts.values()) / 2**20:.1f} MiB), "
          f"{len(pairs)} planted pairs, built in {time.perf_counter() - started:.0f}s", flush=True)

    runs: dict[str, dict[str, Any]] = {}
    configs = {"ours": [], "ours_no_verify": ["--set", "minhash.verify=false"]}
    for name, extra in configs.items():
        out = work / name
        runs[name] = measure(corpus_command("curate", str(inp), "-o", str(out), "--preset", "dedup",
                                            "--workers", str(args.workers), "--overwrite", *extra),
                             work / f"{name}.log")
        runs[name]["clusters"] = our_clusters(out)
        print(f"{name}: {runs[name]['seconds']}s, {runs[name]['peak_rss_mb']} MB", flush=True)
    if not args.skip_datatrove:
        runs["datatrove"] = measure([sys.executable, __file__, "--datatrove", str(inp), str(work / "datatrove"),
                                     str(args.workers)], work / "datatrove.log")
        runs["datatrove"]["clusters"] = datatrove_clusters(work / "datatrove")
        print(f"datatrove: {runs['datatrove']['seconds']}s, {runs['datatrove']['peak_rss_mb']} MB", flush=True)

    candidates = set(pairs) | {p for r in runs.values() for p in pairs_of(r["clusters"])}
    for a, b in pairs:  # copies of one original are also compared with each other
        candidates.add((a, b))
    families: dict[str, list[str]] = defaultdict(list)
    for a, b in pairs:
        families[a].append(b)
    for original, copies in families.items():
        members = [original, *copies]
        candidates.update((x, y) for i, x in enumerate(members) for y in members[i + 1 :])
    truth = truth_clusters(texts, {tuple(sorted(p)) for p in candidates})
    results = {name: {**score(r["clusters"], truth), "seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"]}
               for name, r in runs.items()}
    curves = {}
    for overrides in ([], ["minhash.verify=false"]):
        stage = next(s.parent for job in build_jobs(load_config(preset="dedup", overrides=overrides))
                     for s in job.stages if getattr(getattr(s, "parent", None), "kind", "") == "minhash")
        curves[f"{stage.bands}x{stage.rows}"] = candidate_curve(by_id, pairs, stage.bands, stage.rows, stage.num_perm)
    parent = next(s.parent for job in build_jobs(load_config(preset="dedup")) for s in job.stages
                  if getattr(getattr(s, "parent", None), "kind", "") == "minhash")
    return {"documents": len(docs), "text_mib": round(sum(len(t) for t in texts.values()) / 2**20, 1),
            "planted_pairs": len(pairs), "truth_clusters": len(truth), "truth_pairs": len(pairs_of(truth)),
            "bands": parent.bands, "rows": parent.rows, "num_perm": parent.num_perm, "results": results,
            "candidate_curves": curves}


# --- the scale run -------------------------------------------------------------------------------


def generate(n: int, folder: Path, seed: int, data: Path, shards: int) -> None:
    """`n` documents of 8-20 real sentences each; 10% near copies (a sentence swapped), 5% exact copies."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    sentences = [s for _, t in base_documents(data, 10**9, rng) for s in re.split(r"(?<=[.!?])\s+", t)
                 if len(s.split()) >= 5]
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


def markdown(quality: dict[str, Any] | None, scale: list[dict[str, Any]] | None, command: str) -> str:
    title = "## Deduplication at scale" if scale else "## Deduplication"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [title, "", f"Command: `{command}` (2-core machine shared with other jobs: load average {load} "
             "when the run ended; `--workers 2` for every system; times are wall clock).", ""]
    if quality:
        lines += [f"Corpus: {quality['documents']:,} documents ({quality['text_mib']} MiB) of real prose "
                  f"(AG News, Python docs, Vim manual) with {quality['planted_pairs']:,} planted duplicate pairs "
                  f"(exact, and near copies at Jaccard 0.5-0.95). Truth: word 5-gram Jaccard >= {THRESHOLD} "
                  f"({quality['truth_clusters']:,} clusters, {quality['truth_pairs']:,} pairs), words being runs of "
                  "letters and digits, lower-cased, as our stage reads them (datatrove tokenizes with spaCy after "
                  "its own normalisation, numbers -> 0, so its 5-grams differ slightly). Pair scores count every "
                  "pair inside a cluster; a cluster counts when it matches a truth cluster exactly.", "",
                  "| system | pair P | pair R | pair F1 | cluster P | cluster R | cluster F1 | seconds | "
                  "peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
        names = {"ours": f"corpus `--preset dedup` ({quality['bands']}x{quality['rows']}, exact verification)",
                 "ours_no_verify": "corpus `--preset dedup --set minhash.verify=false` (14x9)",
                 "datatrove": "datatrove MinHash (14x8)"}
        for name, r in quality["results"].items():
            p, c = r["pairs"], r["clusters"]
            lines.append(f"| {names[name]} | {p['precision']} | {p['recall']} | {p['f1']} | {c['precision']} | "
                         f"{c['recall']} | {c['f1']} | {r['seconds']} | {r['peak_rss_mb']} |")
        if "datatrove" in quality["results"]:
            ours, dt = quality["results"]["ours"], quality["results"]["datatrove"]
            lines += ["", f"Time ratio ours/datatrove: {ours['seconds'] / dt['seconds']:.2f}; "
                      f"memory ratio: {ours['peak_rss_mb'] / dt['peak_rss_mb']:.2f}."]
        curves = quality["candidate_curves"]
        names = list(curves)
        lines += ["", "Probability that a planted near pair becomes an LSH candidate, measured on the corpus and "
                  "predicted by the S-curve 1-(1-J^r)^b:", "",
                  "| Jaccard | pairs | " + " | ".join(f"{n} measured | {n} S-curve" for n in names) + " |",
                  "|---|---|" + "---|---|" * len(names)]
        for i, row in enumerate(curves[names[0]]):
            cells = " | ".join(f"{curves[n][i]['measured']} | {curves[n][i]['s_curve']}" for n in names)
            lines.append(f"| {row['jaccard']} | {row['pairs']} | {cells} |")
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
    return "\n".join(lines) + "\n"


def write_docs(section: str) -> Path:
    return replace_section(section.splitlines()[0], section)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--datatrove":  # internal: the datatrove run, measured by the parent
        run_datatrove(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="AG News folder (dev/test.jsonl)")
    parser.add_argument("--base", type=int, default=12_000, help="distinct real documents before planting")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-datatrove", action="store_true")
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
            summary = {"scale": scale}
            section = markdown(None, scale, command)
        else:
            quality = quality_run(args, work)
            print(json.dumps(quality, indent=1))
            section = markdown(quality, None, command)
            r = quality["results"]
            dt = r.get("datatrove", {})
            summary = {"f1": r["ours"]["pairs"]["f1"], "datatrove_f1": dt.get("pairs", {}).get("f1"),
                       "seconds": r["ours"]["seconds"], "datatrove_seconds": dt.get("seconds"),
                       "peak_rss_mb": r["ours"]["peak_rss_mb"], "datatrove_peak_rss_mb": dt.get("peak_rss_mb")}
        print(section)
        if args.write_docs:
            write_docs(section)
        print(json.dumps(summary))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
