"""Documents → sentence segments → BERT examples → masked batches.

Two objectives:
- `mlm+nsp` (the original BERT): sentence-pair examples built within documents, half of them with a true
  next segment and half with a segment from another document; `[CLS] A [SEP] B [SEP]`.
- `mlm` (RoBERTa's FULL-SENTENCES): the token stream of all documents, separated by `[SEP]`, cut into
  full-length sequences, so no compute is spent on padding.

Examples are rebuilt every epoch and masked per batch, so the model never sees the same masks twice
(the original BERT duplicated its data 10 times with fixed masks instead). Everything random is seeded by
(seed, epoch, position), which is what makes a resumed run continue exactly.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from corpus.core.errors import CorpusError
from corpus.train.sentences import sentence_spans, split_sentences  # noqa: F401 - part of this module's API

Segments = list[array]  # one document: its segments (sentences), each an array of token ids
Example = dict[str, Any]  # input_ids, token_type_ids, and next_sentence_label for NSP
IGNORE_INDEX = -100  # label for positions that are not predicted (PyTorch's cross-entropy default)
OBJECTIVES = ("mlm+nsp", "mlm")

def segment_documents(
    texts: Iterable[str], tokenizer: Any, *, max_segment_tokens: int, docs_per_batch: int = 2000
) -> list[Segments]:
    """Tokenise documents in memory, sentence by sentence, as the token store does (`tokens.segment_tokens`);
    sentences longer than `max_segment_tokens` are cut. Documents without any token are dropped.
    """
    from tokenizers import Tokenizer

    from corpus.train.tokens import segment_tokens, split_segments

    # A copy without the truncation or padding a loaded tokenizer may carry: we cut segments ourselves.
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    documents: list[Segments] = []
    block: list[str] = []

    def flush() -> None:
        for ids, lengths in segment_tokens(block, backend, max_segment_tokens):
            if len(lengths):
                documents.append([array("i", segment.tolist()) for segment in split_segments(ids, lengths)])
        block.clear()

    for text in texts:
        block.append(text)
        if len(block) >= docs_per_batch:
            flush()
    flush()
    return documents


def _truncate_pair(a: list[int], b: list[int], max_tokens: int, rng: random.Random) -> None:
    """Trim the longer segment, from the front or the back at random (as BERT does) to avoid a bias."""
    while len(a) + len(b) > max_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def create_nsp_examples(
    documents: Sequence[Segments],
    seq_len: int,
    rng: random.Random,
    *,
    cls_id: int,
    sep_id: int,
    short_seq_prob: float = 0.1,
    random_next_prob: float = 0.5,
    random_pool: Sequence[Segments] | None = None,
) -> list[Example]:
    """Sentence-pair examples as in BERT's `create_pretraining_data.py`, one pass over `documents`.

    Segments are gathered until they fill a target length (shortened to a random length with probability
    `short_seq_prob`, so the model also sees short inputs); a random split point makes A; B is the rest of
    the chunk (label 0, "is next") or, with probability `random_next_prob`, text from another document
    (label 1), in which case the unused segments are put back. `random_pool` (default: `documents`)
    supplies random segments; the current document is never chosen.
    """
    pool = documents if random_pool is None else random_pool
    if sum(1 for doc in pool if doc) < 2:
        raise CorpusError("next-sentence prediction needs at least 2 non-empty documents; "
                          "add documents or use objective 'mlm'")
    max_tokens = seq_len - 3  # [CLS] A [SEP] B [SEP]
    if max_tokens < 2:
        raise CorpusError(f"seq_len {seq_len} is too short for sentence pairs; use at least 8")
    examples: list[Example] = []
    for document in documents:
        target = max_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_tokens)
        chunk: list[array] = []
        length = 0
        i = 0
        while i < len(document):
            chunk.append(document[i])
            length += len(document[i])
            if i == len(document) - 1 or length >= target:
                a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
                tokens_a = [t for segment in chunk[:a_end] for t in segment]
                tokens_b: list[int] = []
                if len(chunk) == 1 or rng.random() < random_next_prob:
                    is_random_next = 1
                    other = pool[rng.randrange(len(pool))]
                    while other is document or not other:
                        other = pool[rng.randrange(len(pool))]
                    for segment in other[rng.randrange(len(other)) :]:
                        tokens_b.extend(segment)
                        if len(tokens_b) >= target - len(tokens_a):
                            break
                    i -= len(chunk) - a_end  # the segments not used as A start the next chunk
                else:
                    is_random_next = 0
                    tokens_b = [t for segment in chunk[a_end:] for t in segment]
                _truncate_pair(tokens_a, tokens_b, max_tokens, rng)
                if tokens_a and tokens_b:
                    examples.append({
                        "input_ids": [cls_id, *tokens_a, sep_id, *tokens_b, sep_id],
                        "token_type_ids": [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1),
                        "next_sentence_label": is_random_next,
                    })
                chunk, length = [], 0
            i += 1
    return examples


def pack_sequences(
    documents: Sequence[Segments], seq_len: int, rng: random.Random, *, cls_id: int, sep_id: int
) -> list[Example]:
    """Full-length `[CLS] …` sequences cut from all documents (shuffled) joined by `[SEP]`; no padding.

    The remainder shorter than a sequence is dropped, unless the corpus is smaller than one sequence.
    """
    order = list(range(len(documents)))
    rng.shuffle(order)
    stream = array("i")
    for index in order:
        for segment in documents[index]:
            stream.extend(segment)
        stream.append(sep_id)
    body = seq_len - 1
    count = len(stream) // body
    if count == 0:
        return [{"input_ids": [cls_id, *stream]}] if stream else []
    return [{"input_ids": [cls_id, *stream[k * body : (k + 1) * body]]} for k in range(count)]


class MaskingCollator:
    """Pads examples into tensors and masks 15% of each sequence's tokens: 80% [MASK], 10% random, 10% kept.

    As in BERT, exactly round(15% of the maskable tokens) per sequence (at least one), so short sequences
    are not left without a prediction. Special tokens are never masked, nor used as random replacements.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        mask_id: int,
        pad_id: int,
        special_ids: Iterable[int],
        mlm_probability: float = 0.15,
        pad_to_multiple_of: int = 8,
    ) -> None:
        if not 0 < mlm_probability < 1:
            raise CorpusError(f"mlm_probability must be between 0 and 1, got {mlm_probability}")
        self.mask_id = mask_id
        self.pad_id = pad_id
        self.mlm_probability = mlm_probability
        self.pad_to_multiple_of = pad_to_multiple_of
        self.special = torch.zeros(vocab_size, dtype=torch.bool)
        self.special[list(special_ids)] = True
        self.replacements = (~self.special).nonzero().squeeze(1)

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, vocab_size: int, **kwargs: Any) -> MaskingCollator:
        """`[unused]` padding tokens count as special: they never occur in text, so they make poor noise."""
        special = set(tokenizer.all_special_ids)
        special.update(i for token, i in tokenizer.get_vocab().items() if token.startswith("[unused"))
        special.update(range(len(tokenizer), vocab_size))  # model rows beyond the tokenizer's vocabulary
        return cls(
            vocab_size=vocab_size, mask_id=tokenizer.mask_token_id, pad_id=tokenizer.pad_token_id,
            special_ids=special, **kwargs,
        )

    def __call__(
        self, examples: Sequence[Example], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        rows = len(examples)
        width = max(len(e["input_ids"]) for e in examples)
        width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((rows, width), self.pad_id, dtype=torch.long)
        token_type_ids = torch.zeros((rows, width), dtype=torch.long)
        attention_mask = torch.zeros((rows, width), dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            input_ids[row, :n] = torch.tensor(example["input_ids"])
            if "token_type_ids" in example:
                token_type_ids[row, :n] = torch.tensor(example["token_type_ids"])
            attention_mask[row, :n] = 1

        maskable = attention_mask.bool() & ~self.special[input_ids]
        n_maskable = maskable.sum(1)
        n_masked = (n_maskable * self.mlm_probability).round().long().clamp(min=1).minimum(n_maskable)
        # A random ranking of each row's maskable positions; the first n_masked of it are masked.
        scores = torch.rand((rows, width), generator=generator).masked_fill(~maskable, 2.0)
        masked = scores.argsort(1).argsort(1) < n_masked[:, None]
        labels = input_ids.masked_fill(~masked, IGNORE_INDEX)
        action = torch.rand((rows, width), generator=generator)
        pick = torch.randint(len(self.replacements), (rows, width), generator=generator)
        random_ids = self.replacements[pick]
        input_ids = torch.where(masked & (action < 0.8), self.mask_id, input_ids)
        input_ids = torch.where(masked & (action >= 0.8) & (action < 0.9), random_ids, input_ids)

        # The masked positions (flat indices) and their labels, padded to a size that depends only on the
        # batch shape: the loss gathers them without a data-dependent shape, so the GPU never waits for the
        # host and torch.compile sees static shapes. Padding has label IGNORE_INDEX.
        flat = masked.view(-1).nonzero().squeeze(1)
        slots = -(-rows * (round(self.mlm_probability * width) + 1) // 8) * 8
        mlm_positions = torch.zeros(slots, dtype=torch.long)
        mlm_positions[: len(flat)] = flat
        mlm_labels = torch.full((slots,), IGNORE_INDEX, dtype=torch.long)
        mlm_labels[: len(flat)] = labels.view(-1)[flat]

        batch = {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
            "labels": labels,
            "mlm_positions": mlm_positions,
            "mlm_labels": mlm_labels,
        }
        if "next_sentence_label" in examples[0]:
            batch["next_sentence_label"] = torch.tensor([e["next_sentence_label"] for e in examples])
        return batch


def _mix(*numbers: int) -> int:
    """One 63-bit seed from several integers (seed, epoch, position, rank)."""
    value = 0
    for n in numbers:
        value = (value * 1_000_003 + n) % (1 << 63)
    return value


def build_examples(
    documents: Sequence[Segments],
    objective: str,
    seq_len: int,
    rng: random.Random,
    *,
    cls_id: int,
    sep_id: int,
    short_seq_prob: float = 0.1,
    random_pool: Sequence[Segments] | None = None,
) -> list[Example]:
    """One epoch's examples for `objective`, shuffled."""
    if objective == "mlm+nsp":
        examples = create_nsp_examples(
            documents, seq_len, rng, cls_id=cls_id, sep_id=sep_id, short_seq_prob=short_seq_prob,
            random_pool=random_pool,
        )
    elif objective == "mlm":
        examples = pack_sequences(documents, seq_len, rng, cls_id=cls_id, sep_id=sep_id)
    else:
        raise CorpusError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    rng.shuffle(examples)
    return examples


class PretrainBatches:
    """An endless, resumable stream of masked batches for one rank.

    Epoch e's examples come from `Random(seed, e)` and are dealt round-robin to the ranks (each rank a
    different, equally long share); batch k's masks come from a generator seeded with (seed, e, k, rank).
    So `state_dict()` (epoch, position) is all a checkpoint needs to continue the exact same stream.
    """

    def __init__(
        self,
        documents: Sequence[Segments],
        *,
        objective: str,
        seq_len: int,
        batch_size: int,
        collator: MaskingCollator,
        cls_id: int,
        sep_id: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        short_seq_prob: float = 0.1,
    ) -> None:
        self.documents = documents
        self.objective = objective
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.collator = collator
        self.cls_id, self.sep_id = cls_id, sep_id
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.short_seq_prob = short_seq_prob
        self.epoch = 0
        self.position = 0
        self._cached: tuple[int, list[Example]] | None = None
        if len(self._rank_examples()) == 0:
            raise CorpusError(
                f"the corpus yields too few {objective} examples for {world_size} process(es); add documents"
            )

    def _rank_examples(self) -> list[Example]:
        if self._cached is None or self._cached[0] != self.epoch:
            rng = random.Random(_mix(self.seed, self.epoch))
            examples = build_examples(
                self.documents, self.objective, self.seq_len, rng, cls_id=self.cls_id, sep_id=self.sep_id,
                short_seq_prob=self.short_seq_prob,
            )
            share = len(examples) // self.world_size  # equal shares: DDP ranks must take equally many steps
            self._cached = (self.epoch, examples[self.rank :: self.world_size][:share])
        return self._cached[1]

    def epoch_size(self) -> int:
        """Examples this rank trains on in the current epoch."""
        return len(self._rank_examples())

    def batches_per_epoch(self) -> int:
        """Full batches only, unless the corpus is smaller than one batch (then one short batch)."""
        return max(1, len(self._rank_examples()) // self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        if self.position >= self.batches_per_epoch():
            self.epoch, self.position = self.epoch + 1, 0
        examples = self._rank_examples()
        start = self.position * self.batch_size
        generator = torch.Generator().manual_seed(_mix(self.seed, self.epoch, self.position, self.rank))
        batch = self.collator(examples[start : start + self.batch_size], generator)
        self.position += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def fixed_batches(
    examples: Sequence[Example], batch_size: int, collator: MaskingCollator, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    """Batches with masks fixed once, for evaluation numbers that are comparable from step to step."""
    generator = torch.Generator().manual_seed(seed)
    return [collator(examples[i : i + batch_size], generator) for i in range(0, len(examples), batch_size)]
