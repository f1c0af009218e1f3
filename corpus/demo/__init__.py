"""The built-in demo: the whole path, crawl -> curate -> pretrain -> report, on a bundled site."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from corpus.demo.server import SiteServer, demo_site_root

DEMO_WRITES = ("crawl", "curated", "model", "report")


def run_demo(out: str | Path = "runs/demo", steps: int = 60, workers: int = 2) -> dict[str, Any]:
    """Run every step into `out/{crawl,curated,model,report}`; returns the numbers it prints."""
    from corpus.core.config import load_config
    from corpus.core.executors import LocalExecutor
    from corpus.core.runs import claim_output
    from corpus.crawl.runner import crawl
    from corpus.report import build_report
    from corpus.train.pretrain import pretrain

    out = Path(out)
    # The demo always starts from scratch, but removes only its own earlier output: never a folder of the user's.
    run = claim_output(out, "demo", overwrite=True, writes=DEMO_WRITES)
    console = Console()
    started = time.time()
    with SiteServer(demo_site_root()) as server:
        console.print(f"serving the sample site at {server.url}")
        crawl_stats = crawl([server.url], out / "crawl", max_pages=200, depth=5, fast=True)
        fetched = server.requests
    curate_stats = LocalExecutor(workers=workers).run(load_config(preset="default"), out / "crawl", out / "curated")
    model = pretrain(out / "curated", out / "model", steps=steps, progress=True)
    paths = build_report(out, out / "report")
    languages = {}
    for job in curate_stats["jobs"]:
        for stage in job["stages"]:
            for key, value in stage["counters"].items():
                if key.startswith("lang/"):
                    languages[key[5:]] = int(value)
    summary = {
        "pages fetched": crawl_stats.get("downloader/response_count", 0),
        "blocked by robots.txt": crawl_stats.get("robotstxt/forbidden", 0),
        "documents crawled": curate_stats["documents_in"],
        "languages": ", ".join(f"{k}: {v}" for k, v in sorted(languages.items(), key=lambda kv: -kv[1])),
        "documents kept": curate_stats["documents_kept"],
        "model": str(out / "model"),
        "final loss": model.get("final_loss"),
        "report": str(paths["html"]),
        "datasheet": str(paths["datasheet"]),
        "seconds": round(time.time() - started, 1),
    }
    table = Table(title="corpus demo")
    table.add_column("step / stage")
    table.add_column("value", justify="right")
    for job in curate_stats["jobs"]:
        for stage in job["stages"]:
            if not stage["name"].endswith("Signatures"):
                c = stage["counters"]
                table.add_row(f"kept after {stage['id']}", f"{int(c.get('kept', 0))} / {int(c.get('in', 0))}")
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)
    run.finish(documents_kept=curate_stats["documents_kept"])
    summary["requests"] = fetched
    summary["curate_stats"] = curate_stats
    return summary
