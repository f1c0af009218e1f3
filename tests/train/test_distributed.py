"""DDP from torchrun's environment: two CPU processes (gloo) train on different data to identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from transformers import AutoModelForPreTraining

SCRIPT = """
import json, sys
from corpus.train.pretrain import pretrain
corpus, out, results = sys.argv[1:4]
summary = pretrain(corpus, out, steps=4, seq_len=64, batch_size=4, vocab_size=256, log_every=2,
                   device="cpu", progress=False, grad_accum=2)
with open(f"{results}/rank{summary['rank']}.json", "w") as handle:
    json.dump(summary, handle)
"""


def test_two_processes_see_different_data_and_end_identical(prose_corpus: Path, tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    results = tmp_path / "results"
    results.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(script), str(prose_corpus), str(tmp_path / "model"), str(results)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    rank0, rank1 = (json.loads((results / f"rank{r}.json").read_text()) for r in (0, 1))
    assert rank0["world_size"] == rank1["world_size"] == 2
    assert rank0["data_fingerprint"] != rank1["data_fingerprint"]  # each rank trained on its own share
    assert rank0["weights_sha256"] == rank1["weights_sha256"]  # and gradients were averaged in step
    assert rank0["steps"] == 4 and rank0["final_loss"] == rank1["final_loss"]  # logged loss is all-reduced
    assert AutoModelForPreTraining.from_pretrained(tmp_path / "model").config.hidden_size == 128
