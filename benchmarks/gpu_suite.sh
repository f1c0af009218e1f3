#!/usr/bin/env bash
# The prepared GPU check of issue 16, in one command that fits in 8 minutes of device time (about 6 on an H100):
# BERT-base seq 128, global batch 256, ours (unpadded, compiled) vs the HF Trainer (bf16, SDPA) on the same model
# and generated web-like text: tokens/s, MFU, HFU, real-token fraction, data wait per step; then seq 512 (phase 2)
# throughput; then a learning check (about 2 minutes; the MLM loss must fall below 4.0).
# The last line printed is one JSON object (benchmarks/gpu_bench.py); with $OUT set it is also kept in
# $OUT/gpu_bench.json after every phase, so a run stopped by its time limit still leaves its results.
#
#   bash benchmarks/gpu_suite.sh                  # on the GPU machine (the device tool runs it in the repo root)
#   PYTHON=.venv/bin/python bash benchmarks/gpu_suite.sh --smoke   # tiny sizes on CPU, about a minute (the HF
#                                                                  # Trainer needs accelerate: pip install -e ".[bench]")
#   bash benchmarks/gpu_suite.sh --write-docs     # also write docs/benchmarks.md, section "GPU pretraining"
#
# Install: the device image has CUDA PyTorch, transformers, tokenizers and accelerate but no network, so corpus is
# installed without dependencies (or, if pip cannot, put on the path through a folder of links). On a machine
# with a package registry and no torch yet, the CUDA build pinned by the project is installed first.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

log() { echo "[gpu_suite] $*" >&2; }
start=$(date +%s)

if ! "$PY" -c "import torch" 2>/dev/null; then
    log "no torch: installing torch==2.13.0 (needs a package registry)"
    "$PY" -m pip install -q "torch==2.13.0" >&2
fi
if ! "$PY" -c "import corpus.train.unpadded" 2>/dev/null; then
    if ! "$PY" -m pip install -q --no-deps --no-build-isolation -e . >&2; then
        log "pip could not install corpus; putting it on the path through links"
        links=$(mktemp -d)/site
        mkdir -p "$links/corpus"
        for entry in corpus/*; do ln -s "$PWD/$entry" "$links/corpus/"; done
        for package in crawl curate train; do ln -s "$PWD/$package" "$links/corpus/$package"; done
        export PYTHONPATH="$links${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi
"$PY" - >&2 <<'EOF'
import torch, transformers
cuda = torch.cuda.is_available()
print(f"[gpu_suite] torch {torch.__version__}, transformers {transformers.__version__}, "
      f"{torch.cuda.get_device_name() if cuda else 'no GPU'}")
EOF
log "install took $(( $(date +%s) - start )) s"

# the Python side keeps its own deadline (450 s) and shortens the learning check to meet it; the timeout is a
# backstop so the device call always returns
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
timeout 500 "$PY" benchmarks/gpu_bench.py "$@"
