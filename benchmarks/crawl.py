"""Crawl throughput on a generated local site: pages/s, CPU seconds per page, and where the CPU goes.

A site of `--pages` article pages (default 5,000; text drawn from the bundled demo site's vocabulary,
~45 KB each with styles, scripts, a link menu, related stories, comments and a footer, like real article
pages) is served from memory by a threaded HTTP server in its own process on 127.0.0.1. The crawler runs
with politeness off (`--fast`) once per `--workers` value (extraction processes; 0 = extraction inside the
crawler process). CPU is measured for the crawler and its extraction workers together (the server's CPU is
not counted, but it shares the machine). The extraction share is the CPU spent inside trafilatura (text and
metadata) over all crawler CPU; `--profile` adds a cProfile of the crawler process, summed by package.

    python benchmarks/crawl.py [--pages 5000] [--workers 0,1,2] [--profile] [--write-docs]

Last line of output: {"pages_per_s": ..., "extraction_cpu_share": ..., ...}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from docs_section import replace_section

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECTION = "## Crawl"
SECTIONS = ["news", "science", "travel", "food", "sport", "culture", "money", "health", "tech", "books"]


def vocabulary() -> list[str]:
    """Words from the bundled English demo pages, so generated text looks like language to the extractor."""
    words: list[str] = []
    for path in sorted((REPO / "corpus" / "demo" / "site" / "en").rglob("*.html")):
        text = re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8"))
        words += re.findall(r"[A-Za-z]{2,}", text)
    return words or ["river", "garden", "library", "morning", "village", "market", "letter", "winter"]


def render_site(pages: int, seed: int = 0) -> dict[str, bytes]:
    rng = random.Random(seed)
    words = vocabulary()

    def sentence() -> str:
        text = " ".join(rng.choice(words).lower() for _ in range(rng.randint(8, 22)))
        return text[0].upper() + text[1:] + "."

    nav = " ".join(f"<a href='/{s}/'>{s.title()}</a>" for s in SECTIONS)
    # What real article pages carry besides the article (their median is ~115 KB with ~90 links): styles,
    # scripts, a menu of many links, related stories, comments, a long footer.
    style = "<style>" + "".join(f".c{i}{{margin:{i % 7}px;color:#{i:06x}}}" for i in range(400)) + "</style>"
    script = "<script>window.cfg=" + json.dumps({f"k{i}": sentence() for i in range(250)}) + ";</script>"
    footer = ("<footer><p>About us · Contact · Privacy policy · Terms of use · Cookie settings</p>"
              + " ".join(f"<a href='/{s}/'>{s.title()} archive</a>" for s in SECTIONS)
              + "<p>© 2024 The Generated Gazette. All rights reserved.</p></footer>")
    site: dict[str, bytes] = {"/robots.txt": b"User-agent: *\nAllow: /\n"}
    per_section = [[i for i in range(pages) if i % len(SECTIONS) == s] for s in range(len(SECTIONS))]
    for s, name in enumerate(SECTIONS):
        links = "".join(f"<li><a href='/{name}/{i}.html'>Story {i}</a></li>" for i in per_section[s][:60])
        site[f"/{name}/"] = (f"<html><head><title>{name.title()}</title>{style}</head><body><nav>{nav}</nav>"
                             f"<h1>{name.title()}</h1><ul>{links}</ul>{footer}</body></html>").encode()

    def story_link(j: int) -> str:
        return f"<li><a href='/{SECTIONS[j % len(SECTIONS)]}/{j}.html'>{sentence()[:40]}</a></li>"

    for i in range(pages):
        name = SECTIONS[i % len(SECTIONS)]
        title = sentence()[:60].rstrip(".")
        paragraphs = "".join(f"<p>{' '.join(sentence() for _ in range(rng.randint(3, 7)))}</p>"
                             for _ in range(rng.randint(4, 9)))
        menu = "".join(story_link(j) for j in rng.sample(range(pages), 40))
        related = "".join(story_link(j) for j in rng.sample(range(pages), 8))
        comments = "".join(f"<div class='comment'><b>reader{rng.randint(1, 999)}</b><p>{sentence()}</p></div>"
                           for _ in range(rng.randint(0, 6)))
        site[f"/{name}/{i}.html"] = (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>{style}{script}"
            f"<meta name='author' content='Reporter {i % 37} Smith'><meta property='og:site_name' "
            f"content='The Generated Gazette'></head><body><header><nav>{nav}</nav><ul class='menu'>{menu}</ul>"
            f"</header><main><article><h1>{title}</h1><p class='byline'>By Reporter {i % 37} Smith, 2024-0"
            f"{1 + i % 9}-1{i % 10}</p>{paragraphs}</article><aside><h2>Related</h2><ul>{related}</ul></aside>"
            f"<section class='comments'>{comments}</section></main>{footer}</body></html>").encode()
    site["/"] = (f"<html><head><title>The Generated Gazette</title></head><body><nav>{nav}</nav>"
                 f"<h1>Front page</h1>{footer}</body></html>").encode()
    return site


def serve(pages: int, ready: Any) -> None:
    """The site server (its own process): pages rendered once, answered from memory."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    site = render_site(pages)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            body = site.get(self.path)
            self.send_response(200 if body is not None else 404)
            body = body if body is not None else b"not found"
            kind = "text/plain" if self.path.endswith(".txt") else "text/html; charset=utf-8"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    httpd = Server(("127.0.0.1", 0), Handler)
    ready.put(httpd.server_address[1])
    httpd.serve_forever()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def profile_by_package(path: str) -> dict[str, float]:
    """cProfile's own time (tottime) summed by top-level package."""
    import pstats

    stats = pstats.Stats(path)
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        match = re.search(r"site-packages/([A-Za-z0-9_]+)", filename) or re.search(r"/work/main/([a-z]+)/", filename)
        if match:
            package = match.group(1)
        elif "python3" in filename or filename.startswith("<"):
            package = "python stdlib/builtins"
        else:
            package = Path(filename).parts[-2] if len(Path(filename).parts) > 1 else filename
        totals[package] = totals.get(package, 0.0) + tottime
    total = sum(totals.values()) or 1.0
    return {k: round(v / total, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])[:12]}


def run_once(url: str, pages: int, workers: int, out: Path, profile: str | None) -> dict[str, Any]:
    from corpus.crawl.runner import crawl

    if profile:
        os.environ["CORPUS_CRAWL_PROFILE"] = profile
    cpu_before, started = children_cpu(), time.perf_counter()
    try:
        crawl([url], out, max_pages=pages + 50, depth=20, fast=True, progress=False, sitemaps=False,
              extract_workers=workers, overwrite=True, settings={"CORPUS_SHARD_DOCS": 2000})
    finally:
        os.environ.pop("CORPUS_CRAWL_PROFILE", None)
    wall, cpu = time.perf_counter() - started, children_cpu() - cpu_before
    summary = json.loads((out / "stats.json").read_text())
    fetched = summary["pages"]
    return {
        "workers": workers, "pages": fetched, "documents": summary["documents"], "seconds": round(wall, 1),
        "pages_per_s": round(fetched / wall, 1), "cpu_s_per_page": round(cpu / fetched, 4),
        "extraction_cpu_share": round(summary["extract_cpu_seconds"] / cpu, 3),
        "page_processing_cpu_share": round(summary["page_cpu_seconds"] / cpu, 3),
        # CPU not spent processing pages: the crawler itself (Scrapy, scheduling, shards), plus moving pages
        # to and from extraction workers. One crawler process cannot go faster than 1 / this.
        "crawler_cpu_s_per_page": round((cpu - summary["page_cpu_seconds"]) / fetched, 4),
    }




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=5000, help="article pages in the generated site")
    parser.add_argument("--workers", default="0,1,2", help="extraction process counts to compare")
    parser.add_argument("--profile", action="store_true", help="also profile the crawler (untimed, 1,000 pages)")
    parser.add_argument("--write-docs", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]

    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    server = context.Process(target=serve, args=(args.pages, ready), daemon=True)
    server.start()
    port = ready.get(timeout=120)
    url = f"http://127.0.0.1:{port}/"
    work = Path(tempfile.mkdtemp(prefix="crawl-bench-"))
    load_before = os.getloadavg()[0]
    runs, profile = [], None
    try:
        for workers in counts:
            result = run_once(url, args.pages, workers, work / f"w{workers}", None)
            print(json.dumps(result), flush=True)
            runs.append(result)
        if args.profile:  # a separate, untimed run: cProfile slows the crawler down
            profile_path = str(work / "crawler.prof")
            run_once(url, min(args.pages, 1000), 0, work / "profile", profile_path)
            profile = profile_by_package(profile_path)
            import pstats

            pstats.Stats(profile_path).sort_stats("tottime").print_stats(15)
    finally:
        server.terminate()
        shutil.rmtree(work, ignore_errors=True)

    lines = ["| extraction processes | pages | seconds | pages/s | CPU s/page | extraction share of CPU | "
             "page processing share (decode, parse, links, extraction) | crawler CPU s/page (the rest) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['workers'] or '0 (in the crawler)'} | {r['pages']} | {r['seconds']} | "
                     f"{r['pages_per_s']} | {r['cpu_s_per_page']} | {r['extraction_cpu_share']:.0%} | "
                     f"{r['page_processing_cpu_share']:.0%} | {r['crawler_cpu_s_per_page']} |")
    table = "\n".join(lines)
    print(table)
    if profile:
        print("profile of the crawler process (share of its CPU by package):", json.dumps(profile))
    load = round(max(load_before, os.getloadavg()[0]), 1)
    base = runs[0]
    best = max(runs, key=lambda r: r["pages_per_s"])
    ceiling = round(1 / base["crawler_cpu_s_per_page"]) if base["crawler_cpu_s_per_page"] else None
    result = {"pages_per_s": best["pages_per_s"], "extraction_cpu_share": base["extraction_cpu_share"],
              "crawler_ceiling_pages_per_s": ceiling,
              "cpu_s_per_page": base["cpu_s_per_page"], "best_workers": best["workers"],
              "speedup_vs_first": round(best["pages_per_s"] / base["pages_per_s"], 2), "runs": runs,
              "cpus": os.cpu_count(), "load_average": load}
    if profile:
        result["profile"] = profile
    if args.write_docs:
        command = f"python benchmarks/crawl.py --pages {args.pages} --workers {args.workers}" + \
            (" --profile" if args.profile else "") + " --write-docs"
        prof = ("\n\nProfile of the crawler process (separate run, 1,000 pages, no extraction workers), share of "
                "its CPU by package (`~` = C builtins such as socket and select calls): "
                + ", ".join(f"{k} {v:.0%}" for k, v in profile.items()) + "." if profile else "")
        body = (f"{SECTION}\n\n`{command}`\n\n"
                f"A generated site of {args.pages:,} article pages (about 45 KB each: styles, scripts, ~70 "
                "links, comments, boilerplate) served from memory on 127.0.0.1 by a separate process; `--fast` "
                f"(no delays), robots.txt obeyed, {os.cpu_count()} CPU cores shared by the crawler, its "
                f"extraction workers and the server (and other work: load average up to {load} during the run). "
                "CPU is the crawler's and its workers'. Extraction = "
                "trafilatura text and metadata; page processing adds charset decoding, HTML parsing and link "
                "finding.\n\n"
                f"{table}\n\nBest: {best['pages_per_s']} pages/s with {best['workers']} extraction process(es) "
                f"({result['speedup_vs_first']}x the first row). Wall-clock rows depend on what else the machine "
                "runs; CPU per page does not. Extraction processes cost CPU for moving pages between processes "
                "and pay off only where cores are idle. Without extraction, one crawler process needs "
                f"{base['crawler_cpu_s_per_page'] * 1000:.1f} ms of CPU per page: a ceiling of about {ceiling} "
                f"pages/s per crawler process when extraction runs on other cores.{prof}\n")
        print(f"wrote {replace_section(SECTION, body)}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
