"""`corpus curate --executor ray` on a real two-node Ray cluster (see conftest): the same shards as the local
executor, work spread over both nodes, a killed worker retried with nothing lost or duplicated."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corpus.cli import app
from corpus.core.config import load_config
from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.executors import LocalExecutor
from corpus.core.io import read_documents, write_shard

WORDS = ("river mill library garden bread soup star moon cloud rain field stone bridge market town road tower "
         "winter summer autumn spring orchard meadow harbour ship sail wind valley forest hill lake castle").split()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four shards, 34 documents each: unique texts plus exact copies and near copies across shards."""
    rng = random.Random(7)
    docs = [Document(f"u{i}", " ".join(rng.choice(WORDS) for _ in range(80)) + f" number {i}.") for i in range(112)]
    for i in range(0, 96, 8):
        docs.append(Document(f"copy{i}", docs[i].text))  # exact duplicate of u{i}
        words = docs[i + 1].text.split()
        words[40] = "changed"
        docs.append(Document(f"near{i}", " ".join(words)))  # near duplicate of u{i+1}
    rng.shuffle(docs)
    folder = tmp_path_factory.mktemp("in")
    for s in range(4):
        write_shard(folder / f"shard-{s}.jsonl", docs[s::4])
    return folder


def _shards(out: Path) -> dict[str, bytes]:
    """Every data and rejected shard (and both manifests) by relative path."""
    return {str(p.relative_to(out)): p.read_bytes() for d in ("data", "rejected") for p in sorted((out / d).iterdir())}


def _counters(stats: dict) -> dict[str, dict[str, float]]:
    """Each stage's counters without its timings (which differ from run to run)."""
    return {s["id"]: {k: v for k, v in s["counters"].items() if "seconds" not in k}
            for job in stats["jobs"] for s in job["stages"]}


def test_dedup_pipeline_on_two_nodes_writes_the_same_shards_as_local(ray_cluster, corpus_dir: Path,
                                                                     tmp_path: Path) -> None:
    from corpus.core.ray_executor import RayExecutor

    config = load_config(preset="dedup")
    executor = RayExecutor(address=ray_cluster.address, progress=False)
    on_ray = executor.run(config, corpus_dir, tmp_path / "ray")
    local = LocalExecutor(workers=1, progress=False).run(config, corpus_dir, tmp_path / "local")

    assert _shards(tmp_path / "ray") == _shards(tmp_path / "local")  # byte for byte
    assert on_ray["documents_in"] == 136 and on_ray["documents_kept"] == 112 == local["documents_kept"]
    counters = _counters(on_ray)
    assert counters == _counters(local)
    assert counters["exact"]["dropped/exact_duplicate"] == 12 and counters["minhash"]["dropped/near_duplicate"] == 12
    # Every rank of every job ran exactly once, and both nodes took a share.
    jobs = [j["name"] for j in on_ray["jobs"]]
    assert sorted((p["job"], p["rank"]) for p in executor.placements) == sorted(
        (job, rank) for job in jobs for rank in range(4))
    assert len({p["node"] for p in executor.placements}) == 2
    # Run again on the same folder: every rank is found done by its completion marker, nothing is rewritten.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "data").iterdir()}
    again = RayExecutor(address=ray_cluster.address, progress=False).run(config, corpus_dir, tmp_path / "ray")
    assert again["resumed_ranks"] == len(jobs) * 4 and again["documents_kept"] == 112
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "data").iterdir() if p.name != ".manifest.json"} == {
        p: t for p, t in before.items() if p.name != ".manifest.json"}


def test_a_killed_worker_is_retried_and_nothing_is_lost_or_duplicated(ray_cluster, corpus_dir: Path,
                                                                      tmp_path: Path) -> None:
    marker = tmp_path / "killed.pid"
    config = tmp_path / "kill.yaml"
    config.write_text(
        "max_docs_per_shard: 10\nstages:\n  - {stage: exact_dedup, id: exact}\n"
        f"  - {{stage: 'tests.distributed.stages:KillOnce', marker: '{marker}', rank: 1, after: 15}}\n"
        "  - {stage: minhash_dedup, id: minhash}\n")
    out = tmp_path / "ray"
    command = [sys.executable, "-m", "corpus.cli", "curate", str(corpus_dir), "-o", str(out), "--config", str(config),
               "--executor", "ray", "--address", ray_cluster.address]
    done = subprocess.run(command, env={**os.environ, **ray_cluster.env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = int(marker.read_text())  # the stage did kill its worker, mid-job, on rank 1
    assert not Path(f"/proc/{killed}").exists()
    assert "112 kept" in done.stdout

    ids = [d.id for folder in ("data", "rejected") for d in read_documents(out / folder)]
    assert len(ids) == len(set(ids)) == 136  # every input document exactly once: kept or rejected
    kept = {d.id for d in read_documents(out / "data")}
    for i in range(0, 96, 8):  # one document of every planted pair survives
        assert len(kept & {f"u{i}", f"copy{i}"}) == 1 and len(kept & {f"u{i + 1}", f"near{i}"}) == 1
    # The retried run wrote what an undisturbed local run writes (the marker exists now: nothing is killed).
    LocalExecutor(workers=1, progress=False).run(load_config(config), corpus_dir, tmp_path / "local")
    assert _shards(out) == _shards(tmp_path / "local")


def test_a_stage_error_is_not_retried_and_names_the_rank(ray_cluster, corpus_dir: Path, tmp_path: Path) -> None:
    from corpus.core.ray_executor import RayExecutor

    config = tmp_path / "fail.yaml"
    config.write_text("stages:\n  - {stage: 'tests.corpus.flaky_stages:FailOn', id: flaky, ids: [u3]}\n")
    executor = RayExecutor(address=ray_cluster.address, strict=True, progress=False)
    with pytest.raises(CorpusError, match=r"rank \d.*stage 'flaky' failed on document 'u3'"):
        executor.run(load_config(config), corpus_dir, tmp_path / "out")


def test_executor_options_are_checked(corpus_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    wrong = runner.invoke(app, ["curate", str(corpus_dir), "-o", str(tmp_path / "a"), "--executor", "spark"])
    assert wrong.exit_code == 1 and "local or ray" in wrong.output
    stray = runner.invoke(app, ["curate", str(corpus_dir), "-o", str(tmp_path / "b"), "--address", "127.0.0.1:1"])
    assert stray.exit_code == 1 and "--address needs --executor ray" in stray.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_an_address_where_no_ray_listens_fails_fast_and_writes_nothing(corpus_dir: Path, tmp_path: Path) -> None:
    import socket

    pytest.importorskip("ray")
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(app, ["curate", str(corpus_dir), "-o", str(tmp_path / "out"), "--executor", "ray",
                                      "--address", f"127.0.0.1:{port}"])
    assert result.exit_code == 1 and f"no Ray cluster answers at 127.0.0.1:{port}" in result.output
    assert not (tmp_path / "out").exists()
