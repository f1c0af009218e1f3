from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from corpus.core.config import load_config
from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.executors import LocalExecutor
from corpus.core.io import read_documents, read_manifest, verify_manifest, write_shard
from tests.corpus.flaky_stages import arrow_allocator


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


# --- bad input, stage errors, dry run, kill and resume ------------------------------------------

GOOD = ("The library opened its doors in spring and the people of the village came in to read. The librarian "
        "kept a careful record of every loan and noticed which books were the most popular.")


def test_bad_inputs_are_counted_and_quarantined_with_file_and_line(tmp_path: Path) -> None:
    import gzip

    folder = tmp_path / "in"
    folder.mkdir()
    good = [json.dumps({"id": f"g{i}", "text": f"{GOOD} Number {i}."}) for i in range(400)]
    (folder / "a.jsonl").write_bytes(
        ("\n".join(good[:3] + ['{"id": "broken", "text": ', json.dumps({"id": "notext", "title": "x"})]) + "\n")
        .encode() + b'{"id": "latin1", "text": "caf\xe9"}\n')
    (folder / "b-empty.jsonl").write_bytes(b"")
    whole = gzip.compress(("\n".join(good[3:]) + "\n").encode())
    (folder / "c-truncated.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    write_shard(folder / "d.parquet", [Document(f"p{i}", f"{GOOD} Parquet {i}.") for i in range(5)])
    (folder / "e-truncated.parquet").write_bytes((folder / "d.parquet").read_bytes()[:300])
    stats = LocalExecutor(workers=2, progress=False).run(
        load_config(overrides=["quality.min_doc_words=5"]), folder, tmp_path / "out")
    per_file = stats["quarantined_per_file"]
    assert per_file[str(folder / "a.jsonl")] == 3
    assert per_file[str(folder / "b-empty.jsonl")] == 1 and stats["empty_files"] == 1
    assert per_file[str(folder / "c-truncated.jsonl.gz")] == 1
    assert per_file[str(folder / "e-truncated.parquet")] == 1
    assert stats["malformed"] == 5  # three bad lines, a truncated gzip, an unreadable Parquet file
    where = {q.split(": ")[0] for q in stats["quarantined"]}
    assert {f"{folder / 'a.jsonl'}:4", f"{folder / 'a.jsonl'}:5", f"{folder / 'a.jsonl'}:6"} <= where
    kept = {d.id for d in read_documents(tmp_path / "out")}
    assert {"g0", "g1", "g2", "p0", "p4"} <= kept  # the good records of every file went on
    recovered = {k for k in kept if k.startswith("g") and int(k[1:]) >= 3}  # read before the cut
    assert recovered and stats["documents_in"] == 3 + len(recovered) + 5


def test_a_stage_that_raises_on_one_document_is_recorded_and_the_run_goes_on(shards: Path, tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text("stages:\n  - normalize\n  - stage: tests.corpus.flaky_stages:FailOn\n    id: flaky\n"
                      "    ids: [fr-1]\n")
    stats = LocalExecutor(workers=1, progress=False).run(load_config(config), shards, tmp_path / "out")
    assert stats["errors"] == 1 and stats["documents_kept"] == 5
    [error] = [json.loads(line) for p in (tmp_path / "out" / "errors").glob("*.jsonl") for line in p.open()]
    assert error["id"] == "fr-1" and error["stage"] == "flaky" and "cannot handle fr-1" in error["error"]
    with pytest.raises(CorpusError, match="stage 'flaky' failed on document 'fr-1': ValueError: cannot handle"):
        LocalExecutor(workers=1, strict=True, progress=False).run(load_config(config), shards, tmp_path / "strict")


def test_dry_run_reports_removals_with_samples_and_writes_no_shards(shards: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from corpus.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["curate", str(shards), "-o", str(out), "--dry-run", "--workers", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "dry_run.json").read_text())
    assert report["documents_in"] == 6 and report["documents_kept"] == 4
    samples = report["samples"]
    assert [s["id"] for s in samples["dedup/exact_duplicate"]] == ["en-dup"]
    assert samples["quality/gopher_short_doc"][0]["metadata"]["signals"]["gopher_words"] < 50
    assert sorted(p.name for p in out.iterdir()) == [".corpus-run.json", "dry_run.json"]  # no shards, stats, work
    assert "would remove: quality/gopher_short_doc" in result.output


def _stage_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for d in ("data", "rejected") for p in sorted((out / d).iterdir())
            if p.name != ".manifest.json"}


def test_killed_run_resumes_without_losing_or_duplicating_and_skips_finished_shards(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    inp = tmp_path / "in"
    for s in range(10):
        docs = [Document(f"s{s}-{i}", f"{GOOD} Shard {s}, document {i}.") for i in range(12)]
        docs.append(Document(f"s{s}-dup", f"{GOOD} Shard 0, document 0."))  # duplicates across shards
        write_shard(inp / f"shard-{s:02d}.jsonl.gz", docs)
    config = tmp_path / "p.yaml"
    config.write_text("output_format: jsonl.gz\nstages:\n  - normalize\n"
                      "  - {stage: 'tests.corpus.flaky_stages:Slow', seconds: 0.04}\n"
                      "  - {stage: gopher_quality, min_doc_words: 5}\n  - {stage: exact_dedup, id: dedup}\n")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = tmp_path / "out"
    command = [sys.executable, "-m", "corpus.cli", "curate", str(inp), "-o", str(out), "--config", str(config),
               "--workers", "2"]
    run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    markers = out / "_work" / "completions" / "main"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(markers.glob("*.json"))) < 3:
        time.sleep(0.01)
    os.kill(run.pid, signal.SIGKILL)
    run.wait(timeout=10)
    time.sleep(0.3)  # the workers die with their parent
    done = {p.name: p.stat().st_mtime_ns for p in markers.glob("*.json")}
    assert 3 <= len(done) < 10, "the run must be killed mid-way"
    # While another run holds the folder, a second one is refused rather than interleaved.
    from corpus.core.executors import _exclusive

    with _exclusive(out):
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 1 and "another run" in second.stdout + second.stderr
    parts = {p.name: p.stat().st_mtime_ns for p in (out / "_work" / "main").glob("part-*")}
    assert not (out / "stats.json").exists()

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["resumed_ranks"] >= len(done)
    assert all(markers.joinpath(name).stat().st_mtime_ns == t for name, t in done.items())  # not redone
    finished = {f"part-{name[:-5]}" for name in done}
    unchanged = [n for n in parts if n.rsplit("-", 1)[0] in finished]
    assert unchanged and all((out / "_work" / "main" / n).stat().st_mtime_ns == parts[n] for n in unchanged)

    # Nothing lost, nothing twice, and byte-identical to an uninterrupted run of the same config.
    ids = [d.id for d in read_documents(out)]
    assert len(ids) == len(set(ids)) == 120
    assert stats["documents_rejected"] == 10
    clean = tmp_path / "clean"
    LocalExecutor(workers=1, progress=False).run(load_config(config), inp, clean)
    assert _stage_files(out) == _stage_files(clean)


def test_large_shards_split_across_ranks_give_the_same_documents_in_the_same_order(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "in"
    folder.mkdir()
    lines = [json.dumps({"id": f"j{i:03d}", "text": f"{GOOD} Line {i}."}) for i in range(300)]
    lines[137] = '{"id": "broken", "text": '  # malformed, in the middle
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    rows = [{"id": f"p{i:03d}", "text": f"{GOOD} Row {i}.", "metadata": "{}"} for i in range(120)]
    pq.write_table(pa.Table.from_pylist(rows), folder / "b.parquet", row_group_size=25)  # 5 row groups
    config = tmp_path / "p.yaml"
    config.write_text("output_format: jsonl\nstages:\n  - {stage: gopher_quality, min_doc_words: 5}\n")

    def run_with(split: str, out: Path) -> dict:
        overrides = [f"split_shards_mb={split}"] if split else []
        return LocalExecutor(workers=1, progress=False).run(load_config(config, overrides=overrides), folder, out)

    whole = run_with("", tmp_path / "whole")
    split = run_with("0.02", tmp_path / "split")  # ~70 kB of JSONL -> 4 pieces; Parquet -> up to 5 row groups
    assert len(list((tmp_path / "split" / "_work" / "completions" / "main").glob("*.json"))) > 4
    assert [d.id for d in read_documents(tmp_path / "split")] == [d.id for d in read_documents(tmp_path / "whole")]
    assert split["documents_in"] == whole["documents_in"] == 299 + 120
    assert split["quarantined"] == whole["quarantined"] == [f"{folder / 'a.jsonl'}:138: malformed record: "
                                                             + whole["quarantined"][0].split("record: ", 1)[1]]


def test_every_line_lands_in_exactly_one_piece(tmp_path: Path) -> None:
    import random

    from corpus.core.io import read_shard
    from corpus.core.pieces import read_piece

    rng = random.Random(0)
    lines = [json.dumps({"id": str(i), "text": "x" * rng.randint(0, 300)}) if i % 9 else "" for i in range(200)]
    path = tmp_path / "a.jsonl"
    path.write_text("\n".join(lines) + "\n")
    expected = [d.id for d in read_shard(path)]
    for parts in range(1, 12):
        got = [d.id for k in range(parts) for d in read_piece(path, k, parts, lambda bad: None)]
        assert got == expected, parts


def test_worker_processes_give_arrow_memory_back_and_the_callers_process_is_left_alone() -> None:
    import pyarrow as pa

    mine = pa.default_memory_pool().backend_name
    tasks = [SimpleNamespace(rank=r) for r in range(2)]
    results = LocalExecutor(workers=2, progress=False).map(tasks, "allocators", fn=arrow_allocator)
    assert [r["allocator"] for r in results] == ["system", "system"]
    assert pa.default_memory_pool().backend_name == mine
