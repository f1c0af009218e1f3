"""Curation ablation: what curation buys, measured downstream (`corpus ablate`).

The same small BERT is pretrained for the same budget (steps x batch x sequence length, same seed) on the
curated corpus and on the raw crawl of the same source, each with its own tokenizer as a user would run it;
both are fine-tuned on the same suite of tasks with the same settings, and optionally the same architecture
from random weights shows what pretraining buys at all. Results: a table and `OUT/ablation.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corpus.core.io import atomic_write_json
from corpus.train.evaluate import COLUMNS, load_suite, run_suite

# What an ablation writes in OUT (`corpus ablate --overwrite` removes these and nothing else).
ABLATE_WRITES = ("curated", "raw", "random", "ablation.json")


def ablate(curated: str | Path, raw: str | Path, suite: str | Path, out: str | Path, *, steps: int = 300,
           preset: str = "mini", seq_len: int = 128, batch_size: int = 32, vocab_size: int = 8000,
           random_baseline: bool = True, data_root: str | Path | None = None, only: list[str] | None = None,
           pretrain_options: dict[str, Any] | None = None, finetune_options: dict[str, Any] | None = None,
           device: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Both pretraining runs, the suite on each, and the deltas; OUT's subfolders belong to the ablation, so a
    model an earlier (stopped) ablation left there is replaced, and its token store reused when unchanged."""
    from corpus.train.pretrain import pretrain

    out = Path(out)
    spec = load_suite(suite, data_root)
    tuning = {"device": device, "progress": progress, **(finetune_options or {})}
    corpora: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    for name, data in (("curated", curated), ("raw", raw)):
        model_dir = out / name / "pretrained"
        summary = pretrain(data, model_dir, steps=steps, preset=preset, seq_len=seq_len, batch_size=batch_size,
                           vocab_size=vocab_size, device=device, progress=progress,
                           **{"overwrite": True, **(pretrain_options or {})})
        corpora[name] = {"data": str(data), "documents": summary["documents"], "tokens_seen": summary["tokens"],
                         "pretrain_seconds": summary["seconds"], "final_loss": summary["final_loss"],
                         **{k: summary[k] for k in ("eval_mlm_acc", "eval_mlm_loss") if k in summary}}
        rows += [{"model": name, **r} for r in run_suite(model_dir, spec, out / name / "tasks", only, **tuning)]
    if random_baseline:
        model_dir = out / "curated" / "pretrained"
        rows += [{"model": "random-init", **r}
                 for r in run_suite(model_dir, spec, out / "random" / "tasks", only, init="random", **tuning)]
    deltas = {}
    for task in spec["tasks"]:
        by_model = {r["model"]: r for r in rows if r["task"] == task}
        if "curated" in by_model and "raw" in by_model:
            deltas[task] = {c: round(by_model["curated"][c] - by_model["raw"][c], 4)
                            for c in COLUMNS if c in by_model["curated"]}
    result = {"suite": spec["name"], "budget": {"steps": steps, "batch_size": batch_size, "seq_len": seq_len,
                                                "preset": preset},
              "corpora": corpora, "rows": rows, "curated_minus_raw": deltas}
    atomic_write_json(out / "ablation.json", result)
    return result
