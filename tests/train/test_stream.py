"""The token store and the streamed loader: built once and reused, stale input detected, the same batches
whatever the number of loader workers, disjoint data per rank, exact resume, bounded memory."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import torch

from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.io import write_shard
from corpus.train import data as D
from corpus.train.stream import PretrainStream, StreamedBatches, TokenShard
from corpus.train.tokenizer import load_tokenizer, train_tokenizer
from corpus.train.tokens import StoreSettings, build_token_store, read_store_manifest


def variants(paragraphs: list[str], count: int, seed: int) -> list[Document]:
    """`count` documents: the fixture's paragraphs with their sentences reordered, so no two are equal."""
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        sentences = paragraphs[i % len(paragraphs)].replace("\n", " ").split(". ")
        rng.shuffle(sentences)
        docs.append(Document(f"{seed}-{i}", ". ".join(sentences)))
    return docs


def write_corpus(folder: Path, paragraphs: list[str], shards: int, per_shard: int) -> Path:
    for s in range(shards):
        write_shard(folder / f"part-{s:03d}.jsonl", variants(paragraphs, per_shard, seed=s))
    return folder


@pytest.fixture(scope="module")
def tokenizer_dir(prose: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tokenizer for every store here: WordPiece training is not deterministic (huggingface/tokenizers#1794)."""
    folder = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(prose, folder, vocab_size=256)
    return folder


@pytest.fixture(scope="module")
def store(prose: list[str], tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = write_corpus(tmp_path_factory.mktemp("corpus"), prose, shards=3, per_shard=40)
    out = tmp_path_factory.mktemp("store") / "tokens"
    build_token_store(corpus, out, tokenizer=tokenizer_dir, progress=False)
    return out


def stream(store: Path, **options: object) -> PretrainStream:
    tok = load_tokenizer(store / "tokenizer")
    collator = D.MaskingCollator.for_tokenizer(tok, 256)
    settings = {"objective": "mlm+nsp", "seq_len": 64, "batch_size": 4, "shuffle_docs": 8, **options}
    return PretrainStream(store, collator=collator, cls_id=tok.cls_token_id, sep_id=tok.sep_token_id,
                          **settings)  # type: ignore[arg-type]


def take(batches: StreamedBatches, n: int) -> list[dict[str, torch.Tensor]]:
    return [next(batches) for _ in range(n)]


def same(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x) for x, y in zip(a, b, strict=True))


# --- the store -----------------------------------------------------------------------------------------


def test_store_keeps_every_token_with_its_sentence_and_document_boundaries(store: Path, tokenizer_dir: Path) -> None:
    manifest = read_store_manifest(store)
    assert manifest["documents_in"] == 120 and manifest["dtype"] == "uint16"
    assert manifest["splits"]["train"]["documents"] + manifest["splits"]["eval"]["documents"] == 120
    assert 0 < manifest["splits"]["eval"]["documents"] < 20  # ~5% held out
    tok = load_tokenizer(tokenizer_dir)
    shard = TokenShard(store, manifest["splits"]["train"]["shards"][0]["name"], manifest["dtype"])
    first = shard.document(0, max_segment=512)
    assert len(first) >= 3  # sentences kept apart
    text = tok.decode([t for segment in first for t in segment])
    assert text.count(".") >= len(first) - 1  # each segment ends a sentence (the last may lack its period)


def test_segments_are_the_sentences_tokenised_alone_and_a_literal_sep_is_only_a_boundary(tokenizer_dir: Path) -> None:
    from tokenizers import Tokenizer

    from corpus.train.tokens import segment_tokens, split_segments

    backend = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    sentences = ["The river ran past the old mill.", "Dr. Smith saw it in 1999!", "日本語の文。", "A heading",
                 "A list without any stop " * 6]
    text = " ".join(sentences[:3]) + "\n" + sentences[3] + "\n\n" + sentences[4]
    alone = [backend.encode(s, add_special_tokens=False).ids for s in sentences]
    docs = [split_segments(*doc) for doc in
            segment_tokens([text, "", "One. [SEP] Two.", " \n "], backend, max_segment_tokens=8)]
    assert len(alone[4]) > 8 and [s.tolist() for s in docs[0]] == [a[k : k + 8] for a in alone
                                                                    for k in range(0, len(a), 8)]
    assert docs[1] == [] and docs[3] == []
    sep = backend.token_to_id("[SEP]")
    assert [s.tolist() for s in docs[2]] == [backend.encode(w, add_special_tokens=False).ids for w in ("One.", "Two.")]
    assert all(sep not in s for doc in docs for s in doc)


def test_a_store_is_reused_and_stale_input_or_tokenizer_is_detected(
    prose: list[str], tokenizer_dir: Path, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus", prose, shards=2, per_shard=10)
    out = tmp_path / "tokens"
    first = build_token_store(corpus, out, tokenizer=tokenizer_dir, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")}
    assert build_token_store(corpus, out, tokenizer=tokenizer_dir, progress=False) == first
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")} == stamps  # nothing tokenised again
    write_shard(corpus / "part-001.jsonl", variants(prose, 11, seed=1))  # one more document in one shard
    with pytest.raises(CorpusError, match="other input.*part-001.jsonl"):
        build_token_store(corpus, out, tokenizer=tokenizer_dir, progress=False)
    with pytest.raises(CorpusError, match="another tokenizer"):
        build_token_store(corpus, out, vocab_size=300, progress=False)
    rebuilt = build_token_store(corpus, out, tokenizer=tokenizer_dir, rebuild_stale=True, progress=False)
    assert rebuilt["documents_in"] == 21


def test_an_interrupted_tokenisation_redoes_only_unfinished_shards(
    prose: list[str], tokenizer_dir: Path, tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus", prose, shards=3, per_shard=10)
    out = tmp_path / "tokens"
    whole = build_token_store(corpus, out, tokenizer=tokenizer_dir, progress=False)
    # As if killed while shard 2 was being written: no manifest yet, shard 2 unfinished.
    (out / "manifest.json").unlink()
    (out / "_work" / "done" / "part-00002.json").unlink()
    (out / "part-00002.train.ids").rename(out / ".part-00002.train.ids.tmp-99999")
    before = {n: (out / f"part-{n:05d}.train.ids").stat().st_mtime_ns for n in (0, 1)}
    resumed = build_token_store(corpus, out, tokenizer=tokenizer_dir, progress=False)
    assert resumed["splits"] == whole["splits"]  # same shards, same checksums
    assert {n: (out / f"part-{n:05d}.train.ids").stat().st_mtime_ns for n in (0, 1)} == before


# --- the loader --------------------------------------------------------------------------------------


def test_zero_and_two_loader_workers_deliver_the_same_batches(store: Path) -> None:
    inline = StreamedBatches(stream(store, streams=2), workers=0)
    pooled = StreamedBatches(stream(store, streams=2), workers=2)
    try:
        assert same(take(inline, 12), take(pooled, 12))
    finally:
        pooled.close()


def test_ranks_and_streams_read_every_document_once_per_epoch(store: Path) -> None:
    manifest = read_store_manifest(store)
    seen: list[tuple[int, ...]] = []
    for rank in range(2):
        dataset = stream(store, rank=rank, world_size=2, streams=2)
        for s in range(2):
            for chunk in range(dataset._chunks(0, s)):
                seen += [tuple(t for seg in doc for t in seg) for doc in dataset._chunk_documents(0, s, chunk)]
    everything = []
    for entry in manifest["splits"]["train"]["shards"]:
        shard = TokenShard(store, entry["name"], manifest["dtype"])
        everything += [tuple(t for seg in shard.document(i, 30) for t in seg) for i in range(shard.documents)]
    assert sorted(seen) == sorted(everything)  # disjoint shares that cover the corpus


@pytest.mark.parametrize("workers", [0, 2])
def test_a_saved_position_continues_with_the_same_batches(store: Path, workers: int) -> None:
    whole = StreamedBatches(stream(store, streams=2), workers=workers)
    expected = take(whole, 30)  # several chunks and epochs: 3 x 40 documents, 8 per chunk
    whole.close()
    first = StreamedBatches(stream(store, streams=2), workers=workers)
    take(first, 13)
    state = json.loads(json.dumps(first.state_dict()))  # as a checkpoint stores it
    first.close()
    resumed = StreamedBatches(stream(store, streams=2), workers=workers)
    resumed.load_state_dict(state)
    try:
        assert same(take(resumed, 17), expected[13:])
    finally:
        resumed.close()


def test_memory_does_not_grow_with_the_number_of_shards(prose: list[str], tokenizer_dir: Path, tmp_path: Path) -> None:
    peaks = {}
    for shards in (2, 10):
        corpus = write_corpus(tmp_path / f"c{shards}", prose, shards=shards, per_shard=60)
        out = tmp_path / f"t{shards}"
        build_token_store(corpus, out, tokenizer=tokenizer_dir, progress=False)
        batches = StreamedBatches(stream(out, shuffle_docs=20), workers=0)
        tracemalloc.start()
        take(batches, 60)  # more than one shard's worth of documents
        peaks[shards] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[10] < 1.3 * peaks[2], peaks


# --- pretraining on the store: phase 2, options, kill and resume --------------------------------------------


def test_phase_two_continues_from_saved_weights_at_a_longer_sequence(store: Path, tmp_path: Path) -> None:
    from corpus.train.pretrain import pretrain

    common = {"batch_size": 4, "device": "cpu", "progress": False, "log_every": 1, "lr": 2e-3}
    pretrain(store, tmp_path / "phase1", steps=30, seq_len=64, **common)
    fresh = pretrain(store, tmp_path / "fresh", steps=1, seq_len=128, **common)
    phase2 = pretrain(store, tmp_path / "phase2", steps=1, seq_len=128, init_from=tmp_path / "phase1", **common)
    assert phase2["final_loss"] < fresh["final_loss"]  # it starts where phase 1 ended, not from scratch
    from transformers import AutoModelForPreTraining

    weights = {name: AutoModelForPreTraining.from_pretrained(tmp_path / name).state_dict()
               for name in ("phase1", "phase2", "fresh")}
    key = "bert.encoder.layer.0.attention.self.query.weight"
    # One AdamW step (lr 2e-3) away from phase 1's weights; a fresh start is phase 1's 30 steps away.
    assert (weights["phase2"][key] - weights["phase1"][key]).abs().max() < 3e-3
    assert (weights["fresh"][key] - weights["phase1"][key]).abs().max() > 3 * 3e-3
    config = json.loads((tmp_path / "phase2" / "train_config.json").read_text())
    assert config["seq_len"] == 128 and config["model"]["max_position_embeddings"] >= 128
    # The store was made with another tokenizer than the model's: refused, not trained on mismatched ids.
    other = tmp_path / "other-model"
    shutil.copytree(tmp_path / "phase1", other)
    train_tokenizer(["completely different words in here"] * 20, tmp_path / "other-tok", vocab_size=128)
    shutil.copy(tmp_path / "other-tok" / "tokenizer.json", other / "tokenizer.json")
    with pytest.raises(CorpusError, match="another tokenizer"):
        pretrain(store, tmp_path / "p2", steps=1, seq_len=64, init_from=other, **common)


def test_wrong_options_fail_in_one_line_before_any_work(store: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from corpus.cli import app

    base = ["train", "pretrain", "--data", str(store), "-o", str(tmp_path / "m")]
    done = subprocess.run([sys.executable, "-m", "corpus.cli", *base, "--preset", "huge"], capture_output=True,
                          text=True, timeout=120)  # once through a real process: exit status and stderr
    assert done.returncode == 1 and "unknown model preset 'huge'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    for args, message in ((["--set", "warmup_steps=abc"], "--set warmup_steps=abc: not a valid int"),
                          (["--set", "no_such_thing=1"], "unknown pretraining option"),
                          (["--steps", "0"], "steps must be >= 1")):
        result = CliRunner().invoke(app, [*base, *args])
        assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "m").exists()  # nothing written: the checks came before the work


RUN = """
import json, sys
from corpus.train.pretrain import pretrain
store, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
resume = len(sys.argv) > 4
pretrain(store, out, steps=12, seq_len=64, batch_size=4, lr=2e-3, log_every=1, device="cpu", progress=False,
         checkpoint_every=2, loader_workers=workers, data_streams=2, shuffle_docs=8, resume=resume)
"""


def losses(folder: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def run_until_killed(command: list[str], out: Path, at_step: int, env: dict[str, str]) -> None:
    """Start `command`, SIGKILL its whole process group once the log reaches `at_step` (as an OOM killer or a
    scheduler would: no chance to clean up)."""
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if (out / "log.jsonl").exists() and max(losses(out), default=0) >= at_step:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert max(losses(out)) < 12, "the run ended before it could be killed"


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("script") / "run.py"
    path.write_text(RUN)
    return path


@pytest.fixture(scope="module")
def uninterrupted(store: Path, script: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, float]:
    out = tmp_path_factory.mktemp("whole")
    subprocess.run([sys.executable, str(script), str(store), str(out), "0"], check=True, timeout=240,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return losses(out)


@pytest.mark.parametrize("workers", [0, 2])
def test_sigkill_then_resume_follows_the_uninterrupted_loss_curve(
    store: Path, script: Path, uninterrupted: dict[int, float], tmp_path: Path, workers: int
) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(script), str(store), str(tmp_path), str(workers)]
    run_until_killed(command, tmp_path, at_step=7, env=env)
    subprocess.run([*command, "resume"], check=True, timeout=240, env=env)
    resumed = losses(tmp_path)
    assert sorted(resumed) == sorted(uninterrupted) == list(range(1, 13))
    for step, loss in uninterrupted.items():
        assert abs(resumed[step] - loss) <= 1e-5 * abs(loss), (step, resumed[step], loss)


DDP_RUN = """
import json, sys
from corpus.train.pretrain import pretrain
store, out, results = sys.argv[1:4]
summary = pretrain(store, out, steps=8, seq_len=64, batch_size=4, lr=2e-3, log_every=1, device="cpu",
                   progress=False, checkpoint_every=2, shuffle_docs=8, resume=len(sys.argv) > 4)
with open(f"{results}/rank{summary['rank']}.json", "w") as handle:
    json.dump(summary, handle)
"""


def test_two_ranks_killed_and_resumed_train_as_if_never_stopped(store: Path, tmp_path: Path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(DDP_RUN)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def command(out: Path, results: Path, *extra: str) -> list[str]:
        results.mkdir(exist_ok=True)
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
                str(store), str(out), str(results), *extra]

    subprocess.run(command(tmp_path / "whole", tmp_path / "r1"), check=True, timeout=300, env=env,
                   capture_output=True)
    run_until_killed(command(tmp_path / "killed", tmp_path / "r2"), tmp_path / "killed", at_step=5, env=env)
    subprocess.run(command(tmp_path / "killed", tmp_path / "r2", "resume"), check=True, timeout=300, env=env,
                   capture_output=True)
    whole, resumed = losses(tmp_path / "whole"), losses(tmp_path / "killed")
    assert sorted(resumed) == sorted(whole) == list(range(1, 9))
    assert all(abs(resumed[s] - whole[s]) <= 1e-5 * abs(whole[s]) for s in whole), (resumed, whole)
    ranks = [json.loads((tmp_path / "r2" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]


def test_settings_change_what_the_store_holds(prose: list[str], tokenizer_dir: Path, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", prose, shards=1, per_shard=40)
    none_held = build_token_store(corpus, tmp_path / "a", tokenizer=tokenizer_dir, progress=False,
                                  settings=StoreSettings(eval_fraction=0.0))
    assert none_held["splits"]["eval"]["documents"] == 0
    with pytest.raises(CorpusError, match="other settings"):
        build_token_store(corpus, tmp_path / "a", tokenizer=tokenizer_dir, progress=False)


def test_unpadded_batches_train_and_resume_exactly(store: Path, tmp_path: Path) -> None:
    """The GPU path (unpadded, fixed token budget) on the CPU: static shapes, every token real or tail, exact resume."""
    from corpus.train.pretrain import pretrain

    whole = StreamedBatches(stream(store, streams=2, token_budget=4 * 64), workers=0)
    batches = take(whole, 12)
    assert {tuple(b["input_ids"].shape) for b in batches} == {(256,)}  # one shape: compiles once
    assert all(int(b["attention_mask"].sum()) > 128 for b in batches)  # packed: most of the budget is real text
    first = StreamedBatches(stream(store, streams=2, token_budget=4 * 64), workers=0)
    take(first, 5)
    resumed = StreamedBatches(stream(store, streams=2, token_budget=4 * 64), workers=0)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert same(take(resumed, 7), batches[5:])
    run = {"steps": 6, "seq_len": 64, "batch_size": 4, "lr": 2e-3, "log_every": 1, "device": "cpu",
           "progress": False, "unpad": True}
    summary = pretrain(store, tmp_path / "m", **run)
    assert summary["finished"] and summary["final_loss"] < 7
    assert json.loads((tmp_path / "m" / "train_config.json").read_text())["unpad"] is True
