"""The `corpus` command line: thin typer commands over importable functions."""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from corpus.errors import CorpusError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Crawl, curate and train on web text.")
train_app = typer.Typer(no_args_is_help=True, help="Train a tokenizer and BERT, or fine-tune it.")
app.add_typer(train_app, name="train")
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def user_errors(fn: F) -> F:
    """Print user mistakes as one line and exit non-zero; Ctrl-C says how to resume."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CorpusError as err:
            console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("interrupted: no partial shard was published; run the same command again to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    table = Table(title=title)
    table.add_column("")
    table.add_column("", justify="right")
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)


@app.command()
@user_errors
def crawl(
    urls: Annotated[list[str] | None, typer.Argument(help="Seed URLs.")] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = Path("runs/crawl"),
    seeds_file: Annotated[Path | None, typer.Option("--seeds", help="File with one seed URL per line.")] = None,
    max_pages: Annotated[int, typer.Option(help="Stop after this many requests.")] = 100,
    depth: Annotated[int, typer.Option(help="Follow links at most this deep.")] = 3,
    fast: Annotated[bool, typer.Option("--fast", help="No throttling: only for your own servers.")] = False,
    ignore_robots: Annotated[bool, typer.Option("--ignore-robots", help="Do not obey robots.txt.")] = False,
    contact: Annotated[str | None, typer.Option(help="Contact URL for the User-Agent.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="parquet, jsonl or jsonl.gz")] = "parquet",
) -> None:
    """Crawl pages from seed URLs, extract their main text, write shards."""
    from crawl.runner import crawl as run_crawl

    seeds = list(urls or [])
    if seeds_file is not None:
        if not seeds_file.exists():
            raise CorpusError(f"{seeds_file}: seeds file does not exist")
        lines = (line.strip() for line in seeds_file.read_text().splitlines())
        seeds += [line for line in lines if line and not line.startswith("#")]
    stats = run_crawl(seeds, out, max_pages=max_pages, depth=depth, fast=fast, obey_robots=not ignore_robots,
                      contact=contact, output_format=output_format)
    print_table("crawl", [("pages fetched", stats.get("downloader/response_count", 0)),
                          ("documents written", stats.get("corpus/documents", 0)),
                          ("output", out / "data")])


@app.command()
@user_errors
def curate(
    input: Annotated[Path, typer.Argument(help="Folder of Parquet/JSONL(.gz) shards (or a run folder).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Pipeline YAML file.")] = None,
    preset: Annotated[str | None, typer.Option(help="A named pipeline (see --list-presets).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="STAGE_ID.PARAM=VALUE")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad record or stage error.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Delete OUT first instead of resuming.")] = False,
    plan: Annotated[bool, typer.Option("--plan", help="Print dedup memory/disk needs and S-curve.")] = False,
) -> None:
    """Run a curation pipeline over shards: kept shards, rejected shards with reasons, stats.json."""
    from corpus.config import load_config
    from corpus.executors import LocalExecutor

    pipeline = load_config(config, preset, overrides)
    if plan:
        from curate.dedup_plan import show_plan

        show_plan(pipeline, input, workers)
        return
    if overwrite and out.exists():
        shutil.rmtree(out)
    stats = LocalExecutor(workers=workers, strict=strict).run(pipeline, input, out)
    print_curate_summary(stats)


def print_curate_summary(stats: dict[str, Any]) -> None:
    table = Table(title=f"curate: {stats['documents_in']} in, {stats['documents_kept']} kept")
    for column in ("stage", "in", "kept", "removed (by reason)", "seconds"):
        table.add_column(column, justify="left" if column.startswith(("stage", "removed")) else "right")
    for job in stats["jobs"]:
        for stage in job["stages"]:
            c = stage["counters"]
            reasons = ", ".join(f"{k[8:]}: {int(v)}" for k, v in c.items() if k.startswith("dropped/"))
            table.add_row(stage["id"], str(int(c.get("in", 0))), str(int(c.get("kept", 0))), reasons,
                          f"{c.get('seconds', 0):.2f}")
    Console().print(table)
    if stats.get("malformed"):
        console.print(f"[yellow]{stats['malformed']} malformed input record(s) quarantined[/yellow] "
                      f"under {stats['output']}/quarantine/, e.g. {stats['quarantined'][0]}")
    if stats.get("errors"):
        console.print(f"[yellow]{stats['errors']} stage error(s)[/yellow] recorded under {stats['output']}/errors/")
    if stats.get("audit"):
        from curate.audit import print_audit

        print_audit(stats["audit"])


@train_app.command("pretrain")
@user_errors
def pretrain(
    data: Annotated[Path, typer.Option(help="Curated shards (a folder, or a curate output folder).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Model output folder.")],
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 200,
    preset: Annotated[str, typer.Option(help="Model size: tiny, mini, small, medium, base, large.")] = "tiny",
    objective: Annotated[str, typer.Option(help="mlm+nsp (original BERT) or mlm.")] = "mlm+nsp",
    seq_len: Annotated[int, typer.Option(help="Sequence length.")] = 128,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 16,
    vocab_size: Annotated[int, typer.Option(help="WordPiece vocabulary size.")] = 8000,
    tokenizer: Annotated[Path | None, typer.Option(help="Use this tokenizer folder instead of training one.")] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 5e-4,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train a WordPiece tokenizer and pretrain BERT (masked LM + next-sentence prediction)."""
    from train.pretrain import pretrain as run_pretrain

    summary = run_pretrain(data, out, steps=steps, preset=preset, objective=objective, seq_len=seq_len,
                           batch_size=batch_size, vocab_size=vocab_size, tokenizer=tokenizer, lr=lr,
                           device=device, seed=seed)
    print_table("pretrain", list(summary.items()))


@train_app.command("classifier")
@user_errors
def train_classifier_command(
    data: Annotated[Path, typer.Option(help="Labelled JSONL(.gz)/Parquet: one record per text, with a label.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Model file to write (fastText .bin).")],
    valid: Annotated[Path | None, typer.Option(help="Held-out file (default: a share of --data).")] = None,
    valid_fraction: Annotated[float, typer.Option(help="Share of --data held out when no --valid.")] = 0.1,
    text_field: Annotated[str, typer.Option(help="Field with the text.")] = "text",
    label_field: Annotated[str, typer.Option(help="Field with the label.")] = "label",
    epoch: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 0.2,
    word_ngrams: Annotated[int, typer.Option(help="Word n-gram length.")] = 2,
    dim: Annotated[int, typer.Option(help="Embedding size.")] = 50,
    bucket: Annotated[int, typer.Option(help="Hash buckets for word n-grams (model size: bucket x dim).")] = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed (held-out split and training).")] = 0,
) -> None:
    """Train a fastText classifier (e.g. toxic vs clean) and print its held-out precision and recall."""
    from curate.classifier import train_classifier

    result = train_classifier(data, out, valid=valid, valid_fraction=valid_fraction, text_field=text_field,
                              label_field=label_field, epoch=epoch, lr=lr, word_ngrams=word_ngrams, dim=dim,
                              bucket=bucket, seed=seed)
    table = Table(title=f"held-out results ({result['valid_records']} records; trained on {result['train_records']})")
    for column in ("label", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for label, m in result["held_out"].items():
        if "precision" in m:
            table.add_row(label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
    Console().print(table)
    print_table("classifier", [("labels", result["labels"]), ("model", result["model"])])


@app.command()
@user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (crawl and/or curate outputs).")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output folder (default RUN_DIR/report).")] = None,
) -> None:
    """Write report.html and datasheet.md from a run's statistics and samples."""
    from corpus.report import build_report

    paths = build_report(run_dir, out)
    print_table("report", [(k, v) for k, v in paths.items()])


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("-o", "--out", help="Run folder.")] = Path("runs/demo"),
    steps: Annotated[int, typer.Option(help="Pretraining steps.")] = 60,
) -> None:
    """Serve the bundled sample site on 127.0.0.1, crawl, curate, pretrain a tiny BERT, write the report."""
    from corpus.demo import run_demo

    run_demo(out, steps=steps)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
