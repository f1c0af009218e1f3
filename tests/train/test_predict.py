"""Using fine-tuned models: `corpus predict`, `corpus eval` suites, `corpus ablate`, and as a curation scorer."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corpus.cli import app
from corpus.core.config import load_config
from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.executors import LocalExecutor
from corpus.core.io import read_documents, write_shard
from corpus.core.runs import MARKER
from corpus.curate.hf_classifier import HFClassifierFilter, HFClassifierScorer
from corpus.curate.toxicity import ToxicityFilter
from corpus.train.finetune import finetune

RUDE = ["idiot", "stupid", "awful", "nasty", "ugly"]
KIND = ["lovely", "kind", "gentle", "bright", "warm"]
NOUNS = ["river", "bread", "garden", "library", "market", "moon", "mill", "bicycle"]
FAST = {"batch_size": 8, "max_length": 32, "device": "cpu", "progress": False}


def offensive(count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        off = i % 2 == 0
        rows.append({"text": f"your {rng.choice(NOUNS)} is {rng.choice(RUDE if off else KIND)} today",
                     "label": "OFF" if off else "NOT", "id": f"t{seed}-{i}"})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("offensive")
    write_jsonl(folder / "train.jsonl", offensive(96, 0))
    write_jsonl(folder / "test.jsonl", offensive(20, 1))
    return folder


@pytest.fixture(scope="module")
def classifier(tiny_bert: Path, data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("offensive-clf")
    summary = finetune(tiny_bert, data / "train.jsonl", out, eval=str(data / "test.jsonl"), epochs=8, lr=2e-3,
                       patience=0, **FAST)
    assert summary["accuracy"] >= 0.9
    return out


def test_predict_cli_writes_labels_and_probabilities(classifier: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred.jsonl"
    result = CliRunner().invoke(app, ["predict", str(data / "test.jsonl"), "--model", str(classifier), "-o", str(out),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    gold = offensive(20, 1)
    assert [r["id"] for r in rows] == [g["id"] for g in gold]  # input order and fields kept
    assert sum(r["prediction"] == g["label"] for r, g in zip(rows, gold, strict=True)) >= 18
    assert all(set(r["probabilities"]) == {"NOT", "OFF"} and abs(sum(r["probabilities"].values()) - 1) < 1e-4
               for r in rows)
    # Without -o the records go to stdout, one JSON object per line.
    result = CliRunner().invoke(app, ["predict", str(data / "test.jsonl"), "--model", str(classifier)])
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 20


def test_predict_reports_a_pretrained_only_model_and_missing_text(tiny_bert: Path, classifier: Path,
                                                                   tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "x.jsonl", [{"text": "fine"}])
    result = CliRunner().invoke(app, ["predict", str(data), "--model", str(tiny_bert)])
    assert result.exit_code == 1 and "not a fine-tuned classifier" in result.output
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "fine"}, {"body": "no text"}])
    result = CliRunner().invoke(app, ["predict", str(bad), "--model", str(classifier)])
    assert result.exit_code == 1 and "bad.jsonl:2: no string 'text' field" in result.output


def test_hf_classifier_stage_annotates_and_thresholds_in_a_pipeline(classifier: Path, tmp_path: Path) -> None:
    docs = [Document(r["id"], r["text"]) for r in offensive(12, 2)]
    write_shard(tmp_path / "in" / "a.jsonl", docs)
    config = tmp_path / "pipeline.yaml"
    config.write_text(json.dumps({"output_format": "jsonl", "stages": [
        {"stage": "hf_classifier", "id": "offensive", "model_path": str(classifier), "threshold": 0.5}]}))
    stats = LocalExecutor(workers=1, progress=False).run(load_config(config), tmp_path / "in", tmp_path / "out")
    kept = list(read_documents(tmp_path / "out" / "data"))
    rejected = list(read_documents(tmp_path / "out" / "rejected"))
    gold = {r["id"]: r["label"] for r in offensive(12, 2)}
    assert len(kept) + len(rejected) == 12 and stats["documents_kept"] == len(kept)
    assert sum(gold[d.id] == "NOT" for d in kept) >= 5 and sum(gold[d.id] == "OFF" for d in rejected) >= 5
    assert all(d.metadata["offensive"]["score"] <= 0.5 for d in kept)  # the score is p(OFF)
    assert all(d.metadata["offensive"]["score"] > 0.5 for d in rejected)
    counters = stats["jobs"][0]["stages"][0]["counters"]
    assert counters["dropped/offensive_high_score"] == len(rejected)


def test_toxicity_filter_takes_the_fine_tuned_model_as_its_scorer(classifier: Path) -> None:
    stage = ToxicityFilter(scorer="hf", model_path=str(classifier), granularity="sentence", threshold=0.5)
    docs = [Document("a", "Your river is kind today. Your bread is lovely today."),
            Document("b", "Your river is kind today. Your bread is stupid today.")]
    results = stage.keep_batch(docs)
    assert results[0] is True and results[1] == (False, "toxicity_high_score")
    assert docs[1].metadata["toxicity"]["scorer"] == "hf" and docs[1].metadata["toxicity"]["flagged_spans"] == 1


def test_scorer_checks_the_label_it_is_asked_for(classifier: Path, tiny_bert: Path) -> None:
    with pytest.raises(CorpusError, match="no label 'toxic'"):
        HFClassifierScorer(str(classifier), positive_label="toxic").prepare()
    with pytest.raises(CorpusError, match="not a fine-tuned classifier"):
        HFClassifierScorer(str(tiny_bert)).prepare()
    with pytest.raises(CorpusError, match="not a model folder"):
        HFClassifierFilter("/nowhere")
    not_scores = HFClassifierScorer(str(classifier), positive_label="NOT").score(["your moon is lovely today"])
    off_scores = HFClassifierScorer(str(classifier)).score(["your moon is lovely today"])  # default: OFF
    assert abs(not_scores[0] + off_scores[0] - 1) < 1e-4 and not_scores[0] > 0.5


def test_eval_suite_fine_tunes_per_task_and_scores_fine_tuned_models(tiny_bert: Path, classifier: Path, data: Path,
                                                                     tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps({"name": "mini", "data_root": str(data), "defaults": {"epochs": 1, **FAST},
                                 "tasks": {"offensive": {"train": "train.jsonl", "test": "test.jsonl"}}}))
    result = CliRunner().invoke(app, ["eval", "--model", str(tiny_bert), "--suite", str(suite), "-o",
                                      str(tmp_path / "runs"), "--set", "lr=0.002"])
    assert result.exit_code == 0, result.output
    assert "offensive" in result.stdout and "macro_f1" in result.stdout
    rows = json.loads((tmp_path / "runs" / "results.json").read_text())["rows"]
    assert rows[0]["task"] == "offensive" and rows[0]["split"] == "test" and rows[0]["examples"] == 20
    assert (tmp_path / "runs" / "offensive" / "metrics.json").is_file()
    # A task without training data scores an already fine-tuned model as it is.
    scored = tmp_path / "scored.yaml"
    scored.write_text(json.dumps({"data_root": str(data), "tasks": {"offensive": {"test": "test.jsonl"}}}))
    result = CliRunner().invoke(app, ["eval", "--model", str(classifier), "--suite", str(scored), "-o",
                                      str(tmp_path / "scored")])
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "scored" / "results.json").read_text())["rows"][0]
    assert row["accuracy"] >= 0.9
    result = CliRunner().invoke(app, ["eval", "--model", str(classifier), "--suite", str(tmp_path / "none.yaml")])
    assert result.exit_code == 1 and "no such suite" in result.output
    # Finished results are replaced only with --overwrite; a folder of the user's is never written into.
    again = ["eval", "--model", str(classifier), "--suite", str(scored), "-o", str(tmp_path / "scored")]
    result = CliRunner().invoke(app, again)
    assert result.exit_code == 1 and "holds an evaluation's results already" in result.output
    assert CliRunner().invoke(app, [*again, "--overwrite"]).exit_code == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("mine")
    result = CliRunner().invoke(app, [*again[:-1], str(mine)])
    assert result.exit_code == 1 and "not written by corpus" in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.txt"]


def test_ablate_pretrains_both_corpora_for_the_same_budget(prose_corpus: Path, prose: list[str], data: Path,
                                                          tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    junk = ["Home | About | Contact | Login", "Cookie settings. Accept all cookies.", "Share on social media"]
    write_shard(raw / "a.jsonl", [Document(f"r{i}", text + "\n" + junk[i % 3]) for i, text in
                                  enumerate(prose * 2)])
    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps({"data_root": str(data), "defaults": {"epochs": 1, **FAST},
                                 "tasks": {"offensive": {"train": "train.jsonl", "test": "test.jsonl"}}}))
    command = ["ablate", "--curated", str(prose_corpus), "--raw", str(raw), "--suite", str(suite), "-o",
               str(tmp_path / "ab"), "--steps", "2", "--preset", "tiny", "--seq-len", "32", "--batch-size", "4",
               "--vocab-size", "256", "--device", "cpu"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "ab" / "ablation.json").read_text())
    assert [r["model"] for r in saved["rows"]] == ["curated", "raw", "random-init"]
    assert saved["corpora"]["curated"]["documents"] == 12 and saved["corpora"]["raw"]["documents"] == 24
    assert set(saved["curated_minus_raw"]["offensive"]) == {"accuracy", "macro_f1"}
    assert "curated minus raw" in result.stdout
    # A run killed part-way (its record still says running) runs again into the same folder over the models it
    # left; a finished one is replaced only with --overwrite.
    marker = json.loads((tmp_path / "ab" / MARKER).read_text())
    marker["runs"][-1]["status"] = "running"
    (tmp_path / "ab" / MARKER).write_text(json.dumps(marker))
    (tmp_path / "ab" / "ablation.json").unlink()
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ab" / "ablation.json").is_file()
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1 and "holds an ablation's results already" in result.output


def test_threshold_search_finds_the_cut_that_argmax_misses() -> None:
    import torch

    from corpus.train.classify import predicted_ids, tune_threshold

    # The rare label "OFF" never reaches 0.5, but every OFF example scores 0.3-0.4 and every NOT below 0.2.
    p_off = [0.35, 0.3, 0.4] + [0.1, 0.15, 0.05, 0.18, 0.12, 0.08, 0.02]
    probs = torch.tensor([[1 - p, p] for p in p_off])
    gold = ["OFF"] * 3 + ["NOT"] * 7
    rule = tune_threshold(probs, gold, ["NOT", "OFF"], "macro_f1")
    assert rule["label"] == "OFF" and 0.18 < rule["probability"] <= 0.3 and rule["tuned_score"] == 1.0
    assert predicted_ids(probs, rule, {"NOT": 0, "OFF": 1}) == [1] * 3 + [0] * 7
    assert predicted_ids(probs, None, {"NOT": 0, "OFF": 1}) == [0] * 10  # argmax
    with pytest.raises(CorpusError, match="binary"):
        tune_threshold(torch.full((2, 3), 1 / 3), ["a", "b"], ["a", "b", "c"], "macro_f1")


def test_tuned_threshold_travels_with_the_model(tiny_bert: Path, classifier: Path, data: Path, tmp_path: Path
                                                ) -> None:
    from corpus.train.predict import Predictor

    rows = offensive(96, 0)
    rows = [r for i, r in enumerate(rows) if r["label"] == "NOT" or i % 6 == 0]  # OFF is now the rare label
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    out = tmp_path / "clf"
    summary = finetune(tiny_bert, train, out, test=str(data / "test.jsonl"), epochs=4, lr=2e-3, patience=0,
                       tune_threshold=True, **FAST)
    rule = summary["threshold"]
    assert rule["label"] == "OFF" and 0.05 <= rule["probability"] <= 0.95
    assert rule["tuned_score"] >= rule["argmax_score"]  # 0.5 is among the cuts tried
    saved = json.loads((out / "config.json").read_text())["corpus_threshold"]
    assert saved == {"label": "OFF", "probability": rule["probability"]}

    predictor = Predictor(out, device="cpu")
    texts = [r["text"] for r in offensive(20, 1)]
    for result in predictor.classify(texts):
        assert (result["label"] == "OFF") == (result["probabilities"]["OFF"] >= rule["probability"])
    assert predictor.evaluate_file(data / "test.jsonl")["macro_f1"] == pytest.approx(summary["test"]["macro_f1"])
    assert HFClassifierScorer(str(out)).default_threshold == rule["probability"]
    assert HFClassifierScorer(str(out), positive_label="NOT").default_threshold == pytest.approx(
        1 - rule["probability"])
    assert HFClassifierScorer(str(classifier)).default_threshold == 0.5  # fine-tuned without the search: argmax
    with pytest.raises(CorpusError, match="binary"):
        finetune(tiny_bert, write_jsonl(tmp_path / "three.jsonl", [{"text": "a b", "label": x} for x in "xyzxyz"]),
                 tmp_path / "three", steps=1, tune_threshold=True, **FAST)

