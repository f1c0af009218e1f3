"""Write a run's report files: report.html, datasheet.md, report.json, report.md and the dataset card.

Reads files only, so a report can be made for any run, anywhere, after the fact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from corpus.core.errors import CorpusError
from corpus.core.io import atomic_write_bytes
from corpus.report.load import ScanOptions, find_run_parts, load_run

FORMATS = ("html", "json", "md")

__all__ = ["FORMATS", "build_report", "compare_reports", "find_run_parts"]


def _write(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def _check_format(output_format: str) -> None:
    if output_format not in FORMATS:
        raise CorpusError(f"unknown report format {output_format!r}; choose from {', '.join(FORMATS)}")


def build_report(run_dir: str | Path, out: str | Path | None = None, *, output_format: str = "html",
                 limit: int = 20_000, samples: int = 3, card: bool = True) -> dict[str, Path]:
    """Report on one run folder; returns the paths written, by kind.

    `html` writes everything (report.html with embedded plots, datasheet.md, report.json, report.md and the
    dataset card: README.md in the curated folder, a copy as dataset_card.md next to the report); `json` and
    `md` write only report.json or report.md (no plotting). `limit`: documents read per shard folder;
    `samples`: removed documents shown per stage and reason (and kept documents: 2 x samples, at least 5).
    """
    from corpus.report.facts import jsonable, measure
    from corpus.report.markdown import report_markdown

    _check_format(output_format)
    run = load_run(run_dir, ScanOptions(limit=limit, per_reason=samples, kept_samples=max(5, 2 * samples)))
    measured = measure(run)
    facts = measured.facts
    out_dir = Path(out) if out else run.parts.root / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if output_format in ("html", "json"):
        paths["json"] = _write(out_dir / "report.json", json.dumps(jsonable(facts), indent=2, ensure_ascii=False))
    if output_format in ("html", "md"):
        paths["markdown"] = _write(out_dir / "report.md", report_markdown(facts))
    if output_format == "html":
        from corpus.report.card import dataset_card, write_card
        from corpus.report.datasheet import datasheet
        from corpus.report.html import render_report
        from corpus.report.plots import all_plots

        paths["html"] = _write(out_dir / "report.html", render_report(facts, all_plots(facts, measured.series)))
        paths["datasheet"] = _write(out_dir / "datasheet.md", datasheet(facts))
        if card and run.parts.curated is not None:
            text = dataset_card(facts)
            paths["card_copy"] = _write(out_dir / "dataset_card.md", text)
            written = write_card(run.parts.curated, text)
            if written is not None:
                paths["card"] = written
    return paths


def compare_reports(run_a: str | Path, run_b: str | Path, out: str | Path | None = None, *,
                    output_format: str = "html", limit: int = 20_000) -> dict[str, Path]:
    """Two runs side by side (compare.html / compare.json / compare.md); returns the paths written."""
    from corpus.report.compare import compare
    from corpus.report.facts import jsonable, measure
    from corpus.report.markdown import compare_markdown

    _check_format(output_format)
    runs = [load_run(r, ScanOptions(limit=limit)) for r in (run_a, run_b)]
    measured = [measure(r) for r in runs]
    facts: dict[str, Any] = compare(runs[0], measured[0], runs[1], measured[1])
    out_dir = Path(out) if out else runs[0].parts.root / "report" / f"compare-{runs[1].name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if output_format in ("html", "json"):
        paths["json"] = _write(out_dir / "compare.json", json.dumps(jsonable(facts), indent=2, ensure_ascii=False))
    if output_format in ("html", "md"):
        paths["markdown"] = _write(out_dir / "compare.md", compare_markdown(facts))
    if output_format == "html":
        from corpus.report.html import render_compare
        from corpus.report.plots import compare_funnel

        names = (facts["runs"][0]["name"], facts["runs"][1]["name"])
        plot = compare_funnel(names, (facts["funnels"][0], facts["funnels"][1]))
        paths["html"] = _write(out_dir / "compare.html", render_compare(facts, {plot.key: plot} if plot else {}))
    return paths
