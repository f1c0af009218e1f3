"""The run marker: --overwrite deletes only what corpus wrote, and OUT never overlaps an input."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.core.errors import CorpusError
from corpus.core.runs import MARKER, check_separate, claim_output, folder_kind, is_ours, read_marker, remove_owned


def test_claim_records_runs_and_overwrite_keeps_user_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = claim_output(out, "curate", writes=("data", "stats.json"))
    (out / "data").mkdir()
    (out / "stats.json").write_text("{}")
    run.finish(documents=3)
    assert is_ours(out) and folder_kind(out) == "curate"
    (out / "thesis.txt").write_text("mine")
    second = claim_output(out, "curate", writes=("data", "stats.json"))
    assert [r["status"] for r in read_marker(out)["runs"]] == ["finished", "running"]
    assert second.previous[0]["documents"] == 3
    claim_output(out, "curate", overwrite=True, writes=("data", "stats.json"))
    assert (out / "thesis.txt").read_text() == "mine"
    assert not (out / "data").exists() and (out / MARKER).exists()


def test_refuses_other_kinds_users_folders_and_overlap(tmp_path: Path) -> None:
    claim_output(tmp_path / "crawl", "crawl")
    with pytest.raises(CorpusError, match="holds a crawl run"):
        claim_output(tmp_path / "crawl", "curate")
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.txt").write_text("mine")
    with pytest.raises(CorpusError, match="not written by corpus"):
        claim_output(user, "curate", overwrite=True)
    with pytest.raises(CorpusError, match="not written by corpus"):
        remove_owned(user, ["thesis.txt"])
    assert (user / "thesis.txt").exists()
    for out, word in ((user, "is the input"), (user / "sub", "inside"), (tmp_path, "contains")):
        with pytest.raises(CorpusError, match=word):
            check_separate(out, [user])


def test_overwrite_keeps_files_a_user_put_inside_a_shard_folder_and_an_edited_card(shards: Path, tmp_path: Path,
                                                                                    capsys: pytest.CaptureFixture
                                                                                    ) -> None:
    from corpus.core.config import load_config
    from corpus.core.executors import LocalExecutor
    from corpus.core.io import read_documents

    out = tmp_path / "out"
    LocalExecutor(workers=1, progress=False).run(load_config(), shards, out)
    first = sorted(p.name for p in (out / "data").iterdir())
    assert any(name.endswith(".parquet") for name in first)
    (out / "data" / "notes.txt").write_text("mine")
    (out / "data" / "part-09999-000.parquet").write_bytes(b"stale shard of a killed run")
    card = (out / "README.md").read_text().splitlines()
    (out / "README.md").write_text("\n".join(line for line in card if not line.startswith("<!--")) + "\nMy notes.\n")
    LocalExecutor(workers=1, progress=False).run(load_config(), shards, out, overwrite=True)
    assert (out / "data" / "notes.txt").read_text() == "mine"
    assert "My notes." in (out / "README.md").read_text()
    assert not (out / "data" / "part-09999-000.parquet").exists()
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted([*first, "notes.txt"])
    assert {d.id for d in read_documents(out / "data")} == {"en-1", "fr-1", "de-1", "en-2"}
    assert "data/notes.txt" in capsys.readouterr().err
