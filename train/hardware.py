"""Peak FLOP/s per exact GPU model, and the FLOP counts that MFU and HFU divide by them.

MFU (model FLOP utilisation) counts the FLOPs the model needs for the real tokens: 6 x non-embedding
parameters per token, plus attention over each sequence's real length (12 x layers x hidden x len^2 per
sequence, forward and backward; PaLM appendix B, not halved because BERT attends both ways).
HFU (hardware FLOP utilisation) counts what the device actually executed: padding and the budget's tail,
attention over the padded grid, the vocabulary projection on every row it ran on, and recomputation.
Both divide by the dense (no sparsity) datasheet peak for the precision the matmuls run in.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import BertConfig

# (pattern on torch.cuda.get_device_name, dense bf16 FLOP/s, dense TF32 FLOP/s, source). First match wins,
# so the specific names (H100 NVL, H100 PCIe, GH200, L40S, A10G) come before the ones they contain.
# Datasheets give sparse figures ("with sparsity") for many cards: those are halved here.
# None: the card has no tensor-core path for that precision (V100/T4 have no bf16 or TF32).
PEAK_FLOPS: list[tuple[str, float | None, float | None, str]] = [
    (r"GH200", 989.4e12, 494.7e12, "NVIDIA GH200 Grace Hopper Superchip datasheet"),
    (r"H200 NVL", 835.5e12, 417.5e12, "NVIDIA H200 datasheet, H200 NVL column (sparse halved)"),
    (r"H200", 989.4e12, 494.7e12, "NVIDIA H200 datasheet, H200 SXM column (sparse halved)"),
    (r"H100 NVL", 835.5e12, 417.5e12, "NVIDIA H100 datasheet, H100 NVL column (sparse halved)"),
    (r"H100 PCIe", 756.5e12, 378e12, "NVIDIA H100 datasheet, H100 PCIe column (sparse halved)"),
    # "NVIDIA H100 80GB HBM3" (and "H100 SXM5 ...") is the SXM part
    (r"H100", 989.4e12, 494.7e12, "NVIDIA H100 datasheet, H100 SXM column (sparse halved)"),
    (r"H800 PCIe", 756.5e12, 378e12, "NVIDIA H800 PCIe: the H100 PCIe compute figures"),
    (r"H800", 989.4e12, 494.7e12, "NVIDIA H800 SXM: the H100 SXM compute figures"),
    (r"B200", 2250e12, 1125e12, "NVIDIA HGX B200 datasheet, per GPU (sparse halved)"),
    # "NVIDIA A100-SXM4-40GB", "NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe"
    (r"A100", 312e12, 156e12, "NVIDIA A100 datasheet (40 GB and 80 GB, SXM and PCIe alike)"),
    (r"A800", 312e12, 156e12, "NVIDIA A800: the A100 compute figures"),
    (r"L40S", 362.05e12, 183e12, "NVIDIA L40S datasheet"),
    (r"L40\b", 181.05e12, 90.5e12, "NVIDIA L40 datasheet"),
    (r"\bL4\b", 121e12, 60e12, "NVIDIA L4 datasheet (sparse halved)"),
    (r"A10G", 70e12, 35e12, "no NVIDIA datasheet for the AWS-only A10G; the commonly cited figure"),
    (r"\bA10\b", 125e12, 62.5e12, "NVIDIA A10 datasheet"),
    (r"\bA30\b", 165e12, 82e12, "NVIDIA A30 datasheet"),
    (r"\bA40\b", 149.7e12, 74.8e12, "NVIDIA A40 datasheet"),
    (r"RTX A6000", 154.8e12, 77.4e12, "NVIDIA RTX A6000 datasheet (sparse halved)"),
    (r"4090", 165.2e12, 82.6e12, "NVIDIA Ada GPU architecture whitepaper, RTX 4090 (FP32 accumulate)"),
    (r"3090", 71e12, 35.6e12, "NVIDIA Ampere GA102 whitepaper, RTX 3090 (FP32 accumulate)"),
    (r"V100", None, None, "Volta has neither bf16 nor TF32 tensor cores"),
    (r"\bT4\b", None, None, "Turing has neither bf16 nor TF32 tensor cores"),
]

# Kept for code that imported the old table from corpus.train.loop: (name fragment, dense bf16 FLOP/s).
PEAK_BF16_FLOPS = [(pattern, bf16) for pattern, bf16, _, _ in PEAK_FLOPS if bf16 is not None]


def lookup_peak(name: str, precision: str) -> tuple[float | None, str]:
    """(dense peak FLOP/s, source) for a device name as `torch.cuda.get_device_name` reports it.

    `precision` is the matmul precision: "bf16" (autocast) or "fp32"/"tf32" (fp32 tensors run as TF32 on
    tensor cores, which the loop enables). Unknown names give (None, "unknown device ...").
    """
    if precision not in ("bf16", "fp32", "tf32"):
        raise ValueError(f"unknown precision {precision!r}; bf16, fp32 or tf32")
    for pattern, bf16, tf32, source in PEAK_FLOPS:
        if re.search(pattern, name):
            return (bf16 if precision == "bf16" else tf32), source
    return None, f"unknown device {name!r}: pass peak_flops"


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The device's dense peak FLOP/s for MFU (None on CPU and for GPUs not in the table)."""
    import torch

    if device.type != "cuda":
        return None
    return lookup_peak(torch.cuda.get_device_name(device), precision)[0]


def model_flops(config: BertConfig, n_params: int, lengths: torch.Tensor) -> float:
    """Training FLOPs the model needs for sequences of these real `lengths` (the numerator of MFU)."""
    lengths = lengths.double()
    attention = 12 * config.num_hidden_layers * config.hidden_size * float((lengths**2).sum())
    return 6 * n_params * float(lengths.sum()) + attention


def hardware_flops(
    config: BertConfig, n_params: int, *, tokens: int, attention_square: float, head_rows: int,
    recomputed_fraction: float = 0.0,
) -> float:
    """Training FLOPs the device executes (the numerator of HFU).

    `tokens`: rows the encoder ran on (padded B x W, or the unpadded token budget); `attention_square`: the
    sum of len_q x len_k over the attention blocks computed (B x W^2 padded, sum of len^2 with varlen);
    `head_rows`: rows the MLM head (transform + vocabulary projection) ran on; `recomputed_fraction`: the
    share of the forward recomputed in the backward (activation checkpointing; 0 here).
    """
    encoder = 6 * n_params * tokens + 12 * config.num_hidden_layers * config.hidden_size * attention_square
    head = 6 * (config.hidden_size * config.hidden_size + config.hidden_size * config.vocab_size) * head_rows
    return (encoder + head) * (1 + recomputed_fraction / 3)  # a recomputed forward is a third of the work
