"""Read a run folder (crawl stats, curate stats, shards) and write report.html and datasheet.md.

Reads files only, so a report can be made for any run, anywhere, after the fact.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corpus.errors import CorpusError
from corpus.io import atomic_write_bytes, list_shards, read_shard


def _first(root: Path, *candidates: str) -> Path | None:
    return next((root / c for c in candidates if (root / c).exists()), None)


def find_run_parts(run_dir: str | Path) -> dict[str, Path | None]:
    """Locate the crawl and curate outputs inside a run folder (or a single step's folder)."""
    root = Path(run_dir)
    if not root.is_dir():
        raise CorpusError(f"{root}: run folder does not exist")
    return {
        "crawl_stats": _first(root, "crawl_stats.json", "crawl/crawl_stats.json"),
        "curate_stats": _first(root, "stats.json", "curated/stats.json", "curate/stats.json"),
        "model": _first(root, "model/config.json"),
    }


def _load(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise CorpusError(f"{path}: not valid JSON ({err})") from err


def _sample(folder: Path, n: int = 200) -> list[Any]:
    docs = []
    try:
        shards = list_shards(folder)
    except CorpusError:
        return docs
    for shard in shards:
        for doc in read_shard(shard, on_malformed=lambda bad: None):
            docs.append(doc)
            if len(docs) >= n:
                return docs
    return docs


def _plot(kind: str, labels: list[str], values: list[float], title: str) -> str:
    """A small bar chart as an embedded PNG (data URI), so the report is one offline file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.4 * max(len(labels), 3) + 1))
    ax.barh(labels[::-1], values[::-1], color="#3b6ea8")
    ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img class="plot" alt="{html.escape(title)}" src="data:image/png;base64,{data}">'


def _funnel(curate: dict[str, Any]) -> list[tuple[str, int, int, dict[str, int]]]:
    rows = []
    for job in curate.get("jobs", []):
        for stage in job["stages"]:
            c = stage["counters"]
            dropped = {k.split("/", 1)[1]: int(v) for k, v in c.items() if k.startswith("dropped/")}
            if stage["name"].endswith("Signatures"):
                continue
            rows.append((stage["id"], int(c.get("in", 0)), int(c.get("kept", 0)), dropped))
    return rows


def build_report(run_dir: str | Path, out: str | Path | None = None) -> dict[str, Path]:
    """Write report.html and datasheet.md for a run; returns their paths."""
    root = Path(run_dir)
    parts = find_run_parts(root)
    out_dir = Path(out) if out else root / "report"
    crawl = _load(parts["crawl_stats"])
    curate = _load(parts["curate_stats"])
    if crawl is None and curate is None:
        raise CorpusError(f"{root}: no crawl_stats.json or stats.json found; is this a corpus run folder?")
    missing = [name for name, value in (("crawl", crawl), ("curation", curate)) if value is None]
    sections: list[str] = []
    facts: dict[str, Any] = {"missing": missing}
    if missing:
        sections.append(f"<p class='missing'>Not in this run: {', '.join(missing)}.</p>")
    if crawl is not None:
        prefix = "downloader/response_status_count/"
        statuses = {k.removeprefix(prefix): v for k, v in crawl.items() if k.startswith(prefix)}
        facts["pages_fetched"] = crawl.get("downloader/response_count", 0)
        facts["documents_crawled"] = crawl.get("corpus/documents", 0)
        facts["robots_forbidden"] = crawl.get("robotstxt/forbidden", 0)
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in sorted(crawl.items())
                       if isinstance(v, int | float))
        sections.append(
            "<h2>Collection</h2>"
            f"<p>Pages fetched: <b id='pages'>{facts['pages_fetched']}</b>; documents extracted: "
            f"<b id='crawled'>{facts['documents_crawled']}</b>; blocked by robots.txt: {facts['robots_forbidden']}.</p>"
            + (_plot("bar", list(statuses), list(statuses.values()), "HTTP responses by status") if statuses else "")
            + f"<details><summary>All crawl counters</summary><table>{rows}</table></details>"
        )
    if curate is not None:
        funnel = _funnel(curate)
        facts["documents_in"] = curate.get("documents_in")
        facts["documents_kept"] = curate.get("documents_kept")
        facts["removed"] = {f"{s}/{r}": n for s, _, _, d in funnel for r, n in d.items()}
        table = "".join(
            f"<tr><td>{html.escape(s)}</td><td>{i}</td><td>{k}</td>"
            f"<td>{html.escape(', '.join(f'{r}: {n}' for r, n in d.items()))}</td></tr>"
            for s, i, k, d in funnel
        )
        sections.append(
            "<h2>Curation funnel</h2>"
            f"<p>Documents in: <b id='docs-in'>{facts['documents_in']}</b>; kept: "
            f"<b id='docs-kept'>{facts['documents_kept']}</b>; "
            f"malformed input records: {curate.get('malformed', 0)}.</p>"
            f"<table><tr><th>stage</th><th>in</th><th>kept</th><th>removed, by reason</th></tr>{table}</table>"
            + _plot("bar", [s for s, *_ in funnel], [k for _, _, k, _ in funnel], "Documents kept after each stage")
        )
        languages: Counter[str] = Counter()
        for job in curate.get("jobs", []):
            for stage in job["stages"]:
                for key, value in stage["counters"].items():
                    if key.startswith("lang/"):
                        languages[key[5:]] += int(value)
        facts["languages"] = dict(languages.most_common())
        if languages:
            top = languages.most_common(15)
            sections.append("<h2>Languages</h2>" + _plot("bar", [k for k, _ in top], [v for _, v in top],
                                                          "Documents per detected language"))
        curated_dir = parts["curate_stats"].parent if parts["curate_stats"] else None
        if curated_dir is not None:
            rejected = _sample(curated_dir / "rejected", 50)
            if rejected:
                items = "".join(
                    f"<li><b>{html.escape(str(d.metadata.get('reason', '')))}</b> "
                    f"({html.escape(str(d.metadata.get('url', d.id)))}): {html.escape(d.text[:300])}</li>"
                    for d in rejected[:30]
                )
                sections.append(f"<h2>Samples of removed documents</h2><ul class='samples'>{items}</ul>")
    out_dir.mkdir(parents=True, exist_ok=True)
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>corpus report</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
        ".plot{max-width:100%;display:block;margin:1em 0}.missing{color:#a33}</style></head><body>"
        f"<h1>corpus report: {html.escape(root.name)}</h1>"
        f"<p>Generated {datetime.now(UTC).isoformat(timespec='seconds')} from {html.escape(str(root))}.</p>"
        + "".join(sections) + "</body></html>"
    )
    report_path = out_dir / "report.html"
    atomic_write_bytes(report_path, page.encode("utf-8"))
    datasheet_path = out_dir / "datasheet.md"
    atomic_write_bytes(datasheet_path, _datasheet(root, facts, curate).encode("utf-8"))
    atomic_write_bytes(out_dir / "report.json", json.dumps(facts, indent=2).encode())
    return {"html": report_path, "datasheet": datasheet_path}


def _datasheet(root: Path, facts: dict[str, Any], curate: dict[str, Any] | None) -> str:
    todo = "_(to be answered by the dataset's maintainers)_"
    removed = "\n".join(f"- `{k}`: {v}" for k, v in facts.get("removed", {}).items()) or "- (no curation run found)"
    languages = ", ".join(f"{k} ({v})" for k, v in facts.get("languages", {}).items()) or "unknown"
    return f"""# Datasheet: {root.name}

Following "Datasheets for Datasets" (Gebru et al., 2021). Measured answers are filled from the run;
questions only a person can answer are marked.

## Motivation
- For what purpose was the dataset created? {todo}
- Who created it and who funded it? {todo}

## Composition
- Documents after curation: {facts.get('documents_kept', 'unknown')} (from {facts.get('documents_in', 'unknown')} in).
- Languages detected (documents before filtering): {languages}.
- Does it contain offensive or personal data? {todo}

## Collection process
- Pages fetched: {facts.get('pages_fetched', 'not crawled in this run')}.
- Documents extracted: {facts.get('documents_crawled', 'n/a')}.
- Pages blocked by robots.txt: {facts.get('robots_forbidden', 'n/a')}.
- Missing parts of this run: {', '.join(facts.get('missing', [])) or 'none'}.

## Preprocessing / cleaning
Removed documents, by stage and reason:
{removed}

## Uses
- Intended uses: {todo}
- Uses to avoid: {todo}

## Distribution
- License and terms of the source content: {todo}

## Maintenance
- Who maintains it, and how are errors reported? {todo}
"""
