"""The built-in demo end to end: serve the bundled site, crawl, curate, pretrain, report."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForPreTraining, AutoTokenizer

from corpus.core.io import read_documents
from corpus.demo import run_demo


def test_demo_runs_the_whole_path(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    summary = run_demo(out, steps=8)

    # robots.txt disallows /private/: the crawler never asked for it.
    assert "/robots.txt" in summary["requests"]
    assert not [r for r in summary["requests"] if r.startswith("/private/")]
    assert summary["blocked by robots.txt"] >= 1

    kept = list(read_documents(out / "curated"))
    rejected = list(read_documents(out / "curated" / "rejected"))
    kept_paths = {d.metadata["url"].split("/", 3)[3] for d in kept}
    # Exactly one of the two byte-identical bread pages survives; the other is rejected as its duplicate.
    bread = {"en/cooking/bread.html", "en/archive/bread-copy.html"}
    assert len(bread & kept_paths) == 1
    duplicates = [d for d in rejected if d.metadata["reason"] == "exact_duplicate"]
    assert {d.metadata["url"].split("/", 3)[3] for d in duplicates} == bread - kept_paths
    # The boilerplate-only contact page does not survive curation.
    assert "en/contact.html" not in kept_paths

    # Every article is identified as the language of its section.
    articles = [d for d in kept if d.metadata["url"].split("/", 3)[3].count("/") >= 2]
    assert len(articles) >= 30
    for doc in articles:
        section = doc.metadata["url"].split("/", 4)[3]
        assert doc.metadata["language"] == section, doc.metadata["url"]
    assert {d.metadata["language"] for d in kept} >= {"en", "fr", "de", "es"}

    # The model loads with transformers and gives MLM logits of the right shape.
    model = AutoModelForPreTraining.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    batch = tokenizer(["the river runs to the sea", "le jardin"], padding=True, return_tensors="pt")
    with torch.no_grad():
        output = model(**batch)
    assert output.prediction_logits.shape == (2, batch["input_ids"].shape[1], model.config.vocab_size)
    assert output.seq_relationship_logits.shape == (2, 2)

    assert (out / "report" / "report.html").exists()
    assert "# Datasheet" in (out / "report" / "datasheet.md").read_text()
