"""NER fine-tuning: CoNLL and JSONL input, word-piece label alignment, entity-level F1, tagging new text."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from transformers import AutoModelForTokenClassification

from corpus.core.errors import CorpusError
from corpus.train.finetune import finetune, load_tokenizer
from corpus.train.labelled import IGNORE_INDEX
from corpus.train.ner import TaggedExample, encode, entities, labels_of, metrics, read_conll, read_examples
from corpus.train.predict import Predictor

PEOPLE = [["alice"], ["bob"], ["carol", "smith"], ["dave"], ["mary", "ann", "jones"]]
PLACES = [["paris"], ["london"], ["new", "york"], ["rome"], ["the", "hague"]]
TEMPLATES = [
    "{PER} went to {LOC} in spring", "in {LOC} {PER} baked bread", "{PER} and {PER} met near {LOC}",
    "the river near {LOC} was wide", "{PER} read a book", "farmers from {LOC} sold grain to {PER}",
]
FAST = {"batch_size": 8, "max_length": 32, "device": "cpu", "progress": False}


def sentences(count: int, seed: int) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words, tags = [], []
        for piece in rng.choice(TEMPLATES).split():
            if piece in ("{PER}", "{LOC}"):
                kind = piece[1:4]
                name = rng.choice(PEOPLE if kind == "PER" else PLACES)
                words += name
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
            else:
                words.append(piece)
                tags.append("O")
        out.append((words, tags))
    return out


def write_conll(path: Path, rows: list[tuple[list[str], list[str]]]) -> Path:
    blocks = ["-DOCSTART- -X- O O\n"]
    for words, tags in rows:
        blocks.append("".join(f"{w} NN O {t}\n" for w, t in zip(words, tags, strict=True)))
    path.write_text("\n".join(blocks))
    return path


def test_conll_reader_skips_docstart_and_reads_the_last_column(tmp_path: Path) -> None:
    path = write_conll(tmp_path / "a.conll", sentences(3, 0))
    examples = read_conll(path)
    assert [e.words for e in examples] == [w for w, _ in sentences(3, 0)]
    assert [e.tags for e in examples] == [t for _, t in sentences(3, 0)]
    assert examples[0].where == f"{path}:3"  # the sentence's first line
    assert labels_of(examples)[0] == "O" and set(labels_of(examples)) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"}


def test_bad_tags_and_lengths_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conll"
    bad.write_text("alice B-PER\nwent O\n\nbob PERSON\n")
    with pytest.raises(CorpusError, match=r"bad.conll:4: 'PERSON' is not a BIO tag"):
        read_conll(bad)
    bad.write_text("alice\n")
    with pytest.raises(CorpusError, match=r"bad.conll:1: expected a word and its tag"):
        read_conll(bad)
    assert read_conll(bad, require_labels=False)[0].words == ["alice"]  # prediction input: words only
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text(json.dumps({"tokens": ["a", "b"], "tags": ["O"]}) + "\n")
    with pytest.raises(CorpusError, match=r"bad.jsonl:1: 2 words but 1 tags"):
        read_examples(jsonl)


def test_labels_sit_on_the_first_word_piece_only(tiny_bert: Path) -> None:
    tok = load_tokenizer(tiny_bert)
    example = TaggedExample(["alice", "visited", "zanzibar"], ["B-PER", "O", "B-LOC"], "x:1")
    pieces = [tok.tokenize(w) for w in example.words]
    assert len(pieces[2]) > 1  # an unknown word splits into several pieces
    label2id = {"O": 0, "B-LOC": 1, "I-LOC": 2, "B-PER": 3, "I-PER": 4}
    feature = encode([example], tok, label2id, max_length=32)[0]
    starts = [1, 1 + len(pieces[0]), 1 + len(pieces[0]) + len(pieces[1])]  # after [CLS]
    assert feature["first"] == starts
    expected = [IGNORE_INDEX] * len(feature["input_ids"])
    for position, tag in zip(starts, example.tags, strict=True):
        expected[position] = label2id[tag]
    assert feature["labels"] == expected
    # Cut off by max_length: the last word has no piece left, so it is marked -1 (predicted O later).
    short = encode([example], tok, label2id, max_length=len(pieces[0]) + len(pieces[1]) + 2)[0]
    assert short["first"][2] == -1


def test_entity_level_f1_counts_whole_spans() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    half = [["B-PER", "O", "O", "B-LOC"]]  # the person span is cut short: a wrong entity, not half right
    result = metrics(gold, half)
    assert result["precision"] == result["recall"] == result["f1"] == 0.5
    assert result["per_type"]["PER"]["f1"] == 0.0 and result["per_type"]["LOC"]["f1"] == 1.0
    assert result["accuracy"] == 0.75  # word-level accuracy is kinder
    assert entities(["new", "york", "is", "big"], ["B-LOC", "I-LOC", "O", "O"]) == [
        {"type": "LOC", "start": 0, "end": 1, "text": "new york"}]


def test_ner_fine_tunes_from_conll_and_tags_new_sentences(tiny_bert: Path, tmp_path: Path) -> None:
    train = write_conll(tmp_path / "train.conll", sentences(120, 0))
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps({"tokens": w, "tags": t}) + "\n" for w, t in sentences(30, 1)))
    out = tmp_path / "ner"
    summary = finetune(tiny_bert, train, out, task="ner", eval=str(dev), epochs=6, lr=3e-3, patience=0, **FAST)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["task"] == "ner" and saved["f1"] == summary["f1"] >= 0.8
    assert set(saved["eval"]["per_type"]) == {"PER", "LOC"}
    model = AutoModelForTokenClassification.from_pretrained(out)
    assert model.config.id2label[0] == "O" and len(model.config.id2label) == 5

    tagged = Predictor(out, device="cpu").tag([["alice", "went", "to", "new", "york"]])[0]
    assert tagged["tags"] == ["B-PER", "O", "O", "B-LOC", "I-LOC"]
    assert [e["text"] for e in tagged["entities"]] == ["alice", "new york"]
