"""A real run to report on: the bundled demo site plus pages with personal data, identity terms and hostile
markup, crawled from 127.0.0.1 and curated by a pipeline with every measuring stage. Built once per session.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

FILLER = (
    "The parish council met on Tuesday evening in the old school hall to discuss the spring market, the new "
    "bus timetable and the repairs to the footbridge over the river. Most of the people who came were keen to "
    "see the market return to the square, and the treasurer explained that the stalls would be cheaper this year "
    "because the council had found a sponsor for the tents and the lights.",
    "After the meeting a few members stayed behind to count the chairs, sweep the floor and lock the cupboard "
    "where the raffle prizes are kept. The caretaker reminded everyone that the heating is switched off at ten, "
    "so the next meeting will start half an hour earlier and finish before the building gets cold again.",
    "Last year the market raised enough money to repaint the bandstand and plant a row of cherry trees along "
    "the towpath, and the committee hopes to do as well this time. Local bakers, potters and beekeepers have "
    "already asked for pitches, and the school choir has promised to sing in the afternoon if the weather holds.",
)
# Text a page shows literally (escaped in its HTML): the extracted document text holds real markup characters.
SCRIPT = "<script>window.__pwned = 1</script>"
IMG = '<img src=x onerror="window.__pwned = 2">'
BREAKOUT = "</pre></details></div><h1>INJECTED HEADING</h1>"
EXTRA_PAGES = {
    "extra/contact-people.html": (
        "Volunteers wanted for the spring market",
        [FILLER[0],
         "Women and men of every age are welcome, and the elderly residents of the almshouses have offered to bake "
         "for the tea stall. To join, write to jane.doe@example.org or call +44 20 7946 0958 before the end of "
         "the month, and the organisers will send you the rota for the weekend and the map of the pitches.",
         FILLER[1]]),
    "extra/html-talk.html": (
        "Quoting markup <b>safely</b> in articles",
        [FILLER[2],
         f"When you write about web pages you often quote markup such as {SCRIPT} or an image tag like {IMG} in "
         f"the middle of a sentence, and sometimes stray closing tags such as {BREAKOUT} that must stay plain "
         "characters for every reader of the page, whatever tool shows them later on.",
         "Editors check every quoted fragment twice before the article goes out, because a missing escape turns a "
         "harmless example into live code on somebody else's screen, and nobody wants that kind of surprise."]),
    "extra/short-evil.html": (
        "Tiny",
        [f"{SCRIPT} Click {IMG} now."]),
}
PIPELINE = """
name: audit-everything
description: every measuring stage, for the report tests
stages:
  - stage: normalize
  - stage: language
    id: lang
    threshold: 0.5
  - stage: bias
  - stage: gopher_repetition
    id: gopher_rep
  - stage: gopher_quality
    id: quality
  - stage: toxicity
    threshold: 0.8
  - stage: exact_dedup
    id: dedup
  - stage: pii
  - stage: audit
"""
LIGHT_PIPELINE = """
name: light
description: language and quality only (no dedup, toxicity, bias, audit or PII)
stages:
  - stage: normalize
  - stage: language
    id: lang
    threshold: 0.5
  - stage: gopher_quality
    id: quality
    min_doc_words: {min_words}
"""


def _page(title: str, paragraphs: list[str]) -> str:
    from html import escape

    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
            f"<body><main><article><h1>{escape(title)}</h1>{body}</article></main></body></html>")


def make_site(root: Path) -> Path:
    from corpus.demo.server import demo_site_root

    shutil.copytree(demo_site_root(), root)
    links = []
    for path, (title, paragraphs) in EXTRA_PAGES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(_page(title, paragraphs), encoding="utf-8")
        links.append(f'<li><a href="/{path}">{title.replace("<", "&lt;")}</a></li>')
    index = root / "index.html"
    index.write_text(index.read_text(encoding="utf-8").replace("</main>", f"<ul>{''.join(links)}</ul></main>"),
                     encoding="utf-8")
    return root


def curate(source: Path, out: Path, pipeline: str) -> dict:
    from corpus.core.config import load_config
    from corpus.core.executors import LocalExecutor

    config_file = out.parent / f"{out.name}.yaml"
    config_file.write_text(pipeline, encoding="utf-8")
    return LocalExecutor(workers=1, progress=False).run(load_config(config_file), source, out)


@pytest.fixture(scope="session")
def audited_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """runs/audit/{crawl,curated}: a real crawl and a curate run with every measuring stage."""
    from corpus.crawl.runner import crawl
    from corpus.demo.server import SiteServer

    base = tmp_path_factory.mktemp("report")
    site = make_site(base / "site")
    run = base / "audit"
    with SiteServer(site) as server:
        crawl([server.url], run / "crawl", max_pages=200, depth=5, fast=True, progress=False)
    curate(run / "crawl", run / "curated", PIPELINE)
    return run


@pytest.fixture(scope="session")
def light_run(audited_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same crawl curated without dedup, toxicity, bias, audit or PII (its crawl is found through stats.json)."""
    out = tmp_path_factory.mktemp("light") / "curated"
    curate(audited_run / "crawl", out, LIGHT_PIPELINE.format(min_words=50))
    return out
