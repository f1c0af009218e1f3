"""What the report states, checked against the run's own shards: report.json, datasheet.md, the dataset card."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from corpus.core.io import read_documents
from corpus.report import build_report
from corpus.report.card import MARKER
from corpus.report.datasheet import ASK

GEBRU_SECTIONS = ("Motivation", "Composition", "Collection process", "Preprocessing / cleaning / labeling", "Uses",
                  "Distribution", "Maintenance")


@pytest.fixture(scope="module")
def report(audited_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_report(audited_run, tmp_path_factory.mktemp("files") / "report", samples=50)


def test_facts_match_what_the_shards_hold(audited_run: Path, report: dict[str, Path]) -> None:
    facts = json.loads(report["json"].read_text())
    curated = audited_run / "curated"
    stats = json.loads((curated / "stats.json").read_text())
    kept = list(read_documents(curated / "data"))
    rejected = list(read_documents(curated / "rejected"))
    crawled = list(read_documents(audited_run / "crawl"))

    summary = facts["summary"]
    assert summary["documents_in"] == len(crawled) == len(kept) + len(rejected)
    assert summary["documents_kept"] == len(kept)
    assert summary["tokens_kept"] == round(sum(len(d.text) for d in kept) / 4)
    assert summary["words_kept"] == sum(len(d.text.split()) for d in kept)
    assert facts["missing"] == []

    # The funnel is the stats' own (pass-through dedup signatures left out), removals add up per stage.
    funnel = {row["stage"]: row for row in facts["funnel"]}
    assert list(funnel) == ["normalize", "lang", "bias", "gopher_rep", "quality", "toxicity", "dedup", "pii", "audit"]
    for row in facts["funnel"]:
        assert row["in"] - row["kept"] == sum(row["reasons"].values())
    assert funnel["audit"]["kept"] == len(kept)
    reasons = Counter((d.metadata["stage"], d.metadata["reason"]) for d in rejected)
    assert {(r["stage"], r["reason"]): r["documents"] for r in facts["reasons"]} == dict(reasons)

    languages = facts["languages"]
    lang_stage = next(s for j in stats["jobs"] for s in j["stages"] if s["id"] == "lang")
    assert languages["before"] == {k[5:]: v for k, v in lang_stage["counters"].items() if k.startswith("lang/")}
    assert languages["after"] == dict(Counter(d.metadata["language"] for d in kept))

    lengths = facts["lengths"]
    assert lengths["before_source"] == "curate input"
    assert lengths["chars_before"]["n"] == len(crawled)
    assert lengths["chars_after"]["max"] == max(len(d.text) for d in kept)
    assert facts["domains"]["top"][0] == {"domain": "127.0.0.1", "before": len(crawled), "after": len(kept),
                                          "removed_share": round(1 - len(kept) / len(crawled), 4)}

    # The bread page and its byte-identical copy: one cluster of two, one of them removed.
    assert facts["duplicates"]["clusters"] == {"exact": {"clusters": 1, "documents_in_clusters": 2, "largest": 2,
                                                         "clusters_by_size": {"2": 1}}}
    toxicity = facts["toxicity"]["stages"][0]
    assert toxicity["removed"] == reasons[("toxicity", "toxicity_high_score")] >= 1  # the forum rant
    assert toxicity["scores_after"]["max"] <= 0.8 < toxicity["scores_before"]["max"]
    assert facts["pii"]["counts"] == {"email": 1, "phone": 1}
    assert facts["identity"]["source"] == "audit"
    assert facts["identity"]["groups"]["gender"]["docs_after"] == sum(
        1 for d in kept if d.metadata.get("identity", {}).get("gender"))
    assert {row["stage"] for row in facts["audit"]["rows"]} >= {"quality", "toxicity", "(all stages)"}
    assert facts["crawl"]["robots_blocked"] >= 1 and facts["crawl"]["statuses"] == {"200": facts["crawl"][
        "pages_fetched"]}

    # Samples: every removal reason has its documents, with the deciding signal; spans point at the right text.
    assert set(facts["samples"]["removed"]) == {f"{s}/{r}" for s, r in reasons}
    duplicate = facts["samples"]["removed"]["dedup/exact_duplicate"][0]
    assert duplicate["details"]["duplicate of"] in {d.id for d in kept}
    removed = facts["samples"]["removed"]["toxicity/toxicity_high_score"]
    text = {d.id: d.text for d in rejected}
    rant = next(sample for sample in removed if sample["url"].endswith("/en/forum/rant.html"))
    flagged = [text[rant["id"]][start:end] for start, end, kind, _ in rant["spans"] if kind == "toxicity"]
    assert flagged and all(re.search(r"idiot|moron|stupid|crap|shit|hate", span.lower()) for span in flagged)


def test_report_html_escapes_every_document(report: dict[str, Path]) -> None:
    page = report["html"].read_text()
    assert "<script" not in page  # not one script element, ours or a document's
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert '<mark class="hl-pii" title="PII redacted: email">&lt;EMAIL&gt;</mark>' in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page)  # nothing loads from elsewhere


def test_datasheet_answers_what_was_measured_and_asks_the_rest(audited_run: Path, report: dict[str, Path]) -> None:
    sheet = report["datasheet"].read_text()
    assert sheet.startswith("# Datasheet")
    headings = re.findall(r"^## (.+)$", sheet, flags=re.M)
    assert headings == list(GEBRU_SECTIONS)
    kept = sum(1 for _ in read_documents(audited_run / "curated" / "data"))
    assert f"{kept} documents kept of 48 read" in sheet
    assert "robots.txt obeyed: True" in sheet
    assert "`toxicity` (toxicity): " in sheet and "threshold=0.8" in sheet  # filters and thresholds listed
    assert "| `quality` |" in sheet  # the per-stage removal table
    assert "email: 1, phone: 1" in sheet
    assert "Kept documents by detected language: en (" in sheet
    funding = next(line for line in sheet.splitlines() if "Who funded" in line)
    assert ASK in funding  # only a person can say
    count = int(re.search(r"(\d+) questions are left for a person", sheet).group(1))
    assert count == sheet.count(ASK) - 1 > 10  # the legend at the top mentions the marker once


def test_dataset_card_makes_the_curated_folder_loadable(audited_run: Path, report: dict[str, Path],
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    curated = audited_run / "curated"
    card = report["card"]
    assert card == curated / "README.md"
    text = card.read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    kept = list(read_documents(curated / "data"))
    assert set(front["language"]) == {d.metadata["language"] for d in kept}
    assert front["size_categories"] == ["n<1K"] and front["license"] == "unknown"
    assert front["configs"][0]["data_files"] == [{"split": "train", "path": "data/*.parquet"}]

    # The hub's loader reads the card: only data/ becomes the dataset (rejected/ has other columns).
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ds = datasets.load_dataset(str(curated), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == len(kept)
    assert set(ds["id"]) == {d.id for d in kept}

    # A card a person has edited (marker removed) is never overwritten.
    card.write_text(text.replace(MARKER, "") + "\nOur own notes.\n")
    paths = build_report(audited_run, tmp_path / "again", output_format="html")
    assert "card" not in paths and "Our own notes." in card.read_text()
    assert paths["card_copy"].read_text().startswith("---\n")
    card.write_text(text)
