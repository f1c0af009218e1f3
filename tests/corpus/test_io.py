from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from corpus.core.document import Document, stable_id
from corpus.core.errors import CorpusError
from corpus.core.io import (
    Malformed,
    ShardWriter,
    list_shards,
    read_documents,
    read_manifest,
    read_shard,
    verify_manifest,
    write_manifest,
    write_shard,
)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".jsonl.gz"])
def test_round_trip_keeps_ids_text_and_metadata(tmp_path: Path, suffix: str) -> None:
    docs = [
        Document("a", "héllo wörld 🌍", {"url": "http://x.test/", "score": 0.5, "tags": ["x"]}),
        Document("b", "second\nline", {"nested": {"k": 1}}),
    ]
    write_shard(tmp_path / f"s{suffix}", docs)
    back = list(read_shard(tmp_path / f"s{suffix}"))
    assert back == docs


def test_missing_id_gets_stable_id_from_url_or_content(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"text": "some text", "url": "http://a.test/p"}) + "\n" + json.dumps({"text": "other"}) + "\n"
    )
    first, second = list(read_shard(path))
    assert first.id == stable_id(url="http://a.test/p")
    assert first.metadata["url"] == "http://a.test/p"
    assert second.id == stable_id(text="other")
    assert [d.id for d in read_shard(path)] == [first.id, second.id]  # stable across reads


def test_malformed_line_is_reported_with_file_and_line_and_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "one"}\n{"text": broken\n{"no_text": 1}\n{"text": "four"}\n')
    bad: list[Malformed] = []
    docs = list(read_shard(path, on_malformed=bad.append))
    assert [d.text for d in docs] == ["one", "four"]
    assert [(b.line, b.raw) for b in bad] == [(2, '{"text": broken\n'), (3, '{"no_text": 1}\n')]
    with pytest.raises(CorpusError, match=r"bad\.jsonl:2: malformed record"):
        list(read_shard(path))


def test_truncated_gzip_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    data = gzip.compress(b"".join(json.dumps({"text": f"doc {i}"}).encode() + b"\n" for i in range(1000)))
    path.write_bytes(data[: len(data) // 2])
    bad: list[Malformed] = []
    docs = list(read_shard(path, on_malformed=bad.append))
    assert 0 < len(docs) < 1000
    assert len(bad) == 1 and "unreadable after line" in bad[0].error


def test_writer_exception_leaves_no_partial_shard(tmp_path: Path) -> None:
    def docs():
        yield Document("a", "x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), ShardWriter(tmp_path, "part", "jsonl") as writer:
        for doc in docs():
            writer.write(doc)
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_process_leaves_no_visible_shard(tmp_path: Path) -> None:
    script = (
        "import os, signal\n"
        "from corpus.core.io import ShardWriter\nfrom corpus.core.document import Document\n"
        f"w = ShardWriter({str(tmp_path)!r}, 'part', 'jsonl', max_docs=None)\n"
        "for i in range(5000): w.write(Document(str(i), 'text ' * 50))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", script], check=False)
    assert [p for p in tmp_path.iterdir() if not p.name.startswith(".")] == []
    with pytest.raises(CorpusError, match="no shards found"):
        list_shards(tmp_path)


def test_rolling_writer_and_manifest(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "part", "parquet", max_docs=3)
    for i in range(7):
        writer.write(Document(str(i), f"text {i}"))
    infos = writer.close()
    assert [(i.name, i.documents) for i in infos] == [
        ("part-000.parquet", 3), ("part-001.parquet", 3), ("part-002.parquet", 1)
    ]
    write_manifest(tmp_path, infos)
    manifest = read_manifest(tmp_path)
    assert manifest["documents"] == 7
    assert verify_manifest(tmp_path) == []
    (tmp_path / "part-001.parquet").write_bytes(b"corrupted")
    assert verify_manifest(tmp_path) == [f"{tmp_path / 'part-001.parquet'}: checksum mismatch"]


def test_list_shards_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        list_shards(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(CorpusError, match="no shards found"):
        list_shards(tmp_path)


def test_output_loads_with_hf_datasets(tmp_path: Path) -> None:
    from datasets import load_dataset

    docs = [Document(str(i), f"text {i}", {"url": f"http://x.test/{i}", "language": "en"}) for i in range(5)]
    docs.append(Document("odd", "no url here", {"other_key": [1, 2]}))
    write_shard(tmp_path / "p" / "a.parquet", docs)
    write_shard(tmp_path / "j" / "a.jsonl", docs)
    parquet = load_dataset("parquet", data_dir=str(tmp_path / "p"), split="train")
    jsonl = load_dataset("json", data_files=str(tmp_path / "j" / "a.jsonl"), split="train")
    assert parquet["id"] == jsonl["id"] == [d.id for d in docs]
    assert parquet["text"] == [d.text for d in docs]
    assert json.loads(parquet[0]["metadata"])["url"] == "http://x.test/0"
    assert list(read_documents(tmp_path / "p")) == docs
