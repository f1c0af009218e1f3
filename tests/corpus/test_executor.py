from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.config import load_config
from corpus.errors import CorpusError
from corpus.executors import LocalExecutor
from corpus.io import read_documents, read_manifest, verify_manifest


def run(shards: Path, out: Path, workers: int = 1, overrides: list[str] | None = None) -> dict:
    return LocalExecutor(workers=workers, progress=False).run(load_config(overrides=overrides), shards, out)


def test_default_pipeline_keeps_removes_and_explains(shards: Path, tmp_path: Path) -> None:
    stats = run(shards, tmp_path / "out", workers=2)
    kept = {d.id: d for d in read_documents(tmp_path / "out")}
    assert set(kept) == {"en-1", "fr-1", "de-1", "en-2"}
    assert {k: d.metadata["language"] for k, d in kept.items()} == {"en-1": "en", "fr-1": "fr", "de-1": "de",
                                                                     "en-2": "en"}
    rejected = {d.id: d for d in read_documents(tmp_path / "out" / "rejected")}
    assert set(rejected) == {"en-dup", "short"}
    assert rejected["en-dup"].metadata["reason"] == "exact_duplicate"
    assert rejected["en-dup"].metadata["stage"] == "dedup"
    assert rejected["en-dup"].metadata["duplicate_of"] == "en-1"
    assert stats["documents_in"] == 6 and stats["documents_kept"] == 4 and stats["documents_rejected"] == 2
    stages = {s["id"]: s["counters"] for job in stats["jobs"] for s in job["stages"]}
    assert stages["normalize"]["in"] == 6
    assert stages["dedup"]["dropped/exact_duplicate"] == 1
    for counters in stages.values():
        dropped = sum(v for k, v in counters.items() if k.startswith("dropped/"))
        assert counters["in"] == counters["kept"] + dropped
    assert read_manifest(tmp_path / "out" / "data")["documents"] == 4
    assert read_manifest(tmp_path / "out" / "rejected")["documents"] == 2
    assert verify_manifest(tmp_path / "out" / "data") == []
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["documents_kept"] == 4
    assert (tmp_path / "out" / "config.yaml").exists()


def test_output_is_identical_whatever_the_worker_count(shards: Path, tmp_path: Path) -> None:
    run(shards, tmp_path / "one", workers=1)
    run(shards, tmp_path / "two", workers=2)
    one = sorted((tmp_path / "one" / "data").glob("*.parquet"))
    two = sorted((tmp_path / "two" / "data").glob("*.parquet"))
    assert [p.name for p in one] == [p.name for p in two]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two, strict=True))


def test_completed_ranks_are_not_run_again(shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(shards, out)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "data").glob("*.parquet")}
    # Pretend rank 1 of the last job was killed: no marker, no output.
    (out / "_work" / "completions" / "main.dedup" / "00001.json").unlink()
    for path in (out / "data").glob("part-00001-*"):
        path.unlink()
    stats = run(shards, out)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "data").glob("*.parquet")}
    assert stats["resumed_ranks"] == 5  # 3 ranks of job 1 + ranks 0 and 2 of job 2
    assert set(after) == set(before)
    unchanged = [n for n in before if not n.startswith("part-00001")]
    assert all(after[n] == before[n] for n in unchanged)
    assert stats["documents_kept"] == 4


def test_rerun_with_another_config_refuses_to_mix_outputs(shards: Path, tmp_path: Path) -> None:
    run(shards, tmp_path / "out")
    with pytest.raises(CorpusError, match="different pipeline config"):
        run(shards, tmp_path / "out", overrides=["lang.threshold=0.9"])


def test_malformed_input_is_quarantined_and_the_run_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    lines = [json.dumps({"id": "ok", "text": "The library opened its doors in spring and the people came to read."}),
             "{not json", json.dumps({"id": "x"}), "\xff\xfe garbage"]
    (folder / "s.jsonl").write_bytes(("\n".join(lines[:3]) + "\n").encode() + b"\xff\xfe bad bytes\n")
    stats = LocalExecutor(workers=1, progress=False).run(
        load_config(overrides=["quality.min_doc_words=5"]), folder, tmp_path / "out")
    assert stats["malformed"] == 3
    assert [q.split(": ")[0] for q in stats["quarantined"]] == [f"{folder / 's.jsonl'}:{n}" for n in (2, 3, 4)]
    quarantined = [json.loads(line) for line in (tmp_path / "out" / "quarantine" / "main-00000.jsonl").open()]
    assert [q["line"] for q in quarantined] == [2, 3, 4]
    assert quarantined[0]["raw"].startswith("{not json")
    assert [d.id for d in read_documents(tmp_path / "out")] == ["ok"]


def test_strict_stops_at_first_bad_record(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "s.jsonl").write_text('{"text": "fine"}\n{oops\n')
    with pytest.raises(CorpusError, match=r"s\.jsonl:2"):
        LocalExecutor(workers=1, strict=True, progress=False).run(load_config(), folder, tmp_path / "out")
