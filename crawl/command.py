"""The `corpus crawl` command's work, kept out of corpus/cli.py so that file stays a list of thin commands."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from corpus.core.errors import CorpusError
from corpus.crawl.stats import summary_table

SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str | int | None, option: str) -> int | None:
    """'5M', '200k', '1GiB' or a number of bytes."""
    if text is None or isinstance(text, int):
        return text
    match = SIZE.match(text)
    if not match:
        raise CorpusError(f"{option} {text!r}: expected a size such as 500k, 5M or 1G")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def parse_settings(pairs: list[str] | None) -> dict[str, Any]:
    """`KEY=VALUE` Scrapy settings; values are JSON when they parse as JSON (numbers, true, lists)."""
    settings: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CorpusError(f"--setting {pair!r}: expected KEY=VALUE, e.g. DOWNLOAD_TIMEOUT=10")
        try:
            settings[key.strip()] = json.loads(value)
        except ValueError:
            settings[key.strip()] = value
    return settings


def run(
    urls: list[str],
    out: Path,
    *,
    seeds_file: Path | None = None,
    from_warc: list[str] | None = None,
    workers: int | None = None,
    max_size: str | None = None,
    warc_max_size: str | None = None,
    setting: list[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run a crawl (or an archive ingestion) and print its summary table; returns the summary."""
    from corpus.crawl.runner import crawl, crawl_archives, read_seeds

    size = parse_size(max_size, "--max-size")
    if workers is not None and workers < 1:
        raise CorpusError(f"--workers {workers}: must be at least 1")
    if from_warc:
        if urls or seeds_file:
            raise CorpusError("give either seed URLs or --from-warc, not both")
        summary = crawl_archives(
            from_warc, out, workers=workers, output_format=options["output_format"], favor=options["favor"],
            store_html=options["store_html"], extract_timeout=options["extract_timeout"] or 10.0,
            max_size=size or 5 * 1024 * 1024, overwrite=options["overwrite"],
        )
        table_rows = summary_table({**summary, "finish_reason": f"{summary['files']} archive file(s)"}, "ingest")
    else:
        seeds = list(urls) + (read_seeds(seeds_file) if seeds_file else [])
        crawl(seeds, out, max_size=size, warc_max_bytes=parse_size(warc_max_size, "--warc-max-size"),
              settings=parse_settings(setting), inputs=[seeds_file] if seeds_file else None, **options)
        summary = json.loads((out / "stats.json").read_text())
        table_rows = summary_table(summary)
    console = Console()
    console.print(table_rows)
    errors = Console(stderr=True)
    for seed in summary.get("failed_seeds") or []:
        errors.print(escape(f"seed failed: {seed['url']}: {seed['reason'].replace('_', ' ')}"), highlight=False,
                     soft_wrap=True)
    for failed in summary.get("files_failed") or []:
        errors.print(escape(f"archive failed: {failed['path']}: {failed['error']}"), highlight=False, soft_wrap=True)
    held = _documents_in(out / "data")
    if held == 0:
        seeds_failed = len(summary.get("failed_seeds") or [])
        why = f"; {seeds_failed} seed(s) failed" if seeds_failed else ""
        raise CorpusError(f"{out}: the crawl produced no documents{why} (details in {out / 'stats.json'})")
    console.print(f"{held} documents in {out / 'data'}; statistics in {out / 'stats.json'}")
    return summary


def _documents_in(data: Path) -> int:
    from corpus.core.io import read_manifest

    try:
        return int(read_manifest(data).get("documents", 0))
    except CorpusError:
        return 0
