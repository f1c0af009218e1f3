"""The unpadded BERT path: same numbers as Hugging Face BERT, one compiled graph, HF-loadable checkpoints."""

from __future__ import annotations

import random
from array import array
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from corpus.core.errors import CorpusError
from corpus.train import data as D
from corpus.train.unpadded import UnpaddedBatches, UnpaddedBertForPreTraining, unpad

VOCAB, SEQ = 96, 32
SPECIAL = [0, 1, 2, 3, 4]  # [PAD] [UNK] [CLS] [SEP] [MASK]


def tiny_config(dropout: float = 0.0):  # noqa: ANN201 - transformers is imported lazily
    from transformers import BertConfig

    return BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=dropout,
                      attention_probs_dropout_prob=dropout, attn_implementation="sdpa")


def hf_model(seed: int = 0, dropout: float = 0.0) -> torch.nn.Module:
    from transformers import BertForPreTraining

    torch.manual_seed(seed)
    return BertForPreTraining(tiny_config(dropout))


def pair_batch(lengths: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    """A masked `[CLS] A [SEP] B [SEP]` batch from our own collator, rows of the given lengths."""
    rng = random.Random(seed)
    examples = []
    for n in lengths:
        a = max(1, (n - 3) // 2)
        b = n - 3 - a
        body = [rng.randrange(len(SPECIAL), VOCAB) for _ in range(a + b)]
        examples.append({"input_ids": [2, *body[:a], 3, *body[a:], 3],
                         "token_type_ids": [0] * (a + 2) + [1] * (b + 1),
                         "next_sentence_label": rng.randrange(2)})
    collator = D.MaskingCollator(vocab_size=VOCAB, mask_id=4, pad_id=0, special_ids=SPECIAL)
    return collator(examples, torch.Generator().manual_seed(seed))


def random_lengths(rng: random.Random, rows: int = 4) -> list[int]:
    return [rng.randint(6, SEQ) for _ in range(rows)]


def test_unpad_layout_is_static_and_keeps_every_real_token() -> None:
    batch = pair_batch([7, 20, 11])
    flat = unpad(batch, token_budget=64, max_sequences=5, max_predictions=16)
    assert {k: tuple(v.shape) for k, v in flat.items()} == {
        "input_ids": (64,), "token_type_ids": (64,), "position_ids": (64,), "attention_mask": (64,),
        "cu_seqlens": (6,), "mlm_positions": (16,), "mlm_labels": (16,), "next_sentence_label": (5,)}
    assert flat["cu_seqlens"].dtype == torch.int32
    assert flat["cu_seqlens"].tolist() == [0, 7, 27, 38, 38, 38]
    mask = batch["attention_mask"].bool()
    assert torch.equal(flat["input_ids"][:38], batch["input_ids"][mask])
    assert flat["attention_mask"].sum() == 38 and flat["input_ids"][38:].eq(0).all()
    assert flat["position_ids"][7:27].tolist() == list(range(20))
    # masked positions point at the same tokens and labels as in the padded batch
    real = flat["mlm_labels"] != -100
    assert torch.equal(flat["input_ids"][flat["mlm_positions"][real]], batch["input_ids"].view(-1)[
        batch["mlm_positions"][batch["mlm_labels"] != -100]])
    assert torch.equal(flat["mlm_labels"][real], batch["labels"][batch["labels"] != -100])
    assert flat["next_sentence_label"].tolist()[3:] == [-100, -100]
    with pytest.raises(CorpusError, match="token_budget"):
        unpad(batch, token_budget=32, max_sequences=5)


def test_unpadded_encoder_and_gradients_equal_hf_bert() -> None:
    """fp32, dropout off: every real position's hidden state, the loss and every gradient match HF BERT."""
    batch = pair_batch([9, 32, 5, 17, 26])
    flat = unpad(batch, token_budget=128, max_sequences=8)
    ours_model, ref_model = hf_model(), hf_model()
    ours = UnpaddedBertForPreTraining(ours_model, max_seqlen=SEQ)

    hidden = ours.hidden_states(flat)
    reference = ref_model.bert(batch["input_ids"], attention_mask=batch["attention_mask"],
                               token_type_ids=batch["token_type_ids"]).last_hidden_state
    real = int(batch["attention_mask"].sum())
    torch.testing.assert_close(hidden[:real], reference[batch["attention_mask"].bool()], atol=1e-5, rtol=0)

    loss, metrics = ours(**flat)
    loss.backward()
    stock = ref_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      token_type_ids=batch["token_type_ids"], labels=batch["labels"],
                      next_sentence_label=batch["next_sentence_label"])
    stock.loss.backward()
    torch.testing.assert_close(loss, stock.loss, atol=1e-5, rtol=0)
    assert set(metrics) == {"mlm_loss", "mlm_acc", "nsp_loss", "nsp_acc"}
    ref_grads = dict(ref_model.named_parameters())
    for name, param in ours_model.named_parameters():
        torch.testing.assert_close(param.grad, ref_grads[name].grad, atol=1e-5, rtol=1e-4, msg=name)


def test_padded_batches_take_the_stock_encoder_with_the_same_losses() -> None:
    """Evaluation code feeds padded batches: same loss as the unpadded form of the same batch."""
    batch = pair_batch([12, 30, 8])
    model = UnpaddedBertForPreTraining(hf_model(), max_seqlen=SEQ).eval()
    with torch.no_grad():
        padded_loss, padded_metrics = model(**batch)
        flat_loss, flat_metrics = model(**unpad(batch, token_budget=64, max_sequences=4))
    torch.testing.assert_close(padded_loss, flat_loss, atol=1e-5, rtol=0)
    torch.testing.assert_close(padded_metrics["nsp_acc"], flat_metrics["nsp_acc"])


def pretrain_stream(seed: int = 0) -> D.PretrainBatches:
    """Our real NSP batch stream over synthetic documents (token ids made here, no tokenizer needed)."""
    rng = random.Random(seed)
    documents = [[array("i", [rng.randrange(len(SPECIAL), VOCAB) for _ in range(rng.randint(3, 12))])
                  for _ in range(rng.randint(2, 8))] for _ in range(30)]
    collator = D.MaskingCollator(vocab_size=VOCAB, mask_id=4, pad_id=0, special_ids=SPECIAL)
    return D.PretrainBatches(documents, objective="mlm+nsp", seq_len=SEQ, batch_size=4, collator=collator,
                             cls_id=2, sep_id=3, seed=seed, short_seq_prob=0.3)


def test_token_budget_packing_keeps_every_sequence_in_order_and_resumes() -> None:
    padded = pretrain_stream()
    reference = [next(padded) for _ in range(8)]
    all_tokens = torch.cat([b["input_ids"][b["attention_mask"].bool()] for b in reference])

    stream = UnpaddedBatches(pretrain_stream(), token_budget=96, max_sequences=8)
    packed = [next(stream) for _ in range(3)]
    state = stream.state_dict()
    packed += [next(stream) for _ in range(2)]
    assert all(b["input_ids"].shape == (96,) and b["cu_seqlens"].shape == (9,) for b in packed)
    got = torch.cat([b["input_ids"][b["attention_mask"].bool()] for b in packed])
    assert torch.equal(got, all_tokens[: len(got)])  # every sequence once, in order, none cut
    # each budget is full: the next sequence (at most SEQ tokens) would not have fitted
    assert all(int(b["attention_mask"].sum()) > 96 - SEQ or int(b["cu_seqlens"].diff().gt(0).sum()) == 8
               for b in packed)

    resumed = UnpaddedBatches(pretrain_stream(), token_budget=96, max_sequences=8)
    resumed.load_state_dict(state)
    for expected in packed[3:]:
        batch = next(resumed)
        assert all(torch.equal(batch[k], expected[k]) for k in expected)


def compiled_step(model: UnpaddedBertForPreTraining):  # noqa: ANN201
    def step(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return model(**batch)

    return step


def test_training_step_has_no_graph_break() -> None:
    model = UnpaddedBertForPreTraining(hf_model(dropout=0.1), max_seqlen=SEQ).train()
    flat = unpad(pair_batch([10, 31, 6]), token_budget=96, max_sequences=6)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(compiled_step(model))(flat)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_one_compilation_across_twenty_batches_of_different_lengths() -> None:
    """Forward and backward (AOTAutograd's joint graph) compile once for the whole stream of batches."""
    from torch._dynamo.testing import CompileCounterWithBackend

    model = UnpaddedBertForPreTraining(hf_model(dropout=0.1), max_seqlen=SEQ).train()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, backend=counter, dynamic=False)
    torch._dynamo.reset()
    rng = random.Random(7)
    widths = set()
    for i in range(20):
        batch = pair_batch(random_lengths(rng, rows=rng.randint(2, 5)), seed=i)
        widths.add(batch["input_ids"].shape)
        loss, _ = compiled(**unpad(batch, token_budget=160, max_sequences=6))
        loss.backward()
        assert torch.isfinite(loss)
    assert len(widths) > 5  # the padded batches really differed in shape
    assert counter.frame_count == 1
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_checkpoint_of_compiled_unpadded_model_loads_into_transformers(tmp_path: Path) -> None:
    from transformers import AutoModelForMaskedLM, AutoModelForPreTraining

    bert = hf_model(dropout=0.1)
    model = UnpaddedBertForPreTraining(bert, max_seqlen=SEQ)
    compiled = torch.compile(model, backend="aot_eager", dynamic=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rng = random.Random(1)
    for i in range(3):  # train a little so the weights are no longer the initial ones
        loss, _ = compiled(**unpad(pair_batch(random_lengths(rng), seed=i), token_budget=128, max_sequences=4))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    bert.save_pretrained(tmp_path)

    loaded, info = AutoModelForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    mlm = AutoModelForMaskedLM.from_pretrained(tmp_path)
    batch = pair_batch([14, 25])
    model.eval()
    with torch.no_grad():
        flat = unpad(batch, token_budget=64, max_sequences=2)
        ours = model.model.cls.predictions(model.hidden_states(flat))[: int(batch["attention_mask"].sum())]
        theirs = mlm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch["token_type_ids"]).logits[batch["attention_mask"].bool()]
        stock = loaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       token_type_ids=batch["token_type_ids"]).prediction_logits[batch["attention_mask"].bool()]
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    torch.testing.assert_close(stock, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("name", "bf16"), [
    ("NVIDIA H100 80GB HBM3", 989.4e12),  # SXM
    ("NVIDIA H100 PCIe", 756.5e12),
    ("NVIDIA H100 NVL", 835.5e12),
    ("NVIDIA H200", 989.4e12),
    ("NVIDIA A100-SXM4-40GB", 312e12),
    ("NVIDIA A100 80GB PCIe", 312e12),
    ("NVIDIA L4", 121e12),
    ("NVIDIA L40S", 362.05e12),
    ("NVIDIA A10G", 70e12),
    ("NVIDIA A10", 125e12),
])
def test_peak_flops_tell_the_variants_of_a_gpu_apart(name: str, bf16: float) -> None:
    from corpus.train.hardware import lookup_peak

    assert lookup_peak(name, "bf16")[0] == bf16
    assert lookup_peak(name, "fp32")[0] < bf16  # TF32 peaks are lower
    assert lookup_peak("Some Future GPU", "bf16")[0] is None


def test_model_flops_agree_with_the_loops_per_token_count_on_full_sequences() -> None:
    from corpus.train.hardware import hardware_flops, model_flops
    from corpus.train.models import flops_per_token, non_embedding_params

    config = tiny_config()
    n = non_embedding_params(hf_model())
    full = torch.full((4,), SEQ)
    assert model_flops(config, n, full) == pytest.approx(flops_per_token(config, n, SEQ) * 4 * SEQ)
    mixed = torch.tensor([SEQ, SEQ // 2])
    padded = hardware_flops(config, n, tokens=2 * SEQ, attention_square=2 * SEQ**2, head_rows=0)
    assert model_flops(config, n, mixed) < padded  # padding is work the hardware does, not the model


def _varlen_eager(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int) -> torch.Tensor:
    out = torch.full_like(q, float("nan"))
    for start, stop in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        assert stop - start <= max_len
        if stop > start:
            part = F.scaled_dot_product_attention(*(t[start:stop].transpose(0, 1) for t in (q, k, v)))
            out[start:stop] = part.transpose(0, 1)
    return out


@torch.library.custom_op("corpus_test::varlen_reference", mutates_args=())
def varlen_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int) -> torch.Tensor:
    """Per-sequence attention with the varlen kernels' contract; rows outside every sequence are garbage (NaN),
    as flash attention leaves them unwritten. An opaque op, like torch's, so dynamo does not trace into it."""
    return _varlen_eager(q, k, v, cu, max_len)


@varlen_reference.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor, max_len: int) -> torch.Tensor:
    return torch.empty_like(q)


@torch.library.custom_op("corpus_test::varlen_reference_backward", mutates_args=())
def varlen_reference_backward(grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                              cu: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Its gradients (softmax attention's backward written out: autograd does not run inside an op), garbage
    (NaN) for rows outside every sequence; an opaque op, as torch's backward is."""
    dq, dk, dv = (torch.full_like(t, float("nan")) for t in (q, k, v))
    scale = q.shape[-1] ** -0.5
    for start, stop in zip(cu[:-1].tolist(), cu[1:].tolist(), strict=True):
        if stop > start:
            qs, ks, vs, gs = (t[start:stop].transpose(0, 1) for t in (q, k, v, grad))  # (heads, L, d)
            p = torch.softmax(qs @ ks.transpose(1, 2) * scale, dim=-1)
            dp = gs @ vs.transpose(1, 2)
            ds = p * (dp - (dp * p).sum(-1, keepdim=True))
            dq[start:stop] = (ds @ ks * scale).transpose(0, 1)
            dk[start:stop] = (ds.transpose(1, 2) @ qs * scale).transpose(0, 1)
            dv[start:stop] = (p.transpose(1, 2) @ gs).transpose(0, 1)
    return dq, dk, dv


@varlen_reference_backward.register_fake
def _(grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu: torch.Tensor,
      max_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _varlen_reference_backward(ctx, grad):  # noqa: ANN001, ANN202
    q, k, v, cu = ctx.saved_tensors
    return (*varlen_reference_backward(grad, q, k, v, cu, ctx.max_len), None, None)


def _varlen_reference_setup(ctx, inputs, output) -> None:  # noqa: ANN001
    q, k, v, cu, max_len = inputs
    ctx.save_for_backward(q, k, v, cu)
    ctx.max_len = max_len


varlen_reference.register_autograd(_varlen_reference_backward, setup_context=_varlen_reference_setup)


@pytest.fixture
def varlen_branch(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The CUDA branch on CPU: torch's varlen flash kernel needs a GPU, so the reference op above stands in;
    everything around the kernel is the code that runs on CUDA (benchmarks/gpu_suite.sh checks the kernel)."""
    import corpus.train.unpadded as U

    seen: list[list[int]] = []

    def kernel(q, k, v, cu_q, cu_k, max_q, max_k):  # noqa: ANN001, ANN202 - varlen_attn's signature
        if not torch.compiler.is_compiling():
            seen.append(cu_q.tolist())
        return torch.ops.corpus_test.varlen_reference(q, k, v, cu_q, max_q)

    monkeypatch.setattr(U, "attention_backend", lambda device, dtype: "varlen")
    monkeypatch.setattr(U, "TORCH_VARLEN", kernel)
    return seen


def test_varlen_branch_equals_hf_and_writes_every_row(varlen_branch: list[list[int]]) -> None:
    batch = pair_batch([9, 32, 5, 17])
    flat = unpad(batch, token_budget=160, max_sequences=6)
    ours_model, ref_model = hf_model(), hf_model()
    loss, _ = UnpaddedBertForPreTraining(ours_model, max_seqlen=SEQ)(**flat)
    loss.backward()
    stock = ref_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      token_type_ids=batch["token_type_ids"], labels=batch["labels"],
                      next_sentence_label=batch["next_sentence_label"])
    stock.loss.backward()
    # 63 real tokens; the 97-token tail becomes sequences of 32, 32, 32 and 1, so every row is computed
    assert varlen_branch[0] == [0, 9, 41, 46, 63, 63, 63, 95, 127, 159, 160, 160]
    torch.testing.assert_close(loss, stock.loss, atol=1e-5, rtol=0)
    ref_grads = dict(ref_model.named_parameters())
    for name, param in ours_model.named_parameters():
        assert torch.isfinite(param.grad).all(), name
        torch.testing.assert_close(param.grad, ref_grads[name].grad, atol=1e-5, rtol=1e-4, msg=name)


def test_varlen_branch_compiles_once_without_graph_breaks(varlen_branch: list[list[int]]) -> None:
    from torch._dynamo.testing import CompileCounterWithBackend

    model = UnpaddedBertForPreTraining(hf_model(dropout=0.1), max_seqlen=SEQ).train()
    flat = unpad(pair_batch([10, 31, 6]), token_budget=96, max_sequences=6)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(compiled_step(model))(flat)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(model, backend=counter, dynamic=False)
    rng = random.Random(5)
    for i in range(6):
        loss, _ = compiled(**unpad(pair_batch(random_lengths(rng, rows=rng.randint(2, 5)), seed=i),
                                   token_budget=160, max_sequences=6))
        loss.backward()
    assert counter.frame_count == 1
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
