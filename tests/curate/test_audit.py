"""The disparate-impact audit over every filtering stage of a real pipeline run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corpus.cli import app
from corpus.core.config import build_jobs, load_config
from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.executors import LocalExecutor
from corpus.core.io import write_shard
from corpus.curate.audit import audit_run, wilson_interval

LONG = ("The river flows past the old stone bridge and the orchard, and the water is cold and clear in the "
        "morning. Along the bank the path is wide enough for two walkers, and the trees give shade to anyone "
        "who stops to rest. In the autumn the leaves turn red and gold, and the mill at the end of the valley "
        "grinds the grain that the farms have brought in from the fields. Item {i}.")
SHORT = "A short note about the river and the bridge, item {i}."


def row(audit: dict, stage: str, kind: str = "removed") -> dict:
    return next(r for r in audit["stages"] if r["stage"] == stage and r["kind"] == kind)


def run(tmp_path: Path, docs: list[Document], stages: list, name: str = "out") -> dict:
    write_shard(tmp_path / f"{name}-in" / "a.jsonl", docs[: len(docs) // 2])
    write_shard(tmp_path / f"{name}-in" / "b.jsonl", docs[len(docs) // 2 :])  # two ranks
    config = tmp_path / f"{name}.yaml"
    config.write_text(json.dumps({"output_format": "jsonl", "stages": stages}))
    return LocalExecutor(workers=1, progress=False).run(load_config(config), tmp_path / f"{name}-in", tmp_path / name)


def test_wilson_interval_matches_known_values() -> None:
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(50, 100, confidence=0.99) == pytest.approx((0.3753, 0.6247), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_audit_covers_quality_toxicity_and_dedup_stages(tmp_path: Path) -> None:
    docs = [Document(f"n{i}", LONG.format(i=i) + (" He agreed." if i < 10 else "")) for i in range(80)]
    docs += [Document(f"s{i}", SHORT.format(i=i)) for i in range(20)]
    docs += [Document(f"wl{i}", "The women of the village said she liked it. " + LONG.format(i=100 + i))
             for i in range(30)]
    docs += [Document(f"ws{i}", "The women said she liked it. " + SHORT.format(i=100 + i)) for i in range(30)]
    muslim = [Document(f"m{i}", "Muslim neighbours built the bridge. " + LONG.format(i=200 + i)) for i in range(10)]
    docs += muslim + [Document(f"{d.id}-copy", d.text) for d in muslim]  # exact duplicates, removed by dedup
    stats = run(tmp_path, docs, [
        "normalize",
        {"stage": "gopher_quality", "id": "quality", "min_doc_words": 50},
        "bias",  # after the quality filter: the audit annotates what that filter removed itself
        {"stage": "toxicity", "scorer": "wordlist"},
        {"stage": "exact_dedup", "id": "dedup"},
        {"stage": "audit", "min_docs": 10},
    ])
    audit = stats["audit"]
    assert audit["documents"] == 180 and audit["documents_kept"] == 120 and audit["unannotated"] == 0

    quality = row(audit, "quality")
    assert (quality["in"], quality["removed"]) == (180, 50)
    women = quality["groups"]["gender"]
    assert (women["in"], women["removed"]) == (60, 30)
    assert women["ratio"] == pytest.approx(0.5 / (50 / 180), abs=1e-3) and women["flagged"] is True
    assert women["ci"][0] < women["ratio"] < women["ci"][1] and women["significant"] is True
    assert quality["subgroups"]["gender/women"]["flagged"] is True
    assert quality["groups"]["religion"]["ratio"] == 0 and quality["groups"]["religion"]["flagged"] is False

    dedup = row(audit, "dedup")
    assert (dedup["in"], dedup["removed"]) == (130, 10)
    assert dedup["groups"]["religion"]["ratio"] == pytest.approx(0.5 / (10 / 130), abs=1e-3)
    assert dedup["groups"]["religion"]["flagged"] is True and dedup["groups"]["gender"]["removed"] == 0

    tagged = row(audit, "toxicity", "tagged")  # scored but not filtering: what it would remove
    assert tagged["in"] == 130 and tagged["removed"] == 0
    overall = row(audit, "(all stages)")
    assert (overall["in"], overall["removed"]) == (180, 60)
    assert {(f["stage"], f["group"]) for f in audit["flags"]} >= {("quality", "gender"), ("dedup", "religion")}

    gender = audit["representation"]["gender"]
    assert (gender["share_before"], gender["share_after"]) == (pytest.approx(60 / 180), pytest.approx(30 / 120))
    assert audit["pronouns"]["before"] == {"male": 10, "female": 60, "male_per_female": pytest.approx(1 / 6, 1e-3),
                                           "docs_male": 10, "docs_female": 60}
    assert audit["pronouns"]["after"]["male_per_female"] == pytest.approx(1 / 3, 1e-3)

    # The audit reads only the run folder: recomputing it later gives the same answer.
    assert audit_run(tmp_path / "out", min_docs=10) == json.loads(json.dumps(audit))


def test_mitigation_difference_shows_in_the_audit(tmp_path: Path) -> None:
    docs = [Document(f"h{i}", f"The Negro League team number {i} played baseball in Kansas City that summer.")
            for i in range(25)]
    docs += [Document(f"p{i}", f"What the fuck is this shit number {i}.") for i in range(25)]
    docs += [Document(f"c{i}", f"The garden path number {i} leads down to the river.") for i in range(50)]
    toxicity = {"stage": "toxicity", "id": "blocklist", "scorer": "wordlist", "threshold": 0}
    plain = run(tmp_path, docs, ["bias", toxicity, "audit"], "plain")["audit"]
    mitigated = run(tmp_path, docs, ["bias", {**toxicity, "mitigate": True}, "audit"], "mitigated")["audit"]

    race = row(plain, "blocklist")["groups"]["race_ethnicity"]
    assert race["rate"] == 1.0 and race["ratio"] == pytest.approx(2.0) and race["flagged"] is True
    blocklist = row(mitigated, "blocklist")
    assert blocklist["mitigated"] == 25 and blocklist["removed"] == 25
    assert blocklist["groups"]["race_ethnicity"]["rate"] == 0.0
    assert blocklist["without_mitigation"]["groups"]["race_ethnicity"]["ratio"] == pytest.approx(2.0)
    assert row(mitigated, "(all stages)")["without_mitigation"]["removed"] == 50
    assert mitigated["representation"]["race_ethnicity"]["share_after"] > plain["representation"]["race_ethnicity"][
        "share_after"] == 0.0


def test_toxicity_preset_audits_without_removing_anything(tmp_path: Path) -> None:
    docs = [Document(f"d{i}", f"Gay and lesbian couples met in the park number {i}. What the fuck.") for i in range(5)]
    docs += [Document(f"c{i}", f"The quiet garden number {i} grows beans and tomatoes.") for i in range(5)]
    write_shard(tmp_path / "in" / "a.jsonl", docs)
    result = CliRunner().invoke(app, ["curate", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                                      "--preset", "toxicity", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "disparate-impact audit" in result.output and "toxicity (if it filtered)" in result.output
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["documents_kept"] == 10 and stats["documents_rejected"] == 0
    tagged = row(stats["audit"], "toxicity", "tagged")
    assert tagged["removed"] == 5 and tagged["groups"]["sexual_orientation"]["ratio"] == pytest.approx(2.0)
    assert [s["id"] for s in stats["jobs"][0]["stages"]] == ["normalize", "lang", "bias", "toxicity", "audit"]


def test_audit_parameters_are_validated(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text(json.dumps({"stages": [{"stage": "audit", "factor": 0.8}]}))
    with pytest.raises(CorpusError, match="factor must be above 1"):
        build_jobs(load_config(config))
    with pytest.raises(CorpusError, match="no stats.json"):
        audit_run(tmp_path)
