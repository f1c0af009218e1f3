"""BERT presets (the published sizes) and the FLOP count that MFU is measured against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corpus.core.errors import CorpusError

if TYPE_CHECKING:
    import torch
    from transformers import BertConfig, BertForPreTraining

# Turc et al. 2019 ("Well-Read Students Learn Better") for tiny..medium, Devlin et al. 2019 for base/large.
PRESETS: dict[str, tuple[int, int]] = {  # name: (layers, hidden size)
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
    "large": (24, 1024),
}


def bert_config(
    preset: str | Path = "tiny", *, vocab_size: int, max_position_embeddings: int = 512, **overrides: Any
) -> BertConfig:
    """A `BertConfig` from a preset name or a config JSON file (heads = H/64, intermediate = 4H).

    `vocab_size` comes from the tokenizer; a config file that names a smaller vocabulary is an error
    because token ids past the embedding table would crash deep inside the forward pass.
    """
    from transformers import BertConfig

    if str(preset) in PRESETS:
        layers, hidden = PRESETS[str(preset)]
        values: dict[str, Any] = {
            "num_hidden_layers": layers,
            "hidden_size": hidden,
            "num_attention_heads": hidden // 64,
            "intermediate_size": 4 * hidden,
            "vocab_size": vocab_size,
            "max_position_embeddings": max_position_embeddings,
        }
    else:
        path = Path(preset)
        if not path.is_file():
            raise CorpusError(f"unknown model preset {str(preset)!r}: choose one of {', '.join(PRESETS)} "
                              "or give a BERT config JSON file")
        try:
            values = json.loads(path.read_text())
        except ValueError as err:
            raise CorpusError(f"{path}: not valid JSON ({err})") from err
        if not isinstance(values, dict):
            raise CorpusError(f"{path}: expected a JSON object of BertConfig fields")
        values.setdefault("vocab_size", vocab_size)
        if values["vocab_size"] < vocab_size:
            raise CorpusError(
                f"{path}: vocab_size {values['vocab_size']} is smaller than the tokenizer's {vocab_size}; "
                "raise vocab_size in the config or use a smaller tokenizer"
            )
    values.update(overrides)
    # PyTorch scaled-dot-product attention: fused flash / memory-efficient kernels where the device has them.
    values["attn_implementation"] = "sdpa"
    return BertConfig(**values)


def build_model(config: BertConfig) -> BertForPreTraining:
    """A freshly initialised `BertForPreTraining`: MLM and NSP heads, decoder tied to the embeddings."""
    from transformers import BertForPreTraining

    return BertForPreTraining(config)


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters doing per-token matmuls: everything except embedding tables and the (tied) decoder."""
    skip = {id(p) for name, p in model.named_parameters() if "embeddings" in name}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def flops_per_token(config: BertConfig, n_params: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 N (forward + backward matmuls) plus the attention score/value term.

    The attention term is 12 * layers * hidden * seq_len (PaLM, appendix B), not halved because BERT
    attends in both directions. The MLM vocabulary projection is left out: we only run it on masked tokens.
    """
    return 6 * n_params + 12 * config.num_hidden_layers * config.hidden_size * seq_len
