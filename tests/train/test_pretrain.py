"""Tokenizer, example construction, masking, and a short real pretraining run that transformers loads."""

from __future__ import annotations

import json
import math
import random
from array import array
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer, pipeline
from typer.testing import CliRunner

from corpus.cli import app
from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.io import write_shard
from corpus.train.data import (
    IGNORE_INDEX,
    MaskingCollator,
    create_nsp_examples,
    pack_sequences,
    segment_documents,
    split_sentences,
)
from corpus.train.loop import LoopConfig, lr_at
from corpus.train.models import PRESETS, bert_config, build_model
from corpus.train.pretrain import PretrainingObjective, pretrain
from corpus.train.tokenizer import load_tokenizer, train_tokenizer

FAST = {"seq_len": 64, "batch_size": 8, "device": "cpu", "progress": False}


def read_log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]


# --- tokenizer -------------------------------------------------------------------------------------


def test_tokenizer_round_trip_and_vocab_multiple_of_64(prose: list[str], tmp_path: Path) -> None:
    train_tokenizer(prose, tmp_path, vocab_size=300)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    assert len(tok) % 64 == 0 and len(tok) >= 300
    assert tok.convert_ids_to_tokens(list(range(5))) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    text = "The river begins as a thin stream high in the hills."
    encoded = tok(text)["input_ids"]
    assert encoded[0] == tok.cls_token_id and encoded[-1] == tok.sep_token_id
    assert tok.decode(encoded, skip_special_tokens=True) == text.lower()
    pair = tok("the river", "the moon")
    first_sep = pair["input_ids"].index(tok.sep_token_id)
    assert pair["token_type_ids"] == [0] * (first_sep + 1) + [1] * (len(pair["input_ids"]) - first_sep - 1)


def test_tokenizer_case_and_accents_are_configurable(prose: list[str], tmp_path: Path) -> None:
    texts = prose + ["Café au lait. Crème brûlée."] * 3
    cased = train_tokenizer(texts, tmp_path / "cased", vocab_size=64, lowercase=False, strip_accents=False)
    assert cased.tokenize("Café")[0].startswith("C") and "é" in "".join(cased.tokenize("Café"))
    plain = train_tokenizer(texts, tmp_path / "plain", vocab_size=64)
    assert "".join(plain.tokenize("Café")).replace("#", "") == "cafe"
    assert len(load_tokenizer(tmp_path / "plain")) == len(plain)


def test_load_tokenizer_reports_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        load_tokenizer(tmp_path / "nope")


# --- sentences and examples --------------------------------------------------------------------------


def test_split_sentences_keeps_abbreviations_numbers_and_lines() -> None:
    text = "Dr. Smith paid 3.50 for it. Then he left! Did J. R. Tolkien write it?\nA heading\nlast one"
    assert split_sentences(text) == [
        "Dr. Smith paid 3.50 for it.", "Then he left!", "Did J. R. Tolkien write it?", "A heading",
        "last one",
    ]
    assert split_sentences("  \n\n ") == []
    assert split_sentences("雨が降った。傘を持った。") == ["雨が降った。", "傘を持った。"]


def synthetic_documents(count: int, sentences: int = 12) -> list[list[array]]:
    """Document d's tokens are 1000*d + position, so every token tells which document and where it is from."""
    docs = []
    for d in range(count):
        position, doc = 0, []
        for s in range(sentences):
            length = 3 + (s * 7 + d) % 9
            doc.append(array("i", range(1000 * (d + 1) + position, 1000 * (d + 1) + position + length)))
            position += length
        docs.append(doc)
    return docs


def test_nsp_examples_pair_segments_like_bert() -> None:
    docs = synthetic_documents(8)
    seq_len, cls_id, sep_id = 48, 2, 3
    examples = create_nsp_examples(docs, seq_len, random.Random(0), cls_id=cls_id, sep_id=sep_id)
    labels = [e["next_sentence_label"] for e in examples]
    assert 0.3 < sum(labels) / len(labels) < 0.7  # both labels, roughly half each
    for e in examples:
        ids, types = e["input_ids"], e["token_type_ids"]
        assert len(ids) == len(types) <= seq_len
        first_sep = ids.index(sep_id)
        assert ids[0] == cls_id and ids[-1] == sep_id and ids.count(sep_id) == 2
        assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
        a, b = ids[1:first_sep], ids[first_sep + 1 : -1]
        assert a and b
        doc_a, doc_b = {t // 1000 for t in a}, {t // 1000 for t in b}
        assert len(doc_a) == 1 and len(doc_b) == 1  # each segment from one document
        if e["next_sentence_label"] == 0:
            assert doc_a == doc_b and min(b) > max(a)  # B follows A in the same document
        else:
            assert doc_a != doc_b  # B is from another document
    # Some sequences are shortened on purpose (short_seq_prob), most fill the target.
    lengths = [len(e["input_ids"]) for e in examples]
    assert max(lengths) >= seq_len - 8 and min(lengths) < seq_len // 2


def test_nsp_needs_two_documents_and_mlm_packs_full_sequences() -> None:
    with pytest.raises(CorpusError, match="objective 'mlm'"):
        create_nsp_examples(synthetic_documents(1), 32, random.Random(0), cls_id=2, sep_id=3)
    docs = synthetic_documents(5)
    packed = pack_sequences(docs, 32, random.Random(0), cls_id=2, sep_id=3)
    total = sum(len(s) for doc in docs for s in doc) + len(docs)  # plus one [SEP] per document
    assert len(packed) == total // 31
    assert all(len(e["input_ids"]) == 32 and e["input_ids"][0] == 2 for e in packed)  # no padding at all


def test_long_sentences_are_cut_into_segments(prose: list[str], tmp_path: Path) -> None:
    tok = train_tokenizer(prose, tmp_path, vocab_size=200)
    long = "the " * 100 + "river."
    docs = segment_documents([long, "Short one. Another one."], tok, max_segment_tokens=30)
    pieces = [len(s) for s in docs[0]]
    assert sum(pieces) == len(tok.tokenize(long)) > 100  # nothing lost
    assert pieces[:3] == [30, 30, 30] and 0 < pieces[-1] <= 30
    assert len(docs[1]) == 2


def test_masking_rate_and_special_tokens_never_masked() -> None:
    cls_id, sep_id, pad_id, mask_id, vocab = 2, 3, 0, 4, 500
    collator = MaskingCollator(vocab_size=vocab, mask_id=mask_id, pad_id=pad_id, special_ids=range(5))
    rng = random.Random(0)
    examples = []
    for _ in range(400):
        n = rng.randint(10, 60)
        examples.append({"input_ids": [cls_id] + [rng.randint(5, vocab - 1) for _ in range(n)] + [sep_id]})
    batch = collator(examples, torch.Generator().manual_seed(0))
    original = torch.full_like(batch["input_ids"], pad_id)
    for row, e in enumerate(examples):
        original[row, : len(e["input_ids"])] = torch.tensor(e["input_ids"])
    masked = batch["labels"] != IGNORE_INDEX
    special = (original == cls_id) | (original == sep_id) | (original == pad_id)
    assert not (masked & special).any()
    assert torch.equal(batch["input_ids"][special], original[special])  # never replaced either
    assert torch.equal(batch["labels"][masked], original[masked])
    rate = masked.sum().item() / (~special).sum().item()
    assert 0.14 < rate < 0.16
    as_mask = (batch["input_ids"] == mask_id) & masked
    changed = (batch["input_ids"] != original) & masked & ~as_mask
    assert 0.75 < as_mask.sum().item() / masked.sum().item() < 0.85
    assert 0.06 < changed.sum().item() / masked.sum().item() < 0.14
    assert batch["input_ids"].shape[1] % 8 == 0 and batch["attention_mask"].sum() == sum(
        len(e["input_ids"]) for e in examples
    )
    again = collator(examples, torch.Generator().manual_seed(1))
    assert not torch.equal(again["labels"], batch["labels"])  # a new batch seed, new masks


def test_learning_rate_schedules() -> None:
    linear = LoopConfig(steps=110, lr=1.0, warmup_steps=10)
    assert [lr_at(s, linear) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert lr_at(60, linear) == pytest.approx(0.5) and lr_at(110, linear) == 0.0
    cosine = LoopConfig(steps=110, lr=1.0, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(60, cosine) == pytest.approx(0.55) and lr_at(110, cosine) == pytest.approx(0.1)
    with pytest.raises(CorpusError, match="unknown schedule"):
        LoopConfig(schedule="step").check()


def test_sparse_mlm_head_gives_the_stock_models_loss() -> None:
    """Our objective projects only the masked positions; the loss must equal BertForPreTraining's own."""
    config = bert_config("tiny", vocab_size=128)
    torch.manual_seed(0)
    model = build_model(config).eval()
    collator = MaskingCollator(vocab_size=128, mask_id=4, pad_id=0, special_ids=range(5))
    rng = random.Random(0)
    examples = []
    for _ in range(6):
        a, b = rng.randint(3, 20), rng.randint(3, 20)
        first, second = ([rng.randint(5, 127) for _ in range(n)] for n in (a, b))
        ids = [2, *first, 3, *second, 3]
        examples.append({"input_ids": ids, "token_type_ids": [0] * (a + 2) + [1] * (b + 1),
                         "next_sentence_label": rng.randint(0, 1)})
    batch = collator(examples, torch.Generator().manual_seed(0))
    real = batch["mlm_labels"] != IGNORE_INDEX
    assert torch.equal(batch["mlm_labels"][real], batch["labels"][batch["labels"] != IGNORE_INDEX])
    with torch.no_grad():
        ours, metrics = PretrainingObjective(model)(**batch)
        stock = model(**{k: v for k, v in batch.items() if not k.startswith("mlm_")}).loss
    assert ours.item() == pytest.approx(stock.item(), rel=1e-5)
    assert set(metrics) == {"mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc"}


# --- models ----------------------------------------------------------------------------------------


def test_presets_are_the_published_sizes(tmp_path: Path) -> None:
    base = bert_config("base", vocab_size=30528)
    assert (base.num_hidden_layers, base.hidden_size, base.num_attention_heads, base.intermediate_size) == (
        12, 768, 12, 3072,
    )
    assert set(PRESETS) == {"tiny", "mini", "small", "medium", "base", "large"}
    small_vocab = tmp_path / "config.json"
    small_vocab.write_text(json.dumps({"vocab_size": 100, "hidden_size": 64, "num_attention_heads": 1}))
    with pytest.raises(CorpusError, match="smaller than the tokenizer"):
        bert_config(small_vocab, vocab_size=128)
    with pytest.raises(CorpusError, match="unknown model preset"):
        bert_config("gigantic", vocab_size=128)


# --- pretraining end to end ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(prose_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("model")
    summary = pretrain(prose_corpus, out, steps=40, lr=2e-3, vocab_size=512, log_every=1, eval_every=20,
                       **FAST)
    return out, summary


def test_pretraining_lowers_the_loss(trained: tuple[Path, dict]) -> None:
    out, summary = trained
    log = [r for r in read_log(out) if "loss" in r]
    assert [r["step"] for r in log] == list(range(1, 41))
    # From about ln(vocab) + ln(2) at the start; the fixture corpus is small, so the drop is modest.
    assert sum(r["loss"] for r in log[-5:]) / 5 < log[0]["loss"] - 0.4
    assert {"mlm_loss", "nsp_loss", "lr", "tokens_per_s"} <= set(log[0])
    assert summary["steps"] == 40 and summary["final_loss"] == pytest.approx(log[-1]["loss"], abs=1e-4)
    assert summary["tokens"] > 40 * 8 * 20  # real tokens only, and the batches are far from empty
    assert summary["eval_documents"] == 1 and 0 <= summary["eval_mlm_acc"] <= 1 and "eval_nsp_acc" in summary
    evals = [r for r in read_log(out) if "eval/mlm_loss" in r]  # periodic held-out evaluation
    assert [r["step"] for r in evals] == [20, 40]
    # Better than a uniform guess (on one small held-out document, hence the loose margin).
    assert evals[-1]["eval/mlm_loss"] < math.log(summary["vocab_size"]) - 0.25
    assert evals[-1]["eval/mlm_acc"] == pytest.approx(summary["eval_mlm_acc"], abs=1e-4)
    config = json.loads((out / "train_config.json").read_text())
    assert config["steps"] == 40 and config["warmup_steps"] == 4 and config["model"]["hidden_size"] == 128


def test_saved_model_loads_with_transformers(trained: tuple[Path, dict]) -> None:
    out, _ = trained
    assert (out / "model.safetensors").exists()
    model = AutoModelForPreTraining.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.vocab_size == len(tokenizer)
    batch = tokenizer(["the river runs to the sea", "bread needs flour"], padding=True, return_tensors="pt")
    with torch.no_grad():
        output = model(**batch)
    assert output.prediction_logits.shape == (2, batch["input_ids"].shape[1], len(tokenizer))
    assert output.seq_relationship_logits.shape == (2, 2)
    assert AutoModelForMaskedLM.from_pretrained(out).config.hidden_size == 128
    predictions = pipeline("fill-mask", model=str(out))("the river [MASK] to the sea.")
    assert len(predictions) == 5 and all("token_str" in p for p in predictions)


def test_mlm_objective_trains_on_packed_sequences(prose_corpus: Path, tmp_path: Path) -> None:
    summary = pretrain(prose_corpus, tmp_path, steps=3, objective="mlm", vocab_size=256, log_every=1, **FAST)
    log = read_log(tmp_path)
    assert "nsp_loss" not in log[0] and summary["steps"] == 3
    assert summary["tokens"] == 3 * 8 * 64  # full sequences: every position is a real token


def test_bf16_autocast_on_the_cpu_trains_and_saves_fp32_weights(prose_corpus: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "pretrain", "--data", str(prose_corpus), "-o", str(tmp_path), "--steps",
                                      "3", "--vocab-size", "256", "--seq-len", "64", "--batch-size", "8", "--device",
                                      "cpu", "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    assert all(math.isfinite(r["loss"]) for r in read_log(tmp_path) if "loss" in r)
    model = AutoModelForPreTraining.from_pretrained(tmp_path)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_tiny_corpora_train_and_one_document_needs_mlm(prose: list[str], tmp_path: Path) -> None:
    write_shard(tmp_path / "two" / "s.jsonl", [Document("a", prose[0]), Document("b", prose[1])])
    summary = pretrain(tmp_path / "two", tmp_path / "out2", steps=2, vocab_size=64, **FAST)
    assert summary["steps"] == 2 and summary["eval_documents"] == 0  # too few documents to hold any out
    write_shard(tmp_path / "one" / "s.jsonl", [Document("a", prose[0])])
    with pytest.raises(CorpusError, match="at least 2 non-empty documents"):
        pretrain(tmp_path / "one", tmp_path / "out1", steps=2, vocab_size=64, **FAST)
    packed = pretrain(tmp_path / "one", tmp_path / "out1", steps=2, vocab_size=64, objective="mlm", **FAST)
    assert packed["steps"] == 2


def test_empty_inputs_give_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no shards"):
        pretrain(tmp_path / "empty", tmp_path / "out", **FAST)
    blank = tmp_path / "blank"
    write_shard(blank / "s.jsonl", [Document("a", "   "), Document("b", "\n")])
    with pytest.raises(CorpusError, match=f"{blank}.*no documents with text"):
        pretrain(blank, tmp_path / "out", **FAST)
    with pytest.raises(CorpusError, match="unknown pretraining option.*grad_acum"):
        pretrain(blank, tmp_path / "out", grad_acum=2, **FAST)
