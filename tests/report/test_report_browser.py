"""report.html as a person sees it: rendered by a real headless Chromium over the DevTools protocol."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from corpus.core.io import read_documents
from corpus.report import build_report
from tests.report.browser import Browser, find_chromium
from tests.report.conftest import BREAKOUT, IMG, SCRIPT

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
SCREENSHOTS = Path(os.environ.get("CORPUS_SCREENSHOTS", Path(__file__).resolve().parents[2] / "build" / "screenshots"))


def _text(browser: Browser, element_id: str) -> str:
    return browser.evaluate(f"document.getElementById({json.dumps(element_id)})?.textContent ?? null")


def _number(browser: Browser, element_id: str) -> int:
    text = _text(browser, element_id)
    assert text is not None, f"no element #{element_id}"
    return int(text.replace(",", ""))


@needs_chromium
def test_report_renders_with_every_plot_and_the_counts_of_the_run(audited_run: Path, tmp_path: Path) -> None:
    paths = build_report(audited_run, tmp_path / "report", samples=50)
    curated = audited_run / "curated"
    stats = json.loads((curated / "stats.json").read_text())
    crawl_stats = json.loads((audited_run / "crawl" / "crawl_stats.json").read_text())
    kept = list(read_documents(curated / "data"))
    rejected = list(read_documents(curated / "rejected"))
    with Browser(CHROMIUM) as browser:
        browser.open(paths["html"])
        # Loads clean: no console errors or warnings, no CSP violation, no failed load, nothing fetched from outside.
        assert browser.problems() == []
        assert {url.split(":", 1)[0] for url in browser.requests()} <= {"file", "data"}
        images = browser.evaluate("[...document.images].map(i => ({id: i.id, complete: i.complete, "
                                  "w: i.naturalWidth, h: i.naturalHeight, shown: i.getBoundingClientRect().width}))")
        expected = {"plot-statuses", "plot-funnel", "plot-reasons", "plot-languages", "plot-lengths", "plot-domains",
                    "plot-clusters", "plot-toxicity", "plot-identity", "plot-audit", "plot-pii"}
        assert {i["id"] for i in images} == expected
        for image in images:
            assert image["complete"] and image["w"] > 100 and image["h"] > 100 and image["shown"] > 100, image

        # The page states the run's numbers, checked against the shards themselves.
        assert _number(browser, "docs-in") == stats["documents_in"] == len(kept) + len(rejected)
        assert _number(browser, "docs-kept") == len(kept)
        assert _number(browser, "docs-removed") == len(rejected)
        assert _number(browser, "pages") == crawl_stats["downloader/response_count"]
        assert _number(browser, "robots") == crawl_stats["robotstxt/forbidden"] >= 1
        for (stage, reason), n in Counter((d.metadata["stage"], d.metadata["reason"]) for d in rejected).items():
            assert _number(browser, f"reason-{stage}-{reason}") == n
        for language, n in Counter(d.metadata["language"] for d in kept).items():
            assert _number(browser, f"lang-after-{language}") == n
        assert _number(browser, "tokens-kept") == round(sum(len(d.text) for d in kept) / 4)
        pii = Counter(k for d in kept for k, n in d.metadata.get("pii", {}).items() for _ in range(n))
        assert pii == {"email": 1, "phone": 1}
        assert _number(browser, "pii-email") == 1 and _number(browser, "pii-phone") == 1
        assert _number(browser, "clusters-exact") == 1  # the two identical bread pages
        assert browser.evaluate("document.getElementById('missing')") is None  # every part was measured

        # Hostile document text is shown as text: nothing ran, no element was injected, the page is intact.
        assert browser.evaluate("typeof window.__pwned") == "undefined"
        assert browser.evaluate("document.scripts.length") == 0
        assert browser.evaluate("document.querySelectorAll('h1').length") == 1
        assert browser.evaluate("document.querySelectorAll('img:not(.plot)').length") == 0
        page_text = browser.evaluate("document.body.textContent")
        for literal in (SCRIPT, IMG, BREAKOUT):
            assert literal in page_text
        marks = browser.evaluate("[...document.querySelectorAll('mark')].map(m => [m.className, m.textContent])")
        assert ["hl-pii", "<EMAIL>"] in marks and ["hl-pii", "<PHONE>"] in marks
        assert any(cls == "hl-toxicity" and "idiot" in text for cls, text in marks)
        assert any(cls == "hl-identity" and text.lower() == "women" for cls, text in marks)

        browser.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shot = browser.screenshot(SCREENSHOTS / "report.png")
        assert shot.stat().st_size > 50_000
        shutil.copy(paths["html"], SCREENSHOTS / "report.html")
        print(f"screenshot for a person to look at: {shot}")


@needs_chromium
def test_a_run_without_curation_renders_and_says_what_is_missing(audited_run: Path, tmp_path: Path) -> None:
    crawl_only = tmp_path / "crawl-only"
    shutil.copytree(audited_run / "crawl", crawl_only / "crawl")
    paths = build_report(crawl_only)
    assert "card" not in paths  # nothing curated: no dataset card
    with Browser(CHROMIUM) as browser:
        browser.open(paths["html"])
        assert browser.problems() == []
        assert "Not in this run: curation." in _text(browser, "missing")
        assert browser.evaluate("[...document.querySelectorAll('[data-missing]')].length") >= 5
        assert browser.evaluate("[...document.images].every(i => i.naturalWidth > 0)")
        # What a crawl alone supports: HTTP statuses, and lengths and domains of the crawled documents.
        assert set(browser.evaluate("[...document.images].map(i => i.id)")) == {
            "plot-statuses", "plot-lengths", "plot-domains"}
        browser.screenshot(tmp_path / "crawl-only.png")


@needs_chromium
def test_comparison_page_renders(audited_run: Path, light_run: Path, tmp_path: Path) -> None:
    from corpus.report import compare_reports

    paths = compare_reports(audited_run, light_run, tmp_path / "compare")
    with Browser(CHROMIUM) as browser:
        browser.open(paths["html"])
        assert browser.problems() == []
        assert browser.evaluate("[...document.images].map(i => [i.id, i.naturalWidth > 0])") == [
            ["plot-compare_funnel", True]]
        assert browser.evaluate("typeof window.__pwned") == "undefined"
        kept_a = sum(1 for _ in read_documents(audited_run / "curated" / "data"))
        kept_b = sum(1 for _ in read_documents(light_run / "data"))
        assert _number(browser, "a-documents-kept") == kept_a and _number(browser, "b-documents-kept") == kept_b
        assert "toxicity (job main)" in _text(browser, "config-diff")  # a stage only the first run has
