"""Run a crawl. Scrapy's reactor cannot restart inside one process, so each crawl gets a child process;
`crawl()` is the importable entry point, `python -m crawl.runner CONFIG.json` the child."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from corpus.errors import CorpusError
from corpus.io import atomic_write_json
from crawl.settings import build_settings


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CorpusError(f"{url!r}: not an http(s) URL")
    return url


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
) -> dict[str, Any]:
    """Crawl from `urls` into `out/data` shards; returns the crawl's stats (also in crawl_stats.json)."""
    if not urls:
        raise CorpusError("give at least one seed URL")
    seeds = [check_url(u) for u in urls]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not obey_robots:
        print("warning: robots.txt is being ignored (--ignore-robots); crawl only sites you may crawl",
              file=sys.stderr)
    job = {
        "seeds": seeds,
        "allowed_domains": allowed_domains,
        "max_pages": max_pages,
        "progress": progress,
        "settings": build_settings(
            fast=fast,
            contact=contact,
            ROBOTSTXT_OBEY=obey_robots,
            DEPTH_LIMIT=depth,
            CORPUS_OUTPUT=str(out),
            CORPUS_FORMAT=output_format,
        ),
    }
    atomic_write_json(out / "crawl_config.json", job)
    proc = subprocess.run([sys.executable, "-m", "crawl.runner", str(out / "crawl_config.json")], check=False)
    if proc.returncode != 0:
        raise CorpusError(f"crawl failed (exit code {proc.returncode}); see the messages above")
    return json.loads((out / "crawl_stats.json").read_text())


def _run_child(config_path: str) -> None:
    from scrapy.crawler import CrawlerProcess

    from crawl.spiders import SiteSpider

    job = json.loads(Path(config_path).read_text())
    settings = dict(job["settings"])
    settings["ITEM_PIPELINES"] = {"crawl.pipelines.ShardPipeline": 300}
    if job.get("progress"):
        settings["EXTENSIONS"] = {"crawl.progress.CrawlProgress": 500}
        settings["CORPUS_PROGRESS_TOTAL"] = job.get("max_pages")
    settings["LOG_INSTALL_ROOT_HANDLER"] = True
    process = CrawlerProcess(settings)
    process.crawl(SiteSpider, seeds=job["seeds"], allowed_domains=job.get("allowed_domains"),
                  max_pages=job.get("max_pages"))
    process.start()


if __name__ == "__main__":
    _run_child(sys.argv[1])
