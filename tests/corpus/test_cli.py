from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from corpus.cli import app

runner = CliRunner()


def test_curate_and_report_commands(shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["curate", str(shards), "-o", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "curate: 6 in, 4 kept" in result.output
    assert json.loads((out / "stats.json").read_text())["documents_kept"] == 4
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report" / "report.html").read_text()
    assert "id='docs-kept'>4<" in page
    assert "Not in this run: crawl" in page  # a curate-only folder says what is missing
    assert (out / "report" / "datasheet.md").read_text().startswith("# Datasheet")


def test_rerun_resumes_and_overwrite_starts_again(shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert runner.invoke(app, ["curate", str(shards), "-o", str(out), "--workers", "1"]).exit_code == 0
    runner.invoke(app, ["curate", str(shards), "-o", str(out), "--workers", "1"])
    assert json.loads((out / "stats.json").read_text())["resumed_ranks"] == 6
    args = ["curate", str(shards), "-o", str(out), "--workers", "1", "--set", "lang.threshold=0.9"]
    assert runner.invoke(app, args).exit_code == 1
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert json.loads((out / "stats.json").read_text())["resumed_ranks"] == 0


def test_user_mistakes_are_one_line_errors_without_traceback(shards: Path, tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("stages:\n  - stage: language\n    treshold: 0.3\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["curate", str(tmp_path / "missing"), "-o", str(tmp_path / "o")], "missing: input folder does not exist"),
        (["curate", str(empty), "-o", str(tmp_path / "o")], "empty: no shards found"),
        (["curate", str(shards), "-o", str(tmp_path / "o"), "-c", str(bad_yaml)], "bad.yaml:2: stage 'language'"),
        (["curate", str(shards), "-o", str(tmp_path / "o"), "--preset", "nope"], "unknown preset 'nope'"),
        (["report", str(tmp_path / "missing")], "run folder does not exist"),
        (["report", str(empty)], "no crawl_stats.json or stats.json"),
        (["crawl", "not-a-url", "-o", str(tmp_path / "c")], "not an http(s) URL"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output.replace("\n", ""), (args, result.output)
        assert "Traceback" not in result.output
