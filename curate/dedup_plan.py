"""`corpus curate --plan`: what the dedup stages of a pipeline will need for a given input, before running.

Counts the input's documents and text bytes (Parquet footers; JSONL is scanned), then prints, per dedup
stage, the LSH bands x rows with the S-curve and the predicted peak memory and disk. The model is
simple arithmetic over bytes per document; `benchmarks/dedup.py --scale` checks it against measured
runs (docs/dedup.md has the table).
"""

from __future__ import annotations

import gzip
import math
import os
from typing import Any

from corpus.core.config import build_jobs
from corpus.core.io import list_shards

# Calibrated on `benchmarks/dedup.py --scale` runs (1.6 KB documents; peaks sampled per process).
PROCESS_BASE = 120 * 2**20  # a worker with numpy, pyarrow and the engine imported
MAIN_PROCESS = 60 * 2**20  # the `corpus curate` process itself
ID_BYTES = 26  # a 20-character id in the ids file
PYTHON_PER_DOC = 110  # id string, length and score held in Python lists until a rank closes its runs
ENGINE_DOC_OVERHEAD = 4.3  # a rank's output rows at the end of a rank (dicts, Arrow copy, zstd): per text byte
CLUSTER_PER_DOC = 140  # union-find arrays (40) and the Python ids, pairs and sets of the once-only step
TOUCHED_SHINGLES = 0.8  # share of the shingle-set files verification pages in (memory-mapped, reclaimable)


def measure_input(path: str | os.PathLike) -> dict[str, int]:
    """Documents and text bytes of a folder of shards (Parquet from footers, JSONL by scanning)."""
    import pyarrow.parquet as pq

    shards = list_shards(path)
    documents = text_bytes = 0
    for shard in shards:
        if shard.name.endswith(".parquet"):
            meta = pq.ParquetFile(shard).metadata
            documents += meta.num_rows
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                for c in range(group.num_columns):
                    if group.column(c).path_in_schema == "text":
                        text_bytes += group.column(c).total_uncompressed_size
        else:
            opener = gzip.open if shard.name.endswith(".gz") else open
            with opener(shard, "rb") as handle:
                for line in handle:
                    if line.strip():
                        documents += 1
                        text_bytes += len(line)
    return {"shards": len(shards), "documents": documents, "text_bytes": text_bytes}


def stage_plan(stage: Any, documents: int, text_bytes: int, shards: int, max_docs_per_shard: int) -> dict[str, Any]:
    """Peak memory (signature worker, clustering step) and disk of one dedup stage."""
    from corpus.curate.dedup_index import MERGE_MEMORY, KeyDedup
    from corpus.curate.paragraph_dedup import ParagraphDedup

    per_rank = math.ceil(documents / max(1, shards))
    doc_bytes = text_bytes / max(1, documents)
    engine = PROCESS_BASE + min(per_rank, max_docs_per_shard) * doc_bytes * ENGINE_DOC_OVERHEAD
    merge = 3 * min(MERGE_MEMORY, documents * 16)  # a merged block, its sort order and the edges found in it
    if isinstance(stage, ParagraphDedup):
        paragraphs = max(1.0, text_bytes / 400)  # about 400 bytes per paragraph of web text
        entries = paragraphs * 12
        return {"signature_worker_bytes": int(engine + entries / max(1, shards) * 3),
                "clustering_bytes": int(PROCESS_BASE + merge + paragraphs * 16 * 0.3),
                "disk_bytes": int(entries + paragraphs * 16 * 0.3), "index_bytes_per_document": 0,
                "shingle_bytes_per_document": 0}
    if not isinstance(stage, KeyDedup):
        return {}
    run_bytes = stage.bands * 12  # an 8-byte key and a 4-byte position per band
    shingles = getattr(stage, "ngram", None) and text_bytes / 6.2  # word 5-grams per byte of English
    batch = 0
    if shingles:
        per_doc_shingles = shingles / max(1, documents)
        batch = stage.batch_size * per_doc_shingles * (8 * stage.ngram + 24) + stage.batch_size * stage.num_perm * 4
    verify_disk = shingles * 4 if getattr(stage, "verify", False) else 0
    signature_worker = engine + batch + per_rank * (run_bytes * 3 + PYTHON_PER_DOC)
    # The sorted runs are memory-mapped and read whole, so they count in the clustering process's RSS.
    clustering = PROCESS_BASE + merge + documents * (CLUSTER_PER_DOC + run_bytes) + verify_disk * TOUCHED_SHINGLES
    per_doc_disk = run_bytes + 8 + ID_BYTES
    return {
        "signature_worker_bytes": int(signature_worker),
        "clustering_bytes": int(clustering),
        "disk_bytes": int(documents * per_doc_disk + verify_disk),
        "index_bytes_per_document": per_doc_disk,
        "shingle_bytes_per_document": round(verify_disk / max(1, documents), 1),
    }


def plan_pipeline(config: dict[str, Any], input_path: str | os.PathLike) -> dict[str, Any]:
    """The plan as data: input size, jobs, and per dedup stage its LSH settings and resources."""
    measured = measure_input(input_path)
    jobs = build_jobs(config)
    stages = []
    for job in jobs:
        for stage in job.stages:
            parent = getattr(stage, "parent", None)
            if parent is None or stage.id != parent.id:  # one entry per dedup stage (its filter half)
                continue
            entry = {"id": parent.id, "stage": type(parent).__name__,
                     **stage_plan(parent, measured["documents"], measured["text_bytes"], measured["shards"],
                                  config.get("max_docs_per_shard") or 10**9)}
            if hasattr(parent, "rows") and hasattr(parent, "threshold"):
                entry.update(threshold=parent.threshold, bands=parent.bands, rows=parent.rows,
                             num_perm=parent.num_perm, verify=parent.verify)
            stages.append(entry)
    # Every job boundary writes the surviving documents once more under _work/ (Parquet, zstd).
    boundaries = len(jobs) - 1
    return {**measured, "jobs": [j.name for j in jobs], "intermediate_disk_bytes": int(
        boundaries * measured["text_bytes"] * 0.45), "stages": stages}


def peak_bytes(plan: dict[str, Any], workers: int) -> int:
    """Peak memory of the whole run: all workers in a signature job, or the clustering step while the
    other workers wait for it, plus the main process."""
    stages = plan["stages"]
    if not stages:
        return 0
    signatures = max(s["signature_worker_bytes"] for s in stages) * workers
    clustering = max(s["clustering_bytes"] for s in stages) + PROCESS_BASE * (workers - 1)
    return int(max(signatures, clustering) + MAIN_PROCESS)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def show_plan(config: dict[str, Any], input_path: str | os.PathLike, workers: int | None = None) -> dict[str, Any]:
    """Print the plan (rich tables and the S-curve of each MinHash stage); returns it as data."""
    from rich.console import Console
    from rich.table import Table

    from corpus.curate.minhash import format_s_curve

    plan = plan_pipeline(config, input_path)
    workers = min(workers or os.cpu_count() or 1, plan["shards"])
    console = Console()
    console.print(f"input: {plan['shards']} shards, {plan['documents']:,} documents, "
                  f"{_size(plan['text_bytes'])} of text; jobs: {' -> '.join(plan['jobs'])}")
    if not plan["stages"]:
        console.print("no dedup stage in this pipeline: nothing to plan")
        return plan
    table = Table(title=f"dedup plan ({workers} workers)")
    for column in ("stage", "LSH", "memory / signature worker", "memory / clustering", "work disk",
                   "index bytes/doc"):
        table.add_column(column, justify="left" if column in ("stage", "LSH") else "right")
    for s in plan["stages"]:
        lsh = f"{s['bands']}x{s['rows']} of {s['num_perm']}, J>={s['threshold']}" if "bands" in s else "-"
        table.add_row(f"{s['id']} ({s['stage']})", lsh, _size(s["signature_worker_bytes"]),
                      _size(s["clustering_bytes"]), _size(s["disk_bytes"]), str(s["index_bytes_per_document"]))
    console.print(table)
    peak = peak_bytes(plan, workers)
    disk = sum(s["disk_bytes"] for s in plan["stages"]) + plan["intermediate_disk_bytes"]
    console.print(f"peak memory, all workers: about {_size(peak)}; disk under _work/: about {_size(disk)} "
                  f"(of which {_size(plan['intermediate_disk_bytes'])} are documents between jobs)")
    for s in plan["stages"]:
        if "bands" in s:
            console.print(f"\n{s['id']}: " + format_s_curve(s["bands"], s["rows"], s["threshold"]))
    return plan

