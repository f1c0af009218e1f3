"""Unpadded BERT pretraining (MosaicBERT-style): only real tokens go through the encoder, in static shapes.

A padded batch spends compute on `[PAD]` columns and hands SDPA a (B, 1, W, W) mask, which rules out the flash
kernel. Here the real tokens of all sequences are gathered into one flat (T,) row with cumulative sequence
lengths (`cu_seqlens`), and attention runs per sequence:

- on CUDA in bf16/fp16: `torch.nn.attention.varlen.varlen_attn` (flash attention over `cu_seqlens`), or the
  `flash-attn` package where installed (it is the one that applies attention dropout, see below);
- elsewhere (CPU, fp32): the flat tokens are gathered into a (sequences, max_seqlen) grid for padded SDPA.

Every tensor of a batch has a size fixed by (`token_budget`, `max_sequences`, `max_predictions`), never by the
data, so `torch.compile` builds one graph for the whole run and the forward pass never waits for the host.

The unpadded batch (what `unpad` and `UnpaddedBatches` return; all int64 unless noted, T = token_budget,
N = max_sequences, M = max_predictions):

| key | shape | meaning |
|---|---|---|
| `input_ids` | (T,) | the real tokens of sequence 0, then 1, ...; the tail after them is padding (id 0) |
| `token_type_ids` | (T,) | segment A (0) / B (1) per token; 0 in the tail |
| `position_ids` | (T,) | position of each token in its own sequence; 0 in the tail |
| `attention_mask` | (T,) | 1 for real tokens, 0 for the tail (so the loop's `count_tokens` counts real tokens) |
| `cu_seqlens` | (N+1,) int32 | `cu_seqlens[i]:cu_seqlens[i+1]` are sequence i's tokens; unused slots repeat the total |
| `mlm_positions` | (M,) | indices into the flat T tokens of the masked positions; unused slots point at 0 |
| `mlm_labels` | (M,) | the original token at each masked position; -100 in unused slots |
| `next_sentence_label` | (N,) | NSP label per sequence (1 = random next); -100 for unused slots (only with NSP) |

The longest sequence (`max_seqlen`) is not in the batch: it is the run's `seq_len`, a constant held by the model
(`UnpaddedBertForPreTraining(..., max_seqlen=)`), because a per-batch value would be a recompilation or a sync.

The weights are Hugging Face `BertForPreTraining`'s own modules, reused: saving the wrapped model with
`save_pretrained` writes the same file as before, which `AutoModelForPreTraining`, `AutoModelForMaskedLM` and
`pipeline("fill-mask")` load unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from corpus.core.errors import CorpusError

IGNORE_INDEX = -100  # as corpus.train.data.IGNORE_INDEX (PyTorch's cross-entropy default)
Batch = dict[str, torch.Tensor]


def default_max_predictions(token_budget: int, max_sequences: int, mlm_probability: float = 0.15) -> int:
    """Masked-position slots that always suffice for `MaskingCollator`'s rule, rounded up to a multiple of 8.

    The collator masks round(p x maskable tokens), at least one, per sequence: at most p x T + N in total.
    """
    return -(-(math.ceil(mlm_probability * token_budget) + max_sequences) // 8) * 8


# --- padded batch -> flat pieces -> static-shape unpadded batch ----------------------------------------


def _flatten_rows(batch: Batch) -> dict[str, Any]:
    """A padded collator batch as per-row flat pieces (real tokens only, no budget yet); host-side work."""
    mask = batch["attention_mask"].bool()
    rows, width = mask.shape
    lengths = mask.sum(1)
    if not torch.equal(mask, torch.arange(width)[None, :] < lengths[:, None]):
        raise CorpusError("unpad expects each row's real tokens first and padding after (as MaskingCollator pads)")
    if "mlm_positions" in batch and "mlm_labels" in batch:
        keep = batch["mlm_labels"] != IGNORE_INDEX
        positions, mlm_labels = batch["mlm_positions"][keep], batch["mlm_labels"][keep]
    else:  # derive them from the dense labels
        positions = (batch["labels"].reshape(-1) != IGNORE_INDEX).nonzero().squeeze(1)
        mlm_labels = batch["labels"].reshape(-1)[positions]
    starts = torch.zeros(rows, dtype=torch.long)
    starts[1:] = lengths.cumsum(0)[:-1]
    pred_rows = positions // width
    return {
        "input_ids": batch["input_ids"][mask],
        "token_type_ids": batch["token_type_ids"][mask],
        "position_ids": torch.arange(width).expand(rows, width)[mask],
        "lengths": lengths,
        "pred_rows": pred_rows,  # which row each masked position belongs to (for slicing rows)
        "pred_positions": starts[pred_rows] + positions % width,  # flat, relative to this batch's first token
        "mlm_labels": mlm_labels,
        "nsp": batch.get("next_sentence_label"),
    }


def _slice_rows(piece: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    """Rows [start, stop) of a flattened batch, positions made relative to the slice's first token."""
    lengths = piece["lengths"]
    first = int(lengths[:start].sum())
    last = first + int(lengths[start:stop].sum())
    keep = (piece["pred_rows"] >= start) & (piece["pred_rows"] < stop)
    nsp = piece["nsp"]
    return {
        "input_ids": piece["input_ids"][first:last],
        "token_type_ids": piece["token_type_ids"][first:last],
        "position_ids": piece["position_ids"][first:last],
        "lengths": lengths[start:stop],
        "pred_rows": piece["pred_rows"][keep] - start,
        "pred_positions": piece["pred_positions"][keep] - first,
        "mlm_labels": piece["mlm_labels"][keep],
        "nsp": None if nsp is None else nsp[start:stop],
    }


def _assemble(pieces: list[dict[str, Any]], token_budget: int, max_sequences: int, max_predictions: int) -> Batch:
    """Concatenate flat pieces and pad every tensor to its fixed size."""
    lengths = torch.cat([p["lengths"] for p in pieces])
    total, count = int(lengths.sum()), len(lengths)
    offsets = [0]
    for p in pieces[:-1]:
        offsets.append(offsets[-1] + int(p["lengths"].sum()))
    positions = torch.cat([p["pred_positions"] + off for p, off in zip(pieces, offsets, strict=True)])
    labels = torch.cat([p["mlm_labels"] for p in pieces])
    if total > token_budget or count > max_sequences:
        raise CorpusError(
            f"a batch of {count} sequences and {total} real tokens does not fit token_budget {token_budget} / "
            f"max_sequences {max_sequences}; raise them or lower the batch size"
        )
    if len(positions) > max_predictions:
        raise CorpusError(f"{len(positions)} masked positions exceed max_predictions {max_predictions}; raise it")

    def padded(values: torch.Tensor, size: int, fill: int) -> torch.Tensor:
        out = torch.full((size,), fill, dtype=torch.long)
        out[: len(values)] = values
        return out

    cu_seqlens = torch.full((max_sequences + 1,), total, dtype=torch.int32)
    cu_seqlens[0] = 0
    cu_seqlens[1 : count + 1] = lengths.cumsum(0).to(torch.int32)
    batch = {
        "input_ids": padded(torch.cat([p["input_ids"] for p in pieces]), token_budget, 0),
        "token_type_ids": padded(torch.cat([p["token_type_ids"] for p in pieces]), token_budget, 0),
        "position_ids": padded(torch.cat([p["position_ids"] for p in pieces]), token_budget, 0),
        "attention_mask": (torch.arange(token_budget) < total).long(),
        "cu_seqlens": cu_seqlens,
        "mlm_positions": padded(positions, max_predictions, 0),
        "mlm_labels": padded(labels, max_predictions, IGNORE_INDEX),
    }
    if all(p["nsp"] is not None for p in pieces):
        batch["next_sentence_label"] = padded(torch.cat([p["nsp"] for p in pieces]), max_sequences, IGNORE_INDEX)
    return batch


def unpad(
    batch: Batch, *, token_budget: int, max_sequences: int, max_predictions: int | None = None
) -> Batch:
    """A padded `MaskingCollator` batch as a static-shape unpadded batch (the table in the module docstring).

    Runs on the host, in the data path: the data-dependent work (which tokens are real) happens here so the
    model's forward pass has none. A batch that does not fit the budget is an error, never silently cut.
    """
    max_predictions = max_predictions or default_max_predictions(token_budget, max_sequences)
    return _assemble([_flatten_rows(batch)], token_budget, max_sequences, max_predictions)


class UnpaddedBatches:
    """Packs the rows of a stream of padded batches into full token budgets: every step ~`token_budget` real tokens.

    Rows are taken in order, as many as fit (at most `max_sequences`); the rows that do not fit start the
    next batch, so no sequence is cut or dropped. With `token_budget` = batch_size x seq_len a step holds
    more (shorter) NSP pairs than the padded batch did, and nearly no padding. `state_dict()` holds the
    inner iterator's state and the not-yet-used rows, so a resumed run continues the same stream.
    """

    def __init__(
        self, batches: Iterator[Batch], *, token_budget: int, max_sequences: int, max_predictions: int | None = None
    ) -> None:
        self.batches = batches
        self.token_budget = token_budget
        self.max_sequences = max_sequences
        self.max_predictions = max_predictions or default_max_predictions(token_budget, max_sequences)
        self._pending: tuple[Batch, int] | None = None  # a padded batch and its first unused row
        self._flat: dict[str, Any] | None = None  # that batch, flattened once

    def __iter__(self) -> UnpaddedBatches:
        return self

    def __next__(self) -> Batch:
        pieces: list[dict[str, Any]] = []
        tokens = rows = 0
        while True:
            if self._pending is None:
                self._pending = (next(self.batches), 0)
                self._flat = None
            batch, start = self._pending
            if self._flat is None:
                self._flat = _flatten_rows(batch)
            lengths = self._flat["lengths"].tolist()
            stop = start
            while (stop < len(lengths) and rows < self.max_sequences
                   and tokens + lengths[stop] <= self.token_budget):
                tokens += lengths[stop]
                rows += 1
                stop += 1
            if stop == start and not pieces:
                raise CorpusError(f"a sequence of {lengths[start]} tokens exceeds token_budget {self.token_budget}")
            if stop > start:
                pieces.append(_slice_rows(self._flat, start, stop))
            self._pending = None if stop == len(lengths) else (batch, stop)
            if self._pending is not None:  # the budget (or the sequence slots) are full
                return _assemble(pieces, self.token_budget, self.max_sequences, self.max_predictions)

    def state_dict(self) -> dict[str, Any]:
        inner = self.batches.state_dict() if hasattr(self.batches, "state_dict") else None
        pending = None if self._pending is None else {"batch": self._pending[0], "row": self._pending[1]}
        return {"inner": inner, "pending": pending}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("inner") is not None:
            self.batches.load_state_dict(state["inner"])  # type: ignore[attr-defined]
        pending = state.get("pending")
        self._pending = None if pending is None else (pending["batch"], int(pending["row"]))
        self._flat = None


# --- attention --------------------------------------------------------------------------------------


def _find_kernels() -> tuple[Any, Any]:
    """The varlen attention kernels this install has, looked up once at import (a lookup inside the forward pass
    would be an import statement in the traced code: a graph break)."""
    try:
        from flash_attn import flash_attn_varlen_func  # the flash-attn package: supports attention dropout
    except Exception:  # not installed, or built for another torch/CUDA
        flash_attn_varlen_func = None
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:  # torch before 2.10
        varlen_attn = None
    return flash_attn_varlen_func, varlen_attn


FLASH_ATTN_VARLEN, TORCH_VARLEN = _find_kernels()


def attention_backend(device: torch.device | str, dtype: torch.dtype) -> str:
    """Which kernel the unpadded attention uses for tensors on `device` of `dtype` (what the GPU suite logs).

    `flash-attn` when installed (it applies attention dropout), else torch's varlen flash attention (no
    attention dropout: dropout_p is fixed to 0 in torch 2.13, as MosaicBERT trains), else padded SDPA.
    """
    if torch.device(device).type != "cuda" or dtype not in (torch.float16, torch.bfloat16):
        return "sdpa"
    if FLASH_ATTN_VARLEN is not None:
        return "flash_attn"
    if TORCH_VARLEN is not None:
        return "varlen"
    return "sdpa"


class _Layout:
    """Index tensors shared by all layers of one forward pass: flat tokens <-> the (N, S) grid for SDPA."""

    def __init__(self, cu_seqlens: torch.Tensor, attention_mask: torch.Tensor, max_seqlen: int) -> None:
        tokens = attention_mask.shape[0]
        cu = cu_seqlens.long()
        n = cu.shape[0] - 1
        self.cu_seqlens = cu_seqlens.int()
        self.max_seqlen = max_seqlen
        real = attention_mask.bool()
        slot = torch.arange(max_seqlen, device=cu.device)
        lengths = cu[1:] - cu[:-1]
        grid_valid = slot[None, :] < lengths[:, None]  # (N, S)
        # grid slot (i, s) reads flat token cu[i] + s; empty slots read an appended zero row (index T)
        self.grid_index = torch.where(grid_valid, cu[:-1, None] + slot, tokens).reshape(-1)
        # keys a query may attend to; slot 0 always, so rows of empty sequences are never all -inf (no NaN)
        self.key_mask = (grid_valid | (slot == 0)).view(n, 1, 1, max_seqlen)
        sequence = torch.bucketize(torch.arange(tokens, device=cu.device), cu[1:], right=True)
        offset = torch.arange(tokens, device=cu.device) - cu[sequence.clamp(max=n - 1)]
        # flat token t reads grid row sequence*S + offset; tail tokens read an appended zero row (index N*S)
        self.token_index = torch.where(real, sequence * max_seqlen + offset, n * max_seqlen)
        self.sequences = n
        self._varlen_cu: torch.Tensor | None = None

    def varlen_cu_seqlens(self, tokens: int) -> torch.Tensor:
        """`cu_seqlens` with the tail cut into extra sequences of at most `max_seqlen` tokens.

        Flash kernels leave the rows outside every sequence unwritten, in the output and in the gradients;
        garbage there would reach the weight gradients (0 x NaN is NaN). As sequences of their own the tail
        tokens are computed like any other, at the cost of attention over fewer than `max_seqlen` tokens
        when the budget is well filled. The number of extra slots is fixed by the shapes: no recompilation.
        """
        if self._varlen_cu is None:
            extra = -(-tokens // self.max_seqlen)
            steps = torch.arange(1, extra + 1, device=self.cu_seqlens.device, dtype=torch.int32) * self.max_seqlen
            tail = (self.cu_seqlens[-1] + steps).clamp(max=tokens)
            self._varlen_cu = torch.cat([self.cu_seqlens, tail])
        return self._varlen_cu

    def attend(self, qkv: torch.Tensor, heads: int, dropout: float, training: bool) -> torch.Tensor:
        """Bidirectional attention of each token within its own sequence: (T, 3H) -> (T, H)."""
        tokens, width = qkv.shape
        hidden = width // 3
        backend = attention_backend(qkv.device, qkv.dtype)
        if backend != "sdpa":
            q, k, v = qkv.view(tokens, 3, heads, hidden // heads).unbind(1)
            cu = self.varlen_cu_seqlens(tokens)
            if backend == "flash_attn":
                out = FLASH_ATTN_VARLEN(q, k, v, cu, cu, self.max_seqlen, self.max_seqlen,
                                        dropout_p=dropout if training else 0.0)
            else:
                out = TORCH_VARLEN(q, k, v, cu, cu, self.max_seqlen, self.max_seqlen)
            return out.reshape(tokens, hidden)
        grid = torch.cat([qkv, qkv.new_zeros(1, width)]).index_select(0, self.grid_index)
        q, k, v = grid.view(self.sequences, self.max_seqlen, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=self.key_mask, dropout_p=dropout if training else 0.0)
        out = out.transpose(1, 2).reshape(self.sequences * self.max_seqlen, hidden)
        return torch.cat([out, out.new_zeros(1, hidden)]).index_select(0, self.token_index)


# --- the model ----------------------------------------------------------------------------------------


class UnpaddedBertForPreTraining(torch.nn.Module):
    """BERT pretraining (MLM + NSP) over unpadded batches, on the weights of a Hugging Face `BertForPreTraining`.

    Holds the HF model as `self.model` (the same parameter names as `PretrainingObjective`, so checkpoints of
    either load into the other) and runs its own forward with the HF modules' weights: fused QKV projection,
    per-sequence attention, bias+GELU and dropout+residual+LayerNorm written as plain ops that `torch.compile`
    fuses. Save with `self.model.save_pretrained(...)`. Returns `(loss, metrics)` with `PretrainingObjective`'s
    metric names. A padded batch (no `cu_seqlens`) runs the stock HF encoder instead, so evaluation code that
    feeds padded batches keeps working.
    """

    def __init__(self, model: torch.nn.Module, *, max_seqlen: int, nsp: bool = True) -> None:
        super().__init__()
        self.model = model
        self.nsp = nsp
        self.max_seqlen = max_seqlen
        config = model.config
        if config.hidden_act not in ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu"):
            raise CorpusError(f"unpadded BERT supports gelu/relu activations, not {config.hidden_act!r}")
        if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
            raise CorpusError("unpadded BERT supports absolute position embeddings only")
        if max_seqlen > config.max_position_embeddings:
            raise CorpusError(f"max_seqlen {max_seqlen} exceeds max_position_embeddings "
                              f"{config.max_position_embeddings}")
        if not nsp:  # unused parameters would make DDP wait for gradients that never come
            for module in (model.bert.pooler, model.cls.seq_relationship):
                module.requires_grad_(False)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        act = self.model.config.hidden_act
        if act == "relu":
            return F.relu(x)
        return F.gelu(x, approximate="none" if act == "gelu" else "tanh")

    def encode(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, position_ids: torch.Tensor,
               layout: _Layout) -> torch.Tensor:
        """The encoder over flat tokens: (T,) ids -> (T, H) hidden states."""
        bert, config = self.model.bert, self.model.config
        p_hidden = config.hidden_dropout_prob if self.training else 0.0
        p_attn = config.attention_probs_dropout_prob
        emb = bert.embeddings
        x = (emb.word_embeddings(input_ids) + emb.token_type_embeddings(token_type_ids)
             + emb.position_embeddings(position_ids))
        x = F.dropout(F.layer_norm(x, x.shape[-1:], emb.LayerNorm.weight, emb.LayerNorm.bias, emb.LayerNorm.eps),
                      p_hidden, self.training)
        for layer in bert.encoder.layer:
            att = layer.attention
            s = att.self
            qkv = F.linear(x, torch.cat([s.query.weight, s.key.weight, s.value.weight]),
                           torch.cat([s.query.bias, s.key.bias, s.value.bias]))
            ctx = layout.attend(qkv, config.num_attention_heads, p_attn, self.training)
            out = att.output
            x = F.layer_norm(F.dropout(out.dense(ctx), p_hidden, self.training) + x, x.shape[-1:],
                             out.LayerNorm.weight, out.LayerNorm.bias, out.LayerNorm.eps)
            h = self._act(layer.intermediate.dense(x))
            o = layer.output
            x = F.layer_norm(F.dropout(o.dense(h), p_hidden, self.training) + x, x.shape[-1:],
                             o.LayerNorm.weight, o.LayerNorm.bias, o.LayerNorm.eps)
        return x

    def _losses(self, hidden: torch.Tensor, mlm_positions: torch.Tensor, mlm_labels: torch.Tensor,
                pooled: torch.Tensor | None, next_sentence_label: torch.Tensor | None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MLM on the masked positions only (the vocabulary projection is most of a small model's cost)."""
        logits = self.model.cls.predictions(hidden.index_select(0, mlm_positions)).float()
        mlm_loss = F.cross_entropy(logits, mlm_labels, ignore_index=IGNORE_INDEX)
        real = mlm_labels != IGNORE_INDEX
        correct = (logits.argmax(-1) == mlm_labels) & real
        metrics = {"mlm_loss": mlm_loss.detach(), "mlm_acc": correct.sum() / real.sum().clamp(min=1)}
        loss = mlm_loss
        if self.nsp and pooled is not None and next_sentence_label is not None:
            nsp_logits = self.model.cls.seq_relationship(pooled).float()
            nsp_loss = F.cross_entropy(nsp_logits, next_sentence_label, ignore_index=IGNORE_INDEX)
            pairs = next_sentence_label != IGNORE_INDEX
            metrics["nsp_loss"] = nsp_loss.detach()
            metrics["nsp_acc"] = ((nsp_logits.argmax(-1) == next_sentence_label) & pairs).sum() / pairs.sum().clamp(
                min=1)
            loss = loss + nsp_loss
        return loss, metrics

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        mlm_positions: torch.Tensor,
        mlm_labels: torch.Tensor,
        next_sentence_label: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cu_seqlens: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss and metrics for an unpadded batch (or, without `cu_seqlens`, a padded one)."""
        del labels  # the padded batch's dense labels; mlm_positions/mlm_labels carry the same information
        if cu_seqlens is None:  # a padded batch: the stock encoder, the same heads
            out = self.model.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return self._losses(out.last_hidden_state.flatten(0, 1), mlm_positions, mlm_labels,
                                out.pooler_output, next_sentence_label)
        if position_ids is None:
            raise CorpusError("an unpadded batch needs position_ids (use corpus.train.unpadded.unpad)")
        layout = _Layout(cu_seqlens, attention_mask, self.max_seqlen)
        hidden = self.encode(input_ids, token_type_ids, position_ids, layout)
        pooled = None
        if self.nsp and next_sentence_label is not None:
            # [CLS] is each sequence's first token; empty slots point past the real tokens (label -100)
            first = cu_seqlens[:-1].long().clamp(max=input_ids.shape[0] - 1)
            pooled = self.model.bert.pooler.activation(self.model.bert.pooler.dense(hidden.index_select(0, first)))
        return self._losses(hidden, mlm_positions, mlm_labels, pooled, next_sentence_label)

    def hidden_states(self, batch: Batch) -> torch.Tensor:
        """The encoder's last hidden states (T, H) for an unpadded batch: for tests and probing."""
        layout = _Layout(batch["cu_seqlens"], batch["attention_mask"], self.max_seqlen)
        return self.encode(batch["input_ids"], batch["token_type_ids"], batch["position_ids"], layout)


__all__ = [
    "UnpaddedBatches",
    "UnpaddedBertForPreTraining",
    "attention_backend",
    "default_max_predictions",
    "unpad",
]
