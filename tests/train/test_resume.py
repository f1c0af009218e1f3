"""Checkpoints: an interrupted run, resumed from its checkpoint, follows the uninterrupted loss curve."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from corpus.core.errors import CorpusError
from corpus.train.pretrain import pretrain
from corpus.train.tokenizer import train_tokenizer

# Dropout stays on (0.1): resuming must restore the RNG too, not only weights and data position.
RUN = {"steps": 10, "seq_len": 64, "batch_size": 4, "vocab_size": 256, "lr": 2e-3, "log_every": 1,
       "device": "cpu", "progress": False, "eval_fraction": 0.0}


def losses(folder: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


@pytest.fixture(scope="module")
def run(prose: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The run's settings with one shared tokenizer: WordPiece training in `tokenizers` is not deterministic
    (huggingface/tokenizers#1794) and these tests compare runs. A resumed run reuses its saved tokenizer."""
    folder = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(prose, folder, vocab_size=256)
    return {**RUN, "tokenizer": folder}


@pytest.fixture(scope="module")
def uninterrupted(
    prose_corpus: Path, run: dict, tmp_path_factory: pytest.TempPathFactory
) -> dict[int, float]:
    out = tmp_path_factory.mktemp("whole")
    pretrain(prose_corpus, out, **run)
    return losses(out)


def test_resume_continues_exactly(
    prose_corpus: Path, tmp_path: Path, run: dict, uninterrupted: dict[int, float]
) -> None:
    first = pretrain(prose_corpus, tmp_path, checkpoint_every=4, stop_after=6, **run)
    assert first["steps"] == 6 and not first["finished"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-0000004", "step-0000006"]
    second = pretrain(prose_corpus, tmp_path, checkpoint_every=4, resume=True, **run)
    assert second["steps"] == 10 and second["finished"]
    resumed = losses(tmp_path)
    assert sorted(resumed) == sorted(uninterrupted) == list(range(1, 11))
    for step, loss in uninterrupted.items():
        assert math.isclose(resumed[step], loss, rel_tol=1e-5), (step, resumed[step], loss)


def test_corrupt_checkpoint_falls_back_to_the_previous_one(
    prose_corpus: Path, tmp_path: Path, run: dict, uninterrupted: dict[int, float]
) -> None:
    pretrain(prose_corpus, tmp_path, checkpoint_every=2, stop_after=4, **run)
    latest = tmp_path / "checkpoints" / "step-0000004" / "state.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # a run killed while writing, or a bad disk
    with pytest.warns(UserWarning, match="step-0000004: unusable checkpoint"):
        summary = pretrain(prose_corpus, tmp_path, checkpoint_every=2, resume=True, **run)
    assert summary["finished"]
    resumed = losses(tmp_path)
    assert all(math.isclose(resumed[s], uninterrupted[s], rel_tol=1e-5) for s in range(1, 11))


def test_resume_refuses_a_checkpoint_from_another_config(
    prose_corpus: Path, tmp_path: Path, run: dict
) -> None:
    pretrain(prose_corpus, tmp_path, checkpoint_every=2, stop_after=2, **run)
    with pytest.raises(CorpusError, match="another configuration.*batch_size"):
        pretrain(prose_corpus, tmp_path, resume=True, **{**run, "batch_size": 8})


def test_a_model_is_replaced_only_with_overwrite_and_only_our_checkpoints_go(
    prose_corpus: Path, tmp_path: Path, run: dict
) -> None:
    pretrain(prose_corpus, tmp_path, checkpoint_every=2, stop_after=4, **run)
    notes = tmp_path / "checkpoints" / "my-notes.txt"
    notes.write_text("the user's own file")
    with pytest.raises(CorpusError, match="holds a model already.*--overwrite.*--resume"):
        pretrain(prose_corpus, tmp_path, **{**run, "steps": 2})
    pretrain(prose_corpus, tmp_path, overwrite=True, **{**run, "steps": 2})
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["my-notes.txt"]  # no old step-*
    assert notes.read_text() == "the user's own file"
    assert sorted(losses(tmp_path)) == [1, 2]
