"""Runs with missing parts say what is missing; two runs side by side; the command line's formats."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corpus.cli import app
from corpus.core.errors import CorpusError
from corpus.core.io import read_documents
from corpus.report import build_report, compare_reports
from tests.report.conftest import LIGHT_PIPELINE, curate

runner = CliRunner()


def test_curate_without_dedup_or_toxicity_says_what_was_not_measured(light_run: Path, tmp_path: Path) -> None:
    paths = build_report(light_run, tmp_path / "report")
    facts = json.loads(paths["json"].read_text())
    assert [m["part"] for m in facts["missing"]] == ["dedup", "toxicity", "identity", "audit", "pii"]
    assert facts["crawl"] is not None  # found through the input recorded in stats.json
    assert any("crawl found through the curate input" in note for note in facts["notes"])
    assert facts["duplicates"] is None and facts["toxicity"] is None and facts["pii"] is None
    page = paths["html"].read_text()
    assert "Not in this run: dedup, toxicity, identity, audit, pii." in page
    for part in ("dedup", "toxicity", "identity", "audit", "pii"):
        assert f'data-missing="{part}"' in page
    sheet = paths["datasheet"].read_text()
    assert "No (deduplication was not in this run)." in sheet
    assert "Not measured (no toxicity stage in this run)." in sheet
    assert "Not measured (no PII stage in this run)." in sheet
    card = paths["card"].read_text()
    assert "Not checked: the pipeline had no PII stage." in card
    assert "Not measured in this run: dedup, toxicity, identity, audit, pii." in card


def test_curate_output_alone_rebuilds_before_from_kept_and_removed(light_run: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(light_run, moved, ignore=shutil.ignore_patterns("README.md"))
    stats = json.loads((moved / "stats.json").read_text())
    stats["input"] = str(tmp_path / "gone")  # the input shards are not on this machine
    (moved / "stats.json").write_text(json.dumps(stats))
    facts = json.loads(build_report(moved, output_format="json")["json"].read_text())
    assert facts["missing"][0]["part"] == "crawl"
    assert any("rebuilt from kept + removed documents" in note for note in facts["notes"])
    assert facts["lengths"]["before_source"] == "kept + removed documents"
    assert facts["lengths"]["chars_before"]["n"] == stats["documents_in"]


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no crawl_stats.json or stats.json"):
        build_report(tmp_path)
    result = runner.invoke(app, ["report", str(tmp_path), str(tmp_path), str(tmp_path)])
    assert result.exit_code == 1 and "give one run folder, or two to compare" in result.output
    result = runner.invoke(app, ["report", str(tmp_path), "--format", "xml"])
    assert result.exit_code == 1 and "--format must be one of html, json, md" in result.output


def test_two_runs_side_by_side_show_what_the_config_change_did(light_run: Path, tmp_path: Path) -> None:
    strict = tmp_path / "strict"
    curate(Path(json.loads((light_run / "stats.json").read_text())["input"]), strict,
           LIGHT_PIPELINE.format(min_words=250))
    paths = compare_reports(light_run, strict, tmp_path / "compare")
    facts = json.loads(paths["json"].read_text())
    assert {"key": "quality.min_doc_words", "a": 50, "b": 250} in facts["config_diff"]
    kept_a = {d.id for d in read_documents(light_run / "data")}
    kept_b = {d.id for d in read_documents(strict / "data")}
    assert kept_b < kept_a
    documents = facts["documents"]
    assert (documents["kept_both"], documents["only_a"], documents["only_b"]) == (
        len(kept_b), len(kept_a - kept_b), 0)
    assert documents["only_a_removed_by"] == {"quality/gopher_short_doc": len(kept_a - kept_b)}
    short = next(r for r in facts["reasons"] if r["reason"] == "gopher_short_doc")
    # at least those; a document another rule removed in A may fail the word count first in B
    assert short["delta"] == short["b"] - short["a"] >= len(kept_a - kept_b)
    page = paths["html"].read_text()
    assert "quality.min_doc_words" in page and 'id="only-a">' in page

    result = runner.invoke(app, ["report", str(light_run), str(strict), "-o", str(tmp_path / "md"), "--format", "md"])
    assert result.exit_code == 0, result.output
    assert "| `quality.min_doc_words` | 50 | 250 |" in result.output
    assert f"only by {strict.name}: 0" in result.output


def test_format_json_and_md_print_the_summary_for_ci(light_run: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(light_run), "-o", str(tmp_path / "j"), "--format", "json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["summary"]["documents_kept"] == sum(1 for _ in read_documents(light_run / "data"))
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == ["report.json"]  # no HTML, no plotting
    result = runner.invoke(app, ["report", str(light_run), "-o", str(tmp_path / "m"), "--format", "md"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"# corpus report: {light_run.name}")
    assert "**Not in this run: dedup, toxicity, identity, audit, pii.**" in result.stdout
    assert f"| `quality` | {facts['funnel'][2]['in']} |" in result.stdout


def test_unreadable_records_in_shards_are_counted_not_fatal(light_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(light_run, copy, ignore=shutil.ignore_patterns("README.md"))
    (copy / "data" / "part-99999-000.jsonl").write_text('{"id": "extra", "text": "fine"}\n{"id": broken\n')
    facts = json.loads(build_report(copy, output_format="json")["json"].read_text())
    assert f"1 unreadable record(s) skipped while reading {copy / 'data'}" in facts["notes"]
    kept = sum(1 for _ in read_documents(light_run / "data"))
    assert facts["lengths"]["chars_after"]["n"] == kept + 1  # the readable record of the extra shard counts
