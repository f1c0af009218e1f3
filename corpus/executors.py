"""Run jobs of stages over shards: one rank per input shard, resumable, in a process pool.

Layout of an output folder:
    data/         kept documents (shards + manifest.json)
    rejected/     dropped documents with `stage` and `reason` columns (shards + manifest.json)
    quarantine/   input records that could not be read, with file and line
    errors/       documents a stage raised on (id, stage, error)
    stats.json    per job, per stage: in, kept, dropped/<reason>, seconds, ...
    config.yaml   the resolved pipeline config, written before work starts
    _work/        completion markers and intermediate job outputs (kept for resume)
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corpus.config import Job, build_jobs
from corpus.document import Document
from corpus.errors import CorpusError
from corpus.io import (
    Malformed,
    ShardInfo,
    ShardWriter,
    atomic_write_bytes,
    atomic_write_json,
    clean_temp_files,
    list_shards,
    read_shard,
    write_manifest,
)
from corpus.stage import RankContext, Stage, format_error
from corpus.stats import StageStats, merge_stage_lists


@dataclass
class RankTask:
    """Everything one rank needs; pickled to the worker process."""

    job: Job
    job_index: int
    rank: int
    world_size: int
    inputs: list[str]
    out_dir: str
    final: bool
    output_format: str
    max_docs_per_shard: int | None
    strict: bool = False
    config_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def marker(self) -> Path:
        return Path(self.out_dir) / "_work" / "completions" / self.job.name / f"{self.rank:05d}.json"

    @property
    def output_folder(self) -> Path:
        return Path(self.out_dir) / ("data" if self.final else f"_work/{self.job.name}")


def _timed(stage_stats: StageStats, upstream: Iterable[Document], stage: Stage, ctx: RankContext):
    """Count and time one stage: its own time is time spent pulling its output minus upstream time."""
    upstream_time = [0.0]

    def counted_input() -> Iterator[Document]:
        iterator = iter(upstream)
        while True:
            start = time.perf_counter()
            try:
                doc = next(iterator)
            except StopIteration:
                upstream_time[0] += time.perf_counter() - start
                return
            upstream_time[0] += time.perf_counter() - start
            stage_stats.add("in")
            stage_stats.add("chars_in", len(doc.text))
            yield doc

    output = iter(stage.run(counted_input(), ctx))
    while True:
        start = time.perf_counter()
        try:
            doc = next(output)
        except StopIteration:
            stage_stats.add("seconds", time.perf_counter() - start - upstream_time[0])
            upstream_time[0] = 0.0
            return
        stage_stats.add("seconds", time.perf_counter() - start - upstream_time[0])
        upstream_time[0] = 0.0
        stage_stats.add("kept")
        stage_stats.add("chars_kept", len(doc.text))
        yield doc


def run_rank(task: RankTask) -> dict[str, Any]:
    """Run one job on one rank; skip it if its completion marker exists (that is how resume works)."""
    marker = task.marker
    if marker.exists():
        done = json.loads(marker.read_text())
        if done.get("config_hash") != task.config_hash:
            raise CorpusError(
                f"{task.out_dir}: holds results of a different pipeline config; "
                "use a new output folder or --overwrite"
            )
        done["skipped"] = True
        return done
    out_dir = Path(task.out_dir)
    output = task.output_folder
    prefix = f"part-{task.rank:05d}"
    clean_temp_files(output, prefix)
    clean_temp_files(out_dir / "rejected", f"{task.job.name}-{task.rank:05d}")
    quarantined: list[Malformed] = []
    errors: list[dict[str, Any]] = []
    reject_prefix = f"{task.job.name}-{task.rank:05d}"
    rejects = ShardWriter(out_dir / "rejected", reject_prefix, task.output_format, task.max_docs_per_shard)
    writer = ShardWriter(output, prefix, task.output_format, task.max_docs_per_shard)

    def on_reject(doc: Document, stage_id: str, reason: str) -> None:
        rejects.write(doc, stage=stage_id, reason=reason)

    def on_error(doc: Document, stage_id: str, exc: BaseException) -> None:
        errors.append({"id": doc.id, "stage": stage_id, **format_error(exc)})

    ctx = RankContext(
        rank=task.rank,
        world_size=task.world_size,
        job=task.job.name,
        work_dir=out_dir / "_work",
        strict=task.strict,
        on_reject=on_reject,
        on_error=on_error,
    )
    read_stats = StageStats("read", "read")

    def source() -> Iterator[Document]:
        for path in task.inputs:
            for doc in read_shard(path, on_malformed=quarantine):
                read_stats.add("documents")
                yield doc

    def quarantine(bad: Malformed) -> None:
        if task.strict:
            raise CorpusError(f"{bad.where()}: {bad.error}")
        read_stats.add("malformed")
        quarantined.append(bad)

    stream: Iterable[Document] = source()
    stage_stats = []
    for stage in task.job.stages:
        stats = ctx.stats_for(stage)
        stage_stats.append(stats)
        stream = _timed(stats, stream, stage, ctx)
    try:
        for doc in stream:
            writer.write(doc)
        shards = writer.close()
        reject_shards = rejects.close()
    except BaseException:
        writer.abort()
        rejects.abort()
        raise
    if quarantined:
        lines = b"".join(
            (json.dumps(asdict(q), ensure_ascii=False) + "\n").encode() for q in quarantined
        )
        atomic_write_bytes(out_dir / "quarantine" / f"{reject_prefix}.jsonl", lines)
    if errors:
        lines = b"".join((json.dumps(e, ensure_ascii=False) + "\n").encode() for e in errors)
        atomic_write_bytes(out_dir / "errors" / f"{reject_prefix}.jsonl", lines)
    result = {
        "job": task.job.name,
        "rank": task.rank,
        "config_hash": task.config_hash,
        "read": read_stats.to_dict(),
        "stages": [s.to_dict() for s in stage_stats],
        "shards": [asdict(s) for s in shards],
        "rejected_shards": [asdict(s) for s in reject_shards],
        "quarantined": [f"{q.where()}: {q.error}" for q in quarantined],
        "errors": len(errors),
    }
    atomic_write_json(marker, result)
    return result


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _clean_config(config: dict[str, Any]) -> dict[str, Any]:
    jobs = [
        {"name": j["name"], "stages": [{k: v for k, v in e.items() if k != "__source__"} for e in j["stages"]]}
        for j in config["jobs"]
    ]
    return {**config, "jobs": jobs}


class LocalExecutor:
    """A process pool over ranks (`workers=1` runs in this process, which is easiest to debug)."""

    def __init__(self, workers: int | None = None, strict: bool = False, progress: bool = True) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.strict = strict
        self.progress = progress

    def map(self, tasks: list[RankTask], description: str) -> list[dict[str, Any]]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        results: dict[int, dict[str, Any]] = {}
        with Progress(*columns, disable=not self.progress, transient=False) as bar:
            tracker = bar.add_task(description, total=len(tasks))
            if self.workers == 1 or len(tasks) == 1:
                for task in tasks:
                    results[task.rank] = run_rank(task)
                    bar.advance(tracker)
            else:
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(min(self.workers, len(tasks)), mp_context=context) as pool:
                    futures = {pool.submit(run_rank, task): task.rank for task in tasks}
                    for future in as_completed(futures):
                        results[futures[future]] = future.result()
                        bar.advance(tracker)
        return [results[rank] for rank in sorted(results)]

    def run(self, config: dict[str, Any], input_path: str | os.PathLike, out_dir: str | os.PathLike) -> dict:
        return run_pipeline(config, input_path, out_dir, self)


def run_pipeline(
    config: dict[str, Any],
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    executor: LocalExecutor | Any,
) -> dict[str, Any]:
    """Run every job in order (a barrier between jobs), then merge stats and write manifests."""
    out_dir = Path(out_dir)
    inputs = list_shards(input_path)
    jobs = build_jobs(config)
    digest = config_hash(_clean_config(config) | {"inputs": [str(p) for p in inputs]})
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        out_dir / "config.yaml", yaml.safe_dump(_clean_config(config), sort_keys=False, allow_unicode=True).encode()
    )
    world_size = len(inputs)
    started = time.time()
    job_results: list[list[dict[str, Any]]] = []
    for index, job in enumerate(jobs):
        final = index == len(jobs) - 1
        previous = out_dir / "_work" / jobs[index - 1].name if index else None
        tasks = []
        for rank in range(world_size):
            if previous is None:
                rank_inputs = [str(inputs[rank])]
            else:
                parts = sorted(previous.glob(f"part-{rank:05d}-*"))
                rank_inputs = [str(p) for p in parts if not p.name.startswith(".")]
            tasks.append(
                RankTask(
                    job=job,
                    job_index=index,
                    rank=rank,
                    world_size=world_size,
                    inputs=rank_inputs,
                    out_dir=str(out_dir),
                    final=final,
                    output_format=config["output_format"],
                    max_docs_per_shard=config.get("max_docs_per_shard"),
                    strict=getattr(executor, "strict", False),
                    config_hash=digest,
                )
            )
        job_results.append(executor.map(tasks, f"{job.name} ({len(job.stages)} stages)"))
    return finish_run(out_dir, input_path, config, jobs, job_results, time.time() - started)


def finish_run(
    out_dir: Path,
    input_path: str | os.PathLike,
    config: dict[str, Any],
    jobs: list[Job],
    job_results: list[list[dict[str, Any]]],
    seconds: float,
) -> dict[str, Any]:
    final = job_results[-1]
    write_manifest(out_dir / "data", [ShardInfo(**s) for r in final for s in r["shards"]],
                   format=config["output_format"])
    rejected = [ShardInfo(**s) for results in job_results for r in results for s in r["rejected_shards"]]
    write_manifest(out_dir / "rejected", rejected, format=config["output_format"])
    read = merge_stage_lists([[r["read"]] for r in job_results[0]])[0]["counters"]
    stats = {
        "input": str(input_path),
        "output": str(out_dir),
        "documents_in": int(read.get("documents", 0)),
        "documents_kept": sum(s["documents"] for r in final for s in r["shards"]),
        "documents_rejected": sum(s.documents for s in rejected),
        "malformed": int(read.get("malformed", 0)),
        "quarantined": [q for r in job_results[0] for q in r["quarantined"]],
        "errors": sum(r["errors"] for results in job_results for r in results),
        "seconds": round(seconds, 3),
        "resumed_ranks": sum(1 for results in job_results for r in results if r.get("skipped")),
        "jobs": [
            {"name": job.name, "stages": merge_stage_lists(r["stages"] for r in results)}
            for job, results in zip(jobs, job_results, strict=True)
        ],
    }
    # Stages that need the finished run (e.g. the disparate-impact audit) add their summary here.
    for job in jobs:
        for stage in job.stages:
            if callable(summarize := getattr(stage, "summarize_run", None)):
                stats.update(summarize(out_dir, stats))
    atomic_write_json(out_dir / "stats.json", stats)
    return stats
