"""Normalisation and per-site boilerplate removal."""

from __future__ import annotations

import json
from pathlib import Path

from corpus.core.config import load_config
from corpus.core.document import Document
from corpus.core.executors import LocalExecutor
from corpus.core.io import read_documents, write_shard
from corpus.curate.normalize import NormalizeText
from tests.conftest import DE, EN, EN2, FR


def test_repairs_mojibake_unicode_controls_and_whitespace() -> None:
    norm = NormalizeText()
    assert norm.normalize("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.") == "The Mona Lisa doesn’t have eyebrows."
    assert norm.normalize("cafe\u0301 cr\u00e8me") == "caf\u00e9 cr\u00e8me"  # NFC
    assert norm.normalize("a\x00b\x1bc\u200b d\r\ne  \t f\n\n\n\ng ") == "abc d\ne f\n\ng"
    assert norm.normalize("Fish &amp; chips") == "Fish & chips"
    # Typography is not damage: curly quotes and full-width CJK punctuation stay as they were.
    assert norm.normalize("“Quoted” — 你好，世界！") == "“Quoted” — 你好，世界！"


def test_unchanged_text_is_the_same_object_and_changes_are_counted() -> None:
    norm = NormalizeText(annotate=True)
    doc = Document("a", "Already clean text.")
    text = doc.text
    assert norm.apply(doc).text is text and "normalized" not in doc.metadata
    assert norm.apply(Document("b", "two  spaces")).metadata["normalized"] is True


def test_boilerplate_lines_repeated_across_a_site_are_removed(tmp_path: Path) -> None:
    nav = "Home | News | Contact us"
    footer = "Copyright 2024 The Village Gazette. All rights reserved."
    bodies = [EN, EN2, FR, DE, EN + " More.", EN2 + " More."]
    docs = [Document(f"site-{i}", f"{nav}\n{body}\n{footer}", {"url": f"https://www.gazette.test/p/{i}"})
            for i, body in enumerate(bodies)]
    # Another site uses the same footer once: not repeated *there*, so it stays.
    docs.append(Document("other", f"{EN}\n{footer}", {"url": "https://elsewhere.test/x"}))
    docs.append(Document("nav-only", nav, {"url": "https://gazette.test/empty"}))
    write_shard(tmp_path / "in" / "a.jsonl", docs[:4])
    write_shard(tmp_path / "in" / "b.jsonl", docs[4:])  # two ranks: counts are merged across them
    config = tmp_path / "p.yaml"
    config.write_text(json.dumps({"output_format": "jsonl",
                                  "stages": [{"stage": "boilerplate", "min_docs": 3, "min_fraction": 0.5}]}))
    stats = LocalExecutor(workers=1, progress=False).run(load_config(config), tmp_path / "in", tmp_path / "out")
    kept = {d.id: d for d in read_documents(tmp_path / "out")}
    for i, body in enumerate(bodies):
        assert kept[f"site-{i}"].text == body
        assert kept[f"site-{i}"].metadata["boilerplate_lines_removed"] == 2
    assert kept["other"].text == f"{EN}\n{footer}"
    rejected = list(read_documents(tmp_path / "out" / "rejected"))
    assert [(d.id, d.metadata["reason"]) for d in rejected] == [("nav-only", "boilerplate_only")]
    counters = {s["id"]: s["counters"] for job in stats["jobs"] for s in job["stages"]}
    assert counters["boilerplate"]["lines_removed"] == 13
