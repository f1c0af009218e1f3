"""`corpus train classifier`: a fastText classifier from labelled JSONL, with held-out precision and recall."""

from __future__ import annotations

import json
import random
from pathlib import Path

from typer.testing import CliRunner

from corpus.cli import app
from corpus.curate.classifier import prepare_text, train_classifier
from corpus.curate.fasttext_model import import_fasttext

INSULTS = ["idiot", "moron", "loser", "stupid", "pathetic", "disgusting", "worthless"]
NICE = ["garden", "river", "library", "bicycle", "recipe", "concert", "holiday"]


def labelled(path: Path, n: int = 300, seed: int = 1) -> Path:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 2:
            words = rng.sample(INSULTS, 2)
            rows.append({"text": f"you are a {words[0]} and a {words[1]}, honestly", "label": "OFF"})
        else:
            words = rng.sample(NICE, 2)
            rows.append({"text": f"we enjoyed the {words[0]} and the {words[1]} today", "label": "NOT"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_train_classifier_command_prints_held_out_metrics_and_saves_a_model(tmp_path: Path) -> None:
    model = tmp_path / "models" / "toxic.bin"
    result = CliRunner().invoke(app, ["train", "classifier", "--data", str(labelled(tmp_path / "l.jsonl")),
                                      "-o", str(model), "--epoch", "5", "--bucket", "10000"])
    assert result.exit_code == 0, result.output
    assert "precision" in result.output and "recall" in result.output and "OFF" in result.output
    loaded = import_fasttext().load_model(str(model))
    assert sorted(loaded.get_labels()) == ["__label__NOT", "__label__OFF"]
    labels, _ = loaded.predict([prepare_text("You are a pathetic LOSER!"), prepare_text("The river and the garden")])
    assert [ls[0] for ls in labels] == ["__label__OFF", "__label__NOT"]
    assert not list(model.parent.glob(".*tmp*"))  # written atomically


def test_held_out_split_is_deterministic_and_metrics_are_real(tmp_path: Path) -> None:
    data = labelled(tmp_path / "l.jsonl")
    first = train_classifier(data, tmp_path / "a.bin", epoch=5, bucket=10_000)
    second = train_classifier(data, tmp_path / "b.bin", epoch=5, bucket=10_000)
    assert first["valid_records"] == second["valid_records"] > 0
    assert first["train_records"] + first["valid_records"] == 300
    assert first["held_out"] == second["held_out"]
    assert first["held_out"]["OFF"]["precision"] > 0.9 and first["held_out"]["OFF"]["recall"] > 0.9
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()


def test_separate_validation_file(tmp_path: Path) -> None:
    valid = tmp_path / "valid.jsonl"
    valid.write_text(json.dumps({"text": "what an idiot", "label": "OFF"}) + "\n"
                     + json.dumps({"text": "a quiet river walk", "label": "NOT"}) + "\n")
    result = train_classifier(labelled(tmp_path / "l.jsonl"), tmp_path / "m.bin", valid=valid, epoch=5, bucket=10_000)
    assert result["train_records"] == 300 and result["valid_records"] == 2


def test_bad_training_data_is_one_clear_error(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "fine", "label": "NOT"}\n{"text": broken\n')
    result = runner.invoke(app, ["train", "classifier", "--data", str(bad_json), "-o", str(tmp_path / "m.bin")])
    assert result.exit_code == 1 and f"{bad_json}:2" in result.output and "Traceback" not in result.output

    no_label = tmp_path / "nolabel.jsonl"
    no_label.write_text('{"text": "fine", "label": "NOT"}\n{"text": "no label here"}\n')
    result = runner.invoke(app, ["train", "classifier", "--data", str(no_label), "-o", str(tmp_path / "m.bin")])
    assert result.exit_code == 1 and "record 2 has no 'label'" in result.output

    one_label = tmp_path / "one.jsonl"
    one_label.write_text("".join(json.dumps({"text": f"t {i}", "label": "NOT"}) + "\n" for i in range(20)))
    result = runner.invoke(app, ["train", "classifier", "--data", str(one_label), "-o", str(tmp_path / "m.bin")])
    assert result.exit_code == 1 and "at least two labels" in result.output

    result = runner.invoke(app, ["train", "classifier", "--data", str(tmp_path / "nope.jsonl"), "-o", "m.bin"])
    assert result.exit_code == 1 and "nope.jsonl: labelled data file does not exist" in result.output
    assert not (tmp_path / "m.bin").exists()
