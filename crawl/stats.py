"""Crawl statistics: Scrapy's flat counters (crawl_stats.json) summarised for people (stats.json, a table)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _group(flat: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in sorted(flat.items()) if k.startswith(prefix)}


def summarize(flat: dict[str, Any]) -> dict[str, Any]:
    """The questions a crawl's owner asks: what came back, what failed and why, what was skipped."""
    elapsed = float(flat.get("elapsed_time_seconds") or 0)
    pages = int(flat.get("corpus/pages", 0))
    return {
        "finish_reason": flat.get("finish_reason"),
        "elapsed_seconds": round(elapsed, 2),
        "pages": pages,
        "pages_per_second": round(pages / elapsed, 2) if elapsed else None,
        "documents": int(flat.get("corpus/documents", 0)),
        "documents_in_folder": int(flat.get("corpus/documents_published", flat.get("corpus/documents", 0))),
        "shards_published": int(flat.get("corpus/shards", 0)),
        "responses": {
            "total": int(flat.get("downloader/response_count", 0)),
            "by_status": _group(flat, "downloader/response_status_count/"),
        },
        "bytes": {
            "received": int(flat.get("downloader/response_bytes", 0)),
            "decompressed": int(flat.get("httpcompression/response_bytes", 0)),
            "sent": int(flat.get("downloader/request_bytes", 0)),
        },
        "errors": _group(flat, "corpus/errors/"),
        "retries": int(flat.get("retry/count", 0)),
        "robots_blocked": int(flat.get("robotstxt/forbidden", 0)),
        "extraction_failures": _group(flat, "corpus/extract_failed/"),
        "skipped": _group(flat, "corpus/skipped/"),
        "charset_repairs": _group(flat, "corpus/charset/"),
        "duplicates_skipped": {
            "links_already_seen": int(flat.get("corpus/duplicates/url", 0)),
            "requests_filtered": int(flat.get("dupefilter/filtered", 0)),
            "documents": int(flat.get("corpus/duplicates/document", 0)),
        },
        "sitemaps": _group(flat, "corpus/sitemaps/"),
        "resumed_pending": int(flat.get("corpus/resumed_pending", 0)),
        "runs": int(flat.get("corpus/runs", 1)),
        "failed_seeds": list(flat.get("corpus/failed_seeds") or []),
        "warc_records": int(flat.get("corpus/warc/records", 0)),
        "page_cpu_seconds": round(float(flat.get("corpus/page_cpu_seconds", 0)), 3),
        "extract_cpu_seconds": round(float(flat.get("corpus/extract_cpu_seconds", 0)), 3),
    }


def summary_table(summary: dict[str, Any], title: str = "crawl") -> Table:
    """One row per measure; nested counters (errors by reason...) as indented rows."""
    table = Table(title=f"{title} ({summary.get('finish_reason') or 'done'})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in ("pages", "documents", "shards_published", "elapsed_seconds", "pages_per_second", "robots_blocked",
                "retries", "resumed_pending", "warc_records", "runs"):
        if key in summary and summary[key] is not None:
            table.add_row(key.replace("_", " "), str(summary[key]))
    for key in ("responses", "bytes", "errors", "extraction_failures", "skipped", "charset_repairs",
                "duplicates_skipped", "sitemaps"):
        value = summary.get(key)
        if not value:
            continue
        if key == "responses":
            value = {"total": value["total"], **{f"status {k}": v for k, v in value["by_status"].items()}}
        rows = {k: v for k, v in value.items() if v}
        if rows:
            table.add_row(f"[bold]{key.replace('_', ' ')}[/bold]", "")
            for name, count in rows.items():
                table.add_row(f"  {name}", str(count))
    return table
