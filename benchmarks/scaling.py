"""Scaling: one pipeline on 1 and 2 workers, as local processes and as Ray tasks; resources per stage.

    python benchmarks/scaling.py [DATA] [--docs 12000] [--shards 8] [--stage-docs 4000] [--write-docs]

Corpus: documents of 5-12 real AG News articles each (DATA, default ../shared/data/agnews), with 5% exact
and 10% near copies (one article swapped), in Parquet shards.

1. Scaling. `corpus curate` with normalize, fastText language ID, Gopher quality, exact and MinHash dedup,
   four times: `--executor local --workers 1|2` and `--executor ray --workers 1|2` (a local Ray started by
   the run, with that many CPUs). Wall time of the command, the pipeline's own time from stats.json
   (without process or Ray start-up), peak memory of the command's process tree (sampled every 50 ms),
   and whether all four wrote the same shards (sha256 of every data and rejected shard).
2. Resources per stage. Each stage alone (`--workers 1`, so the stage runs in the measured process) on
   one shard of `--stage-docs` documents: documents/s, peak memory, output and `_work/` disk per document,
   and for dedup stages what `corpus curate --plan` predicts. A second `normalize` run on a shard a quarter
   that size gives the memory a worker holds per document of its shard (the engine's output rows).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from docs_section import replace_section
from process_tree import corpus_command
from process_tree import measure as measure_command

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "agnews"
SECTION = "## Scaling"
PIPELINE = """output_format: parquet
stages:
  - stage: normalize
  - {stage: language, id: lang, threshold: 0.5}
  - {stage: gopher_quality, id: quality}
  - {stage: exact_dedup, id: exact}
  - {stage: minhash_dedup, id: minhash}
"""
STAGES = ["normalize", "language", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality", "pii",
          "boilerplate", "exact_dedup", "url_dedup", "minhash_dedup", "paragraph_dedup"]


# --- corpus --------------------------------------------------------------------------------------


def articles(data: Path) -> list[str]:
    texts = []
    for name in ("dev.jsonl", "test.jsonl"):
        path = data / name
        if path.exists():
            texts += [json.loads(line)["text"].replace("\\", " ").replace(" #39;", "'")
                      for line in path.read_text().splitlines() if line.strip()]
    if not texts:
        raise SystemExit(f"{data}: no dev.jsonl or test.jsonl with AG News records")
    return texts


def make_corpus(data: Path, folder: Path, docs: int, shards: int, seed: int) -> int:
    """`docs` documents in `shards` Parquet shards; returns the text bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    pool = articles(data)
    made: list[str] = []
    for _ in range(docs):
        roll = rng.random()
        if roll < 0.05 and made:
            text = rng.choice(made[-500:])
        elif roll < 0.15 and made:
            parts = rng.choice(made[-500:]).split("\n\n")
            parts[rng.randrange(len(parts))] = rng.choice(pool)
            text = "\n\n".join(parts)
        else:
            text = "\n\n".join(rng.sample(pool, rng.randint(5, 12)))
        made.append(text)
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        chunk = made[s::shards]
        ids = [f"s{s:02d}-{i:06d}" for i in range(len(chunk))]
        urls = [f"https://news.example/{s}/{i % 997}" for i in range(len(chunk))]  # repeats: for url_dedup
        table = pa.table({"id": ids, "text": chunk, "metadata": [json.dumps({"url": u}) for u in urls]})
        pq.write_table(table, folder / f"part-{s:03d}.parquet", compression="zstd")
    return sum(len(t.encode()) for t in made)


# --- measuring a command -------------------------------------------------------------------------


def measure(args: list[str], log: Path) -> dict[str, float]:
    """Run `corpus ARGS`; wall seconds, peak summed RSS and CPU seconds of its process tree."""
    return measure_command(corpus_command(*args), log, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def shard_digests(out: Path) -> dict[str, str]:
    from corpus.core.io import read_manifest

    return {f"{part}/{s['name']}": s["sha256"] for part in ("data", "rejected")
            for s in read_manifest(out / part)["shards"]}


# --- 1. scaling ----------------------------------------------------------------------------------


def scaling(inp: Path, work: Path) -> list[dict[str, Any]]:
    config = work / "pipeline.yaml"
    config.write_text(PIPELINE)
    rows = []
    for executor in ("local", "ray"):
        for workers in (1, 2):
            out = work / f"out-{executor}-{workers}"
            print(f"scaling: {executor}, {workers} worker(s)", file=sys.stderr, flush=True)
            measured = measure(["curate", str(inp), "-o", str(out), "--config", str(config), "--executor", executor,
                                "--workers", str(workers)], work / f"{executor}-{workers}.log")
            stats = json.loads((out / "stats.json").read_text())
            rows.append({"executor": executor, "workers": workers, **measured,
                         "pipeline_seconds": stats["seconds"], "documents_in": stats["documents_in"],
                         "documents_kept": stats["documents_kept"], "digests": shard_digests(out)})
            shutil.rmtree(out)
    return rows


# --- 2. resources per stage ----------------------------------------------------------------------


def stage_runs(inp: Path, work: Path, docs: int) -> list[dict[str, Any]]:
    from corpus.core.config import load_config
    from corpus.curate.dedup_plan import plan_pipeline

    rows = []
    for name in STAGES:
        config = work / f"{name}.yaml"
        config.write_text(f"output_format: parquet\nstages:\n  - {{stage: {name}, id: {name}}}\n")
        out = work / f"stage-{name}"
        print(f"stage: {name}", file=sys.stderr, flush=True)
        measured = measure(["curate", str(inp), "-o", str(out), "--config", str(config), "--workers", "1"],
                           work / f"stage-{name}.log")
        stats = json.loads((out / "stats.json").read_text())
        seconds = sum(s["counters"].get("seconds", 0) for job in stats["jobs"] for s in job["stages"])
        row = {"stage": name, "docs_per_s": round(docs / seconds, 1) if seconds else None,
               "peak_rss_mb": measured["peak_rss_mb"],
               "output_bytes_per_doc": round(folder_bytes(out / "data") / docs + folder_bytes(out / "rejected") / docs),
               "work_bytes_per_doc": round(folder_bytes(out / "_work") / docs),
               "kept": stats["documents_kept"]}
        plan = plan_pipeline(load_config(config), inp)
        if plan["stages"]:
            p = plan["stages"][0]
            row["plan_worker_mb"] = round(p["signature_worker_bytes"] / 2**20, 1)
            row["plan_clustering_mb"] = round(p["clustering_bytes"] / 2**20, 1)
            row["plan_disk_bytes_per_doc"] = round((p["disk_bytes"] + plan["intermediate_disk_bytes"]) / docs)
        rows.append(row)
        shutil.rmtree(out)
    return rows


def shard_memory(data: Path, work: Path, docs: int, seed: int) -> dict[str, Any]:
    """Peak memory of `normalize` on one shard of `docs` documents and of a quarter as many: the
    difference is what a worker holds per document of its shard (its output rows until it writes them)."""
    config = work / "normalize-only.yaml"
    config.write_text("output_format: parquet\nstages:\n  - normalize\n")
    peaks, text = {}, {}
    for n in (docs // 4, docs):
        inp = work / f"shard-{n}"
        text[n] = make_corpus(data, inp, n, 1, seed)
        print(f"shard memory: {n} documents", file=sys.stderr, flush=True)
        peaks[n] = measure(["curate", str(inp), "-o", str(work / f"shard-out-{n}"), "--config", str(config),
                            "--workers", "1"], work / f"shard-{n}.log")["peak_rss_mb"]
        shutil.rmtree(work / f"shard-out-{n}")
        shutil.rmtree(inp)
    small, big = docs // 4, docs
    per_doc = (peaks[big] - peaks[small]) * 2**20 / (big - small)
    return {"docs": [small, big], "peak_rss_mb": [peaks[small], peaks[big]],
            "text_mb": [round(text[small] / 2**20, 1), round(text[big] / 2**20, 1)],
            "bytes_per_doc": round(per_doc), "per_text_byte": round(per_doc / (text[big] / big), 2)}


# --- report --------------------------------------------------------------------------------------


def markdown(rows: list[dict[str, Any]], per_stage: dict[str, Any], info: dict[str, Any], command: str) -> str:
    by = {(r["executor"], r["workers"]): r for r in rows}
    lines = [
        SECTION, "",
        f"Command: `{command}` ({info['docs']:,} documents of 5-12 AG News articles, {info['mb']:.1f} MB of text, "
        f"{info['shards']} Parquet shards; pipeline: normalize, lid.176, Gopher quality, exact + MinHash dedup). "
        f"Machine: {os.cpu_count()} cores **shared with other jobs** (load average {info['load_before']} before, "
        f"{info['load_after']} after the run), so the absolute figures are noisy and 2 workers cannot show a clean "
        "2x; the Ray rows start a local single-node Ray for each run.",
        "",
        "| executor | workers | wall s | pipeline s | speedup (pipeline) | CPU s (tree) | peak RSS MB (tree) "
        "| same shards |",
        "|---|---|---|---|---|---|---|---|",
    ]
    reference = rows[0]["digests"]
    for r in rows:
        base = by[(r["executor"], 1)]["pipeline_seconds"]
        lines.append(f"| {r['executor']} | {r['workers']} | {r['seconds']} | {r['pipeline_seconds']} | "
                     f"{base / r['pipeline_seconds']:.2f}x | {r['cpu_seconds']} | {r['peak_rss_mb']} | "
                     f"{'yes' if r['digests'] == reference else 'NO'} |")
    if not per_stage["stages"]:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        f"Each stage alone, `--workers 1`, one shard of {info['stage_docs']:,} documents "
        f"({info['stage_doc_bytes']:.0f} bytes of text each; Parquet input {info['stage_input_bytes_per_doc']:.0f} "
        "bytes/doc). Peak RSS is the whole `corpus curate` process (Python, pyarrow and the stage's model). "
        "Output = data + rejected shards; `_work` = intermediate files (dedup runs, shingle sets, documents "
        "between jobs). Plan = `corpus curate --plan` for the same input (dedup stages only).",
        "",
        "| stage | docs/s (1 core) | peak RSS MB | output B/doc | _work B/doc "
        "| plan: worker MB / clustering MB / disk B/doc |",
        "|---|---|---|---|---|---|",
    ]
    for s in per_stage["stages"]:
        plan = (f"{s['plan_worker_mb']} / {s['plan_clustering_mb']} / {s['plan_disk_bytes_per_doc']}"
                if "plan_worker_mb" in s else "")
        lines.append(f"| {s['stage']} | {s['docs_per_s']} | {s['peak_rss_mb']} | {s['output_bytes_per_doc']} | "
                     f"{s['work_bytes_per_doc']} | {plan} |")
    m = per_stage["shard_memory"]
    lines += [
        "",
        f"Memory per document of a worker's shard: `normalize` alone on one shard of {m['docs'][0]:,} documents "
        f"({m['text_mb'][0]} MiB of text) peaked at {m['peak_rss_mb'][0]} MB, on {m['docs'][1]:,} documents "
        f"({m['text_mb'][1]} MiB) at {m['peak_rss_mb'][1]} MB: {m['bytes_per_doc']:,} bytes per document, "
        f"{m['per_text_byte']} x its text (the rows of the output shard held until it is written; "
        "`max_docs_per_shard` bounds it).",
    ]
    return "\n".join(lines) + "\n"


def write_docs(section: str) -> Path:
    return replace_section(section.splitlines()[0], section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="AG News folder (dev/test.jsonl)")
    parser.add_argument("--docs", type=int, default=12_000, help="documents for the scaling runs")
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--stage-docs", type=int, default=4_000, help="documents for the per-stage runs")
    parser.add_argument("--shard-docs", type=int, default=20_000, help="largest shard of the shard-memory runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-stages", action="store_true", help="only the scaling runs")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir, removed)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    command = "python benchmarks/scaling.py" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in (("docs", args.docs), ("shards", args.shards),
                                                       ("stage_docs", args.stage_docs),
                                                       ("shard_docs", args.shard_docs))) + \
        (" --skip-stages" if args.skip_stages else "") + " --write-docs"
    work = args.work or Path(tempfile.mkdtemp(prefix="corpus-scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    try:
        text_bytes = make_corpus(args.data, work / "in", args.docs, args.shards, args.seed)
        rows = scaling(work / "in", work)
        per_stage: dict[str, Any] = {"stages": []}
        stage_bytes = stage_input = 0
        if not args.skip_stages:
            stage_bytes = make_corpus(args.data, work / "stage-in", args.stage_docs, 1, args.seed + 1)
            stage_input = folder_bytes(work / "stage-in")
            per_stage = {"stages": stage_runs(work / "stage-in", work, args.stage_docs),
                         "shard_memory": shard_memory(args.data, work, args.shard_docs, args.seed + 2)}
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    by = {(r["executor"], r["workers"]): r for r in rows}
    result = {
        "documents": args.docs,
        **{f"{e}_{w}_pipeline_s": by[(e, w)]["pipeline_seconds"] for e, w in by},
        **{f"{e}_{w}_wall_s": by[(e, w)]["seconds"] for e, w in by},
        "local_speedup_2_vs_1": round(by[("local", 1)]["pipeline_seconds"] / by[("local", 2)]["pipeline_seconds"], 2),
        "ray_speedup_2_vs_1": round(by[("ray", 1)]["pipeline_seconds"] / by[("ray", 2)]["pipeline_seconds"], 2),
        "ray_vs_local_2_workers": round(by[("ray", 2)]["pipeline_seconds"] / by[("local", 2)]["pipeline_seconds"], 2),
        "identical_outputs": all(r["digests"] == rows[0]["digests"] for r in rows),
        "peak_rss_mb": {f"{e}_{w}": by[(e, w)]["peak_rss_mb"] for e, w in by},
        "cpu_seconds": {f"{e}_{w}": by[(e, w)]["cpu_seconds"] for e, w in by},
        "stages": {s["stage"]: {k: v for k, v in s.items() if k != "stage"} for s in per_stage["stages"]},
        "load_average": load_before,
    }
    if per_stage["stages"]:
        result["shard_memory_bytes_per_doc"] = per_stage["shard_memory"]["bytes_per_doc"]
    if args.write_docs:
        info = {"docs": args.docs, "mb": text_bytes / 1e6, "shards": args.shards, "load_before": load_before,
                "load_after": ", ".join(f"{x:.1f}" for x in os.getloadavg()), "stage_docs": args.stage_docs,
                "stage_doc_bytes": stage_bytes / max(1, args.stage_docs),
                "stage_input_bytes_per_doc": stage_input / max(1, args.stage_docs)}
        print(f"wrote {write_docs(markdown(rows, per_stage, info, command))}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
