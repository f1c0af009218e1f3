"""WordPiece tokenizers: trained on the corpus with `tokenizers`, saved as a `BertTokenizerFast` directory."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from corpus.core.errors import CorpusError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB_MULTIPLE = 64  # embedding and output matrices whose size is a multiple of 64 use GPU tensor cores well


def round_up(n: int, multiple: int = VOCAB_MULTIPLE) -> int:
    return -(-n // multiple) * multiple


def train_tokenizer(
    texts: Iterable[str],
    out: str | Path | None = None,
    *,
    vocab_size: int = 8000,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    min_frequency: int = 2,
) -> PreTrainedTokenizerFast:
    """Train WordPiece on `texts`; the vocabulary is padded with `[unusedN]` to a multiple of 64.

    A small corpus yields fewer pieces than asked for; padding (as Google's BERT vocabularies do) keeps
    `len(tokenizer)` a multiple of 64 so the model's vocabulary matches the tokenizer exactly.
    `strip_accents=None` follows `lowercase`, as in the original BERT.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    if strip_accents is None:
        strip_accents = lowercase
    target = round_up(max(vocab_size, len(SPECIAL_TOKENS) + 1))
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=target, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    vocab = tok.get_vocab()
    if len(vocab) <= len(SPECIAL_TOKENS):
        raise CorpusError("the corpus has no text to train a tokenizer on")
    trained = len(vocab)
    for i in range(round_up(trained) - trained):
        vocab[f"[unused{i}]"] = trained + i
    tok.model = models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##")
    tok.decoder = decoders.WordPiece(prefix="##")
    cls_id, sep_id = vocab["[CLS]"], vocab["[SEP]"]
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        do_lower_case=lowercase,
        strip_accents=strip_accents,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
    if out is not None:
        fast.save_pretrained(str(out))
    return fast


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """Load a tokenizer directory (ours or any BERT-style one with [CLS] [SEP] [MASK] [PAD])."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise CorpusError(f"{path}: tokenizer directory does not exist")
    try:
        tok = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as err:
        raise CorpusError(f"{path}: not a tokenizer directory ({err})") from err
    needed = ("cls_token", "sep_token", "mask_token", "pad_token")
    missing = [name for name in needed if getattr(tok, name) is None]
    if missing:
        raise CorpusError(f"{path}: tokenizer lacks {', '.join(missing)}; BERT pretraining needs all four")
    return tok
