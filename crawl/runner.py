"""Run a crawl, or ingest web archives. Scrapy's reactor cannot restart inside one process, so each crawl
gets a child process: `crawl()` is the importable entry point, `python -m corpus.crawl.runner CONFIG.json` the child.

The child runs in its own session so a terminal's Ctrl-C reaches only the parent, which forwards exactly one
SIGINT (Scrapy: finish requests in flight, publish shards, stop); a second Ctrl-C forwards another (Scrapy:
stop now; the next run resumes from the journal). The child stops by itself if the parent disappears.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from corpus.core.errors import CorpusError
from corpus.core.io import (
    ShardInfo,
    atomic_write_json,
    has_manifest,
    read_manifest,
    write_dataset_card,
    write_manifest,
)
from corpus.core.runs import claim_output
from corpus.crawl.settings import build_settings
from corpus.crawl.stats import summarize
from corpus.crawl.urls import check_url

INTERRUPTED = 130


def read_seeds(path: str | os.PathLike) -> list[str]:
    """One URL per line; blank lines and `#` comments are ignored; a bad line names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: seeds file does not exist")
    seeds = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            seeds.append(check_url(line))
        except CorpusError as err:
            raise CorpusError(f"{path}:{number}: {err}") from None
    return seeds


def crawl(
    urls: list[str],
    out: str | Path,
    *,
    max_pages: int | None = 100,
    depth: int = 3,
    fast: bool = False,
    obey_robots: bool = True,
    contact: str | None = None,
    output_format: str = "parquet",
    allowed_domains: list[str] | None = None,
    progress: bool = True,
    allow: list[str] | None = None,
    deny: list[str] | None = None,
    sitemaps: bool = True,
    favor: str = "precision",
    extract: bool = True,
    store_html: bool = False,
    extract_timeout: float | None = None,
    extract_workers: int | None = None,
    max_size: int | None = None,
    delay: float | None = None,
    per_domain: int | None = None,
    warc_out: str | Path | None = None,
    warc_max_bytes: int | None = None,
    job_dir: str | Path | None = None,
    redis_url: str | None = None,
    redis_key: str = "corpus",
    overwrite: bool = False,
    settings: dict[str, Any] | None = None,
    inputs: list[str | Path] | None = None,
) -> dict[str, Any]:
    """Crawl from `urls` into `out/data` shards; returns Scrapy's flat stats (also `out/crawl_stats.json`;
    the summary is `out/stats.json`). Re-running with the same `out` (or `job_dir`) resumes; the counters of
    every run into `out` add up, and each run's record is kept in `out/.corpus-run.json` (corpus.core.runs).
    `inputs`: files the crawl reads (a seeds file), which `out` must not hold."""
    if not urls:
        raise CorpusError("give at least one seed URL (arguments or --seeds FILE)")
    seeds = [check_url(u) for u in urls]
    out = Path(out)
    job_dir = Path(job_dir) if job_dir else out / "_job"
    _check_options(max_pages=max_pages, depth=depth, delay=delay, per_domain=per_domain, max_size=max_size,
                   extract_timeout=extract_timeout, extract_workers=extract_workers, output_format=output_format)
    writes = list(CRAWL_WRITES)
    if warc_out and Path(warc_out).resolve().parent == out.resolve():
        writes.append(Path(warc_out).name)
    for option, folder in (("--job-dir", job_dir), ("--warc-out", warc_out)):
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise CorpusError(f"{option} {folder}: exists and is a file, not a folder")
    run = claim_output(out, "crawl", inputs=inputs or (), overwrite=overwrite, writes=writes)
    if overwrite:
        (job_dir / "frontier.jsonl").unlink(missing_ok=True)  # a --job-dir outside OUT forgets too
    job_dir.mkdir(parents=True, exist_ok=True)
    if not obey_robots:
        print("warning: robots.txt is being ignored (--ignore-robots); crawl only sites you may crawl",
              file=sys.stderr)
    overrides: dict[str, Any] = {
        "ROBOTSTXT_OBEY": obey_robots,
        "CORPUS_DEPTH": depth,
        "CORPUS_OUTPUT": str(out),
        "CORPUS_FORMAT": output_format,
        "CORPUS_JOB_DIR": str(job_dir),
        "CORPUS_EXTRACT_TIMEOUT": extract_timeout,
        "CORPUS_EXTRACT_WORKERS": extract_workers,
        "DOWNLOAD_MAXSIZE": max_size,
        "DOWNLOAD_DELAY": delay,
        "CONCURRENT_REQUESTS_PER_DOMAIN": per_domain,
        "CORPUS_WARC_DIR": str(warc_out) if warc_out else None,
        "CORPUS_WARC_MAX_BYTES": warc_max_bytes,
    }
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise CorpusError(f"--redis-url {redis_url!r}: expected redis://HOST:PORT[/DB], rediss://... or unix://PATH")
    if redis_url:
        overrides.update({
            "REDIS_URL": redis_url,
            "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "SCHEDULER_PERSIST": True,  # never let the first process to finish wipe the shared frontier
            "SCHEDULER_QUEUE_KEY": f"{redis_key}:requests",
            "SCHEDULER_DUPEFILTER_KEY": f"{redis_key}:dupefilter",
            "CORPUS_REDIS_KEY": redis_key,
        })
    job = {
        "seeds": seeds,
        "spider": {"allowed_domains": allowed_domains, "max_pages": max_pages, "depth": depth, "allow": allow,
                   "deny": deny, "sitemaps": sitemaps, "favor": favor, "extract": extract,
                   "store_html": store_html},
        "progress": progress,
        "parent_pid": os.getpid(),
        "settings": build_settings(fast=fast, contact=contact, **{**overrides, **(settings or {})}),
    }
    from corpus.crawl.extract import ExtractOptions
    from corpus.crawl.urls import UrlRules

    UrlRules([], allow, deny)  # bad regexes and options fail here, as user errors, not in the child
    ExtractOptions(favor=favor)
    config_path = out / "crawl_config.json"
    atomic_write_json(config_path, job)
    returncode = _run_and_forward_sigint([sys.executable, "-m", "corpus.crawl.runner", str(config_path)])
    if returncode == 3:
        run.fail("another crawl was running with this job folder")
        raise CorpusError(f"{job_dir}: another crawl is running with this job folder ({_lock_owner(job_dir)})")
    if returncode == INTERRUPTED:
        run.fail("interrupted")
        raise KeyboardInterrupt
    if returncode < 0:
        run.fail(f"killed by signal {-returncode}")
        raise CorpusError(f"crawl process was killed by signal {-returncode}; run the same command again to resume")
    if returncode != 0:
        run.fail(f"exit code {returncode}")
        raise CorpusError(f"crawl failed (exit code {returncode}); see the messages above")
    flat = json.loads((out / "crawl_stats.json").read_text())
    run.finish(pages=int(flat.get("corpus/run_pages", flat.get("corpus/pages", 0))),
               documents=int(flat.get("corpus/run_documents", flat.get("corpus/documents", 0))),
               failed_seeds=len(flat.get("corpus/failed_seeds") or []))
    return flat


# What a crawl writes in its output folder: the only names `--overwrite` may remove there.
CRAWL_WRITES = ("data", "_job", "crawl_config.json", "crawl_stats.json", "stats.json", "README.md")
# Scrapy counters that are not "how many" (times, reasons, values set to a total): never added across runs.
NOT_ADDED = ("start_time", "finish_time", "finish_reason", "corpus/documents_published", "corpus/resumed_pending",
             "memusage/max", "memusage/startup", "corpus/failed_seeds", "log_count/")


def _check_options(**options: Any) -> None:
    """Ranges of the crawl's numeric options, checked before any work (a negative depth crawls nothing)."""
    from pydantic import BaseModel, ConfigDict, Field, ValidationError

    class CrawlOptions(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=False)
        max_pages: int | None = Field(None, ge=0)
        depth: int = Field(3, ge=0)
        delay: float | None = Field(None, ge=0)
        per_domain: int | None = Field(None, ge=1)
        max_size: int | None = Field(None, ge=1)
        extract_timeout: float | None = Field(None, gt=0)
        extract_workers: int | None = Field(None, ge=0)
        output_format: str = Field("parquet", pattern="^(parquet|jsonl|jsonl.gz)$")

    try:
        CrawlOptions(**options)
    except ValidationError as err:
        raise CorpusError(validation_message(err)) from None


def validation_message(err: Any, prefix: str = "--") -> str:
    """pydantic's errors as one line: `--depth -1: must be >= 0; ...`."""
    parts = []
    for problem in err.errors():
        name = ".".join(str(p) for p in problem["loc"])
        option = f"{prefix}{name.replace('_', '-')}" if prefix == "--" else f"{prefix}{name}"
        parts.append(f"{option} {problem.get('input')!r}: {problem['msg'].lower()}")
    return "; ".join(parts)


def merge_run_stats(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """One folder's counters over all its runs: counts add up, times span them; this run's own are kept too."""
    merged = dict(current)
    for key, value in previous.items():
        if key.startswith(NOT_ADDED) or key.startswith("corpus/run_") or key in ("corpus/runs",):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            now = current.get(key, 0)
            if isinstance(now, int | float) and not isinstance(now, bool):
                merged[key] = now + value
        elif key not in merged:
            merged[key] = value
    if "start_time" in previous:
        merged["start_time"] = previous["start_time"]
    merged["corpus/runs"] = int(previous.get("corpus/runs", 1)) + 1
    merged["corpus/run_pages"] = int(current.get("corpus/pages", 0))
    merged["corpus/run_documents"] = int(current.get("corpus/documents", 0))
    return merged


def _lock_owner(job_dir: Path) -> str:
    try:
        return f"pid {(job_dir / 'lock').read_text().strip()}"
    except OSError:
        return "unknown pid"


def _die_with_parent(parent: int) -> Any:
    """For the child, between fork and exec: SIGKILL it when the parent dies, even by SIGKILL (PR_SET_PDEATHSIG).

    Why: a crawler outliving `corpus crawl` (killed by a scheduler, a container stop, the OOM killer) goes on
    fetching and holds the job folder's lock, so the resume refuses. Shards and the journal are written so that a
    SIGKILL at any point loses nothing (corpus.crawl.state)."""

    def preexec() -> None:  # pragma: no cover - runs in the forked child
        try:
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
        except (OSError, AttributeError):
            return
        if os.getppid() != parent:  # the parent died before prctl: nobody would kill us
            os._exit(1)

    return preexec


def _run_and_forward_sigint(command: list[str]) -> int:
    proc = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
    interrupts = 0
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            interrupts += 1
            if interrupts == 1:
                print("\nstopping: finishing pages in flight and publishing shards (Ctrl-C again to stop at once)",
                      file=sys.stderr)
            proc.send_signal(signal.SIGINT)


# --- the child process ------------------------------------------------------------------------------


def _lock(job_dir: Path) -> Any:
    handle = open(job_dir / "lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(3)
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _watch_parent(parent_pid: int) -> None:
    """If the process that started us dies (even by SIGKILL), stop gracefully instead of running orphaned."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=watch, daemon=True).start()


def _run_child(config_path: str) -> int:
    from scrapy.crawler import CrawlerProcess

    from corpus.crawl.spiders import SiteSpider

    job = json.loads(Path(config_path).read_text())
    settings = dict(job["settings"])
    job_dir = Path(settings["CORPUS_JOB_DIR"])
    lock = _lock(job_dir)
    if job.get("parent_pid"):
        _watch_parent(job["parent_pid"])
    settings["ITEM_PIPELINES"] = {"corpus.crawl.pipelines.ShardPipeline": 300}
    if job.get("progress"):
        settings["EXTENSIONS"] = {"corpus.crawl.progress.CrawlProgress": 500}
        settings["CORPUS_PROGRESS_TOTAL"] = job["spider"].get("max_pages")
    if settings.get("REDIS_URL"):
        from scrapy.core.engine import ExecutionEngine

        # An idle process polls the shared queue on the engine's heartbeat (5 s by default); poll faster so
        # work another process adds is picked up promptly.
        ExecutionEngine._SLOT_HEARTBEAT_INTERVAL = 0.5  # noqa: SLF001
    import logging

    process = CrawlerProcess(settings)
    # Failures are counted in the stats and failed seeds named once each; Scrapy's own ERROR lines for them
    # carry Twisted tracebacks that bury the summary.
    for name in ("scrapy.downloadermiddlewares.retry", "scrapy.downloadermiddlewares.robotstxt"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    crawler = process.create_crawler(SiteSpider)
    process.crawl(crawler, seeds=job["seeds"], **job["spider"])
    profile_to = os.environ.get("CORPUS_CRAWL_PROFILE")  # benchmarks/crawl.py --profile
    if profile_to:
        import cProfile

        cProfile.runctx("process.start()", globals(), {"process": process}, profile_to)
    else:
        process.start()
    try:
        crawler.stats  # noqa: B018 - unset when the crawl could not start (the error is logged above)
    except RuntimeError:
        return 1
    flat = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in sorted(crawler.stats.get_stats().items())}
    out = Path(settings["CORPUS_OUTPUT"])
    previous = out / "crawl_stats.json"
    if previous.exists():  # an earlier run into this folder: add up, never replace its record
        try:
            flat = merge_run_stats(json.loads(previous.read_text()), flat)
        except ValueError:
            pass
    try:  # what the folder holds now, whichever run wrote it
        flat["corpus/documents_published"] = int(read_manifest(out / "data").get("documents", 0))
    except CorpusError:
        pass
    atomic_write_json(out / "crawl_stats.json", flat)
    atomic_write_json(out / "stats.json", summarize(flat))
    write_dataset_card(out, settings.get("CORPUS_FORMAT", "parquet"))
    lock.close()
    return INTERRUPTED if flat.get("finish_reason") == "shutdown" else 0


# --- web archives -----------------------------------------------------------------------------------


ARCHIVE_SUFFIXES = (".warc", ".warc.gz", ".wet", ".wet.gz", ".arc", ".arc.gz")


def expand_archives(patterns: list[str]) -> list[Path]:
    """Files named by paths, globs or folders (all archives inside); an empty match is a user error."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        matches = [Path(p) for p in sorted(glob.glob(os.path.expanduser(pattern), recursive=True))]
        if not matches:
            raise CorpusError(f"{pattern}: no such file (or no file matches the pattern)")
        for match in matches:
            if match.is_dir():
                for child in sorted(match.rglob("*")):
                    if child.is_file() and child.name.endswith(ARCHIVE_SUFFIXES):
                        found.setdefault(child, None)
            elif match.is_file():
                found.setdefault(match, None)
    if not found:
        raise CorpusError(f"{', '.join(patterns)}: no WARC/WET files found")
    return list(found)


def crawl_archives(
    inputs: list[str],
    out: str | Path,
    *,
    workers: int | None = None,
    output_format: str = "parquet",
    favor: str = "precision",
    store_html: bool = False,
    extract_timeout: float = 10.0,
    max_size: int = 5 * 1024 * 1024,
    shard_docs: int = 10_000,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Ingest WARC (HTML responses -> extraction) and WET (plain text) files into `out/data` shards, one
    worker process per file at a time. Each finished file leaves a marker, so a rerun skips it; shards of a
    file that did not finish are removed and the file is read again (every record exactly once)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from corpus.crawl.extract import ExtractOptions
    from corpus.crawl.warc import archive_key, ingest_file

    paths = expand_archives(inputs)
    out = Path(out)
    run = claim_output(out, "crawl", inputs=paths, overwrite=overwrite, writes=CRAWL_WRITES)
    data = out / "data"
    markers = out / "_job" / "warc"
    data.mkdir(parents=True, exist_ok=True)
    markers.mkdir(parents=True, exist_ok=True)
    options = ExtractOptions(favor=favor, timeout=extract_timeout, keep_html=store_html)
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for path in paths:
        key = archive_key(path)
        marker = markers / f"{key}.json"
        if marker.exists():
            results[key] = json.loads(marker.read_text())
            continue
        for stale in data.glob(f"warc-{key}-*"):
            stale.unlink()  # a file that did not finish last time is read again from the start
        todo.append(path)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    started = time.monotonic()
    bar = Progress(TextColumn("archives"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[docs]} docs"),
                   TimeElapsedColumn(), disable=not progress, transient=False)
    task = bar.add_task("archives", total=len(paths), completed=len(results), docs=0)
    docs = sum(r["counts"].get("documents", 0) for r in results.values())
    with bar, ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(ingest_file, str(p), str(data), output_format, options, max_size, shard_docs)
                   for p in todo]
        try:
            for future in as_completed(futures):
                result = future.result()
                atomic_write_json(markers / f"{result['key']}.json", result)
                results[result["key"]] = result
                docs += result["counts"].get("documents", 0)
                bar.update(task, advance=1, docs=docs)
                _write_archive_manifest(data, output_format, results)
        except KeyboardInterrupt:
            for future in futures:
                future.cancel()
            raise
        except BrokenProcessPool as err:
            raise CorpusError(f"a worker process died ({err}); finished files are kept, run again to continue") \
                from None
    _write_archive_manifest(data, output_format, results)
    totals: Counter[str] = Counter()
    for result in results.values():
        totals.update(result["counts"])
    flat = {f"corpus/{k}": v for k, v in totals.items()}
    flat["elapsed_time_seconds"] = time.monotonic() - started
    flat["finish_reason"] = "finished"
    summary = {
        "files": len(paths),
        "files_failed": [{"path": r["path"], "error": r["error"]} for r in results.values() if r.get("error")],
        "documents": int(totals.get("documents", 0)),
        "records": {k[8:]: v for k, v in sorted(totals.items()) if k.startswith("records/")},
        "extraction_failures": {k[15:]: v for k, v in sorted(totals.items()) if k.startswith("extract_failed/")},
        "skipped": {k[8:]: v for k, v in sorted(totals.items()) if k.startswith("skipped/")},
        "charset_repairs": {k[8:]: v for k, v in sorted(totals.items()) if k.startswith("charset/")},
        "duplicates_skipped": {"documents": int(totals.get("duplicates/document", 0))},
        "elapsed_seconds": round(flat["elapsed_time_seconds"], 2),
        "cpu_seconds": round(float(totals.get("cpu_seconds", 0)), 2),
        "workers": workers,
    }
    atomic_write_json(out / "crawl_stats.json", flat)
    atomic_write_json(out / "stats.json", summary)
    write_dataset_card(out, output_format)
    run.finish(files=len(paths), documents=summary["documents"], files_failed=len(summary["files_failed"]))
    return summary


def _write_archive_manifest(data: Path, fmt: str, results: dict[str, dict[str, Any]]) -> None:
    shards = [ShardInfo(**s) for r in results.values() for s in r["shards"]]
    if has_manifest(data):  # keep shards of other origins (a crawl into the same folder)
        shards += [ShardInfo(**s) for s in read_manifest(data).get("shards", []) if not s["name"].startswith("warc-")]
    write_manifest(data, shards, format=fmt)


if __name__ == "__main__":
    sys.exit(_run_child(sys.argv[1]))
