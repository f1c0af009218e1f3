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

import copy
import hashlib
import inspect
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corpus.core.config import Job, build_jobs
from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.io import (
    Malformed,
    ShardInfo,
    ShardWriter,
    atomic_write_bytes,
    atomic_write_json,
    clean_temp_files,
    list_shards,
    read_shard,
    write_dataset_card,
    write_manifest,
)
from corpus.core.pieces import plan, read_piece
from corpus.core.runs import check_separate, claim_output
from corpus.core.stage import RankContext, Stage, format_error
from corpus.core.stats import StageStats, merge_stage_lists

# What a curate run writes in its output folder: the only names `--overwrite` may remove there.
CURATE_WRITES = ("data", "rejected", "quarantine", "errors", "stats.json", "config.yaml", "_work", "README.md",
                 "dry_run.json")
DEFAULT_MAX_ERROR_SHARE = 0.1


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
    dry_run: bool = False
    samples: int = 3  # dry run: rejected documents kept per (stage, reason)
    limit: int | None = None  # read at most this many documents per input shard
    piece: tuple[int, int] | None = None  # (index, parts) of a large input shard split across ranks
    fields: dict[str, str] | None = None  # input field names of the text and id ({"text": "content"})

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


class _CountingWriter:
    """Stands in for a ShardWriter in a dry run: counts, writes nothing."""

    def __init__(self) -> None:
        self.documents = 0

    def write(self, doc: Document, **extra: Any) -> None:
        self.documents += 1

    def close(self) -> list[ShardInfo]:
        return []

    def abort(self) -> None:
        pass


class _SampleWriter(_CountingWriter):
    """Dry run rejects: keeps the first few documents of every (stage, reason)."""

    def __init__(self, per_reason: int) -> None:
        super().__init__()
        self.per_reason = per_reason
        self.samples: dict[str, list[dict[str, Any]]] = {}

    def write(self, doc: Document, **extra: Any) -> None:
        super().write(doc)
        key = f"{extra.get('stage')}/{extra.get('reason')}"
        bucket = self.samples.setdefault(key, [])
        if len(bucket) < self.per_reason:
            text = doc.text if len(doc.text) <= 500 else doc.text[:500] + " …"
            bucket.append({"id": doc.id, "text": text, "metadata": doc.metadata})


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
    reject_prefix = f"{task.job.name}-{task.rank:05d}"
    clean_temp_files(output, prefix)
    clean_temp_files(out_dir / "rejected", reject_prefix)
    quarantined: list[Malformed] = []
    errors: list[dict[str, Any]] = []
    if task.dry_run:
        rejects: Any = _SampleWriter(task.samples)
    else:
        rejects = ShardWriter(out_dir / "rejected", reject_prefix, task.output_format, task.max_docs_per_shard)
    if task.dry_run and task.final:
        writer: Any = _CountingWriter()
    else:
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

    def quarantine(bad: Malformed) -> None:
        if task.strict:
            raise CorpusError(f"{bad.where()}: {bad.error}")
        read_stats.add("malformed")
        quarantined.append(bad)

    def source() -> Iterator[Document]:
        for path in task.inputs:
            before = (read_stats["documents"], read_stats["malformed"])
            if task.piece is not None:
                docs = read_piece(path, task.piece[0], task.piece[1], quarantine, task.fields)
            else:
                docs = read_shard(path, on_malformed=quarantine, fields=task.fields if task.job_index == 0 else None)
            for n, doc in enumerate(docs):
                if task.limit is not None and n >= task.limit:
                    break
                read_stats.add("documents")
                yield doc
            unread = (read_stats["documents"], read_stats["malformed"]) == before
            if task.job_index == 0 and task.piece is None and unread:
                # An empty input is suspicious (a failed download, a truncated copy): say so.
                read_stats.add("empty_files")
                quarantine(Malformed(str(path), None, "empty file: no records"))

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
    if task.dry_run:
        result["kept"] = writer.documents if isinstance(writer, _CountingWriter) else sum(s.documents for s in shards)
        result["rejected"] = rejects.documents
        result["samples"] = rejects.samples
    else:
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


def _die_with_parent() -> None:  # pragma: no cover - runs in worker processes
    """Workers of a killed run must not go on writing: ask Linux to kill them with their parent."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def lean_arrow() -> None:  # pragma: no cover - runs in worker processes
    """Make Arrow give freed memory back in a worker process of ours (unless ARROW_DEFAULT_MEMORY_POOL says
    otherwise).

    pyarrow's default allocator (mimalloc) keeps freed pages for reuse: about a quarter of a curation
    worker's peak on the dedup benchmark (190 -> 145 MB per worker), at no measured cost in speed. Set
    before pyarrow is imported, the system allocator takes mimalloc's place entirely; afterwards it can
    only become the default pool. Your own process keeps its default.
    """
    import sys

    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    if "pyarrow" in sys.modules:
        import pyarrow as pa

        pool = os.environ["ARROW_DEFAULT_MEMORY_POOL"]
        if pool == "system" and pa.default_memory_pool().backend_name != "system":
            pa.set_memory_pool(pa.system_memory_pool())


def _init_worker() -> None:  # pragma: no cover - runs in worker processes
    _die_with_parent()
    lean_arrow()


class LocalExecutor:
    """A process pool over ranks (`workers=1` runs in this process, which is easiest to debug)."""

    def __init__(self, workers: int | None = None, strict: bool = False, progress: bool = True) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.strict = strict
        self.progress = progress

    def map(self, tasks: list[Any], description: str,
            fn: Callable[[Any], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """`fn(task)` (default `run_rank`) for every task; results in rank order. Tasks need a `rank`."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        fn = fn or run_rank

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        results: dict[int, dict[str, Any]] = {}
        with Progress(*columns, disable=not self.progress, transient=False, console=_stderr()) as bar:
            tracker = bar.add_task(description, total=len(tasks))
            if self.workers == 1 or len(tasks) == 1:
                for task in tasks:
                    results[task.rank] = fn(task)
                    bar.advance(tracker)
            else:
                context = multiprocessing.get_context("spawn")
                with ProcessPoolExecutor(min(self.workers, len(tasks)), mp_context=context,
                                         initializer=_init_worker) as pool:
                    futures = {pool.submit(fn, task): task.rank for task in tasks}
                    for future in as_completed(futures):
                        results[futures[future]] = future.result()
                        bar.advance(tracker)
        return [results[rank] for rank in sorted(results)]

    def run(self, config: dict[str, Any], input_path: str | os.PathLike, out_dir: str | os.PathLike,
            **options: Any) -> dict:
        return run_pipeline(config, input_path, out_dir, self, **options)


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """One run per output folder at a time: two writers would race on the same shards."""
    import fcntl

    path = out_dir / "_work" / "lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise CorpusError(f"{out_dir}: another run (pid {owner}) is writing to this folder; "
                              "wait for it to finish or choose another output folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_pipeline(
    config: dict[str, Any],
    input_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    executor: LocalExecutor | Any,
    dry_run: bool = False,
    samples: int = 3,
    limit: int | None = None,
    overwrite: bool = False,
    max_error_share: float = DEFAULT_MAX_ERROR_SHARE,
    fields: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run every job in order (a barrier between jobs), then merge stats and write manifests.

    `dry_run`: run everything but write no shards (intermediate job outputs go to a temporary folder
    that is removed); the returned stats carry `samples` of rejected documents per stage and reason.
    `limit`: read at most this many documents from each input shard (to try a config quickly).
    `overwrite`: start again, removing only what an earlier curate run wrote in `out_dir` (corpus.core.runs).
    `fields`: where input records keep their text and id when not in `text` and `id` ({"text": "content"}).
    `max_error_share`: a run whose unreadable records and stage errors exceed this share of its input, or that
    keeps nothing, is recorded as failed and its stats carry `failed` (the CLI then exits non-zero).
    """
    out_dir = Path(out_dir)
    check_separate(out_dir, [input_path])
    inputs = list_shards(input_path)
    jobs = build_jobs(config)
    resolved = resolve_defaults(_clean_config(config))
    digest = config_hash(resolved | {"inputs": [str(p) for p in inputs], "limit": limit}
                         | ({"fields": fields} if fields else {}))
    if dry_run:
        work = Path(tempfile.mkdtemp(prefix="corpus-dry-run-"))
        try:
            return _run_jobs(resolved, jobs, inputs, input_path, work, executor, digest,
                             dry_run=True, samples=samples, limit=limit, fields=fields)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    run = claim_output(out_dir, "curate", inputs=[input_path], overwrite=overwrite, writes=CURATE_WRITES)
    with _exclusive(out_dir):
        atomic_write_bytes(
            out_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True).encode()
        )
        try:
            stats = _run_jobs(resolved, jobs, inputs, input_path, out_dir, executor, digest, limit=limit,
                              fields=fields)
        except BaseException as err:
            run.fail(f"{type(err).__name__}: {err}"[:500])
            raise
    failed = run_problem(stats, max_error_share)
    if failed:
        stats["failed"] = failed
        atomic_write_json(out_dir / "stats.json", stats)
        run.fail(failed, documents_in=stats["documents_in"], documents_kept=stats["documents_kept"])
    else:
        run.finish(documents_in=stats["documents_in"], documents_kept=stats["documents_kept"])
    return stats


def run_problem(stats: dict[str, Any], max_error_share: float = DEFAULT_MAX_ERROR_SHARE) -> str | None:
    """Why a finished run is not usable, in one line (None when it is): nothing kept, or too many errors."""
    malformed = int(stats.get("malformed", 0)) + int(stats.get("empty_files", 0))
    errors = int(stats.get("errors", 0))
    seen = int(stats.get("documents_in", 0)) + malformed
    if not stats.get("documents_in"):
        return (f"no document could be read from the input ({stats.get('malformed', 0)} unreadable record(s), "
                f"{stats.get('empty_files', 0)} empty file(s); see quarantine/)")
    if (malformed + errors) / seen > max_error_share:
        return (f"{malformed} unreadable record(s) and {errors} stage error(s) in {seen} input record(s): more than "
                f"{max_error_share:.0%} failed (see quarantine/ and errors/; --max-error-share changes the limit)")
    if stats.get("documents_kept", 0) == 0:
        return f"0 of {stats.get('documents_in', 0)} documents kept: the output is empty (see rejected/ and stats.json)"
    return None


def _run_jobs(config: dict[str, Any], jobs: list[Job], inputs: list[Path], input_path: str | os.PathLike,
              out_dir: Path, executor: Any, digest: str, dry_run: bool = False, samples: int = 3,
              limit: int | None = None, fields: dict[str, str] | None = None) -> dict[str, Any]:
    split = config.get("split_shards_mb")
    piece_bytes = int(split * 1_000_000) if split else None
    # One rank per input shard, or per piece of a shard larger than `split_shards_mb`.
    pieces: list[tuple[Path, tuple[int, int] | None]] = []
    for path in inputs:
        parts = plan(path, piece_bytes)
        pieces += [(path, (i, parts) if parts > 1 else None) for i in range(parts)]
    world_size = len(pieces)
    started = time.time()
    job_results: list[list[dict[str, Any]]] = []
    for index, job in enumerate(jobs):
        final = index == len(jobs) - 1
        previous = out_dir / "_work" / jobs[index - 1].name if index else None
        tasks = []
        for rank in range(world_size):
            if previous is None:
                rank_inputs = [str(pieces[rank][0])]
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
                    dry_run=dry_run,
                    samples=samples,
                    limit=limit if index == 0 else None,
                    piece=pieces[rank][1] if index == 0 else None,
                    fields=fields if index == 0 else None,
                )
            )
        job_results.append(executor.map(tasks, f"{job.name} ({len(job.stages)} stages)"))
    if dry_run:
        return dry_run_summary(input_path, jobs, job_results, time.time() - started)
    return finish_run(out_dir, input_path, config, jobs, job_results, time.time() - started)


def resolve_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """The config with every stage's constructor defaults filled in: what actually ran, reproducibly."""
    from corpus.core.config import resolve_stage_class, stage_params

    resolved = copy.deepcopy(config)
    for job in resolved["jobs"]:
        for index, entry in enumerate(job["stages"]):
            cls = resolve_stage_class(entry["stage"], entry.get("__source__", ""))
            filled = {"stage": entry["stage"], "id": entry["id"]}
            for name, param in inspect.signature(cls.__init__).parameters.items():
                if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                    continue
                if name in entry:
                    filled[name] = entry[name]
                elif param.default is not param.empty and _plain(param.default):
                    filled[name] = _listify(param.default)
            filled.update(stage_params(entry))
            job["stages"][index] = filled
    return resolved


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _listify(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_listify(v) for v in value]
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    return value


def _read_summary(job_results: list[list[dict[str, Any]]]) -> dict[str, Any]:
    read = merge_stage_lists([[r["read"]] for r in job_results[0]])[0]["counters"]
    quarantined = [q for r in job_results[0] for q in r["quarantined"]]
    per_file: dict[str, int] = {}
    for entry in quarantined:
        where = entry.split(": ", 1)[0]
        name = where.rsplit(":", 1)[0] if where.rsplit(":", 1)[-1].isdigit() else where
        per_file[name] = per_file.get(name, 0) + 1
    return {
        "documents_in": int(read.get("documents", 0)),
        "malformed": int(read.get("malformed", 0)) - int(read.get("empty_files", 0)),
        "empty_files": int(read.get("empty_files", 0)),
        "quarantined": quarantined,
        "quarantined_per_file": dict(sorted(per_file.items())),
    }


def dry_run_summary(input_path: str | os.PathLike, jobs: list[Job], job_results: list[list[dict[str, Any]]],
                    seconds: float) -> dict[str, Any]:
    """What a run would keep and remove, with a few rejected documents per stage and reason."""
    samples: dict[str, list[dict[str, Any]]] = {}
    for results in job_results:
        for r in results:
            for key, docs in r["samples"].items():
                bucket = samples.setdefault(key, [])
                bucket.extend(docs[: max(0, len(docs))])
    per_reason = max((len(v) for r in job_results for x in r for v in x["samples"].values()), default=0)
    return {
        "dry_run": True,
        "input": str(input_path),
        **_read_summary(job_results),
        "documents_kept": sum(r["kept"] for r in job_results[-1]),
        "documents_rejected": sum(r["rejected"] for results in job_results for r in results),
        "errors": sum(r["errors"] for results in job_results for r in results),
        "seconds": round(seconds, 3),
        "jobs": [
            {"name": job.name, "stages": merge_stage_lists(r["stages"] for r in results)}
            for job, results in zip(jobs, job_results, strict=True)
        ],
        "samples": {k: v[:per_reason] for k, v in sorted(samples.items())},
    }


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
    read = _read_summary(job_results)
    stats = {
        "input": str(input_path),
        "output": str(out_dir),
        "documents_in": read["documents_in"],
        "documents_kept": sum(s["documents"] for r in final for s in r["shards"]),
        "documents_rejected": sum(s.documents for s in rejected),
        **{k: v for k, v in read.items() if k != "documents_in"},
        "errors": sum(r["errors"] for results in job_results for r in results),
        "seconds": round(seconds, 3),
        "resumed_ranks": sum(1 for results in job_results for r in results if r.get("skipped")),
        "jobs": [
            {"name": job.name, "stages": merge_stage_lists(r["stages"] for r in results)}
            for job, results in zip(jobs, job_results, strict=True)
        ],
    }
    # Stages that summarise the whole run (e.g. the disparate-impact audit) add their part now.
    for job in jobs:
        for stage in job.stages:
            summarize = getattr(stage, "summarize_run", None)
            if callable(summarize):
                stats.update(summarize(out_dir, stats))
    atomic_write_json(out_dir / "stats.json", stats)
    write_dataset_card(out_dir, config["output_format"])
    return stats
