"""The `corpus` command line: thin typer commands over importable functions."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from corpus.core.errors import CorpusError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Crawl, curate and train on web text.",
                  epilog="Every command: corpus COMMAND --help (with an example). All of them: docs/cli.md.")
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
            from rich.markup import escape  # a message may hold [brackets]: a list, a URL pattern, a path

            console.print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("interrupted: no partial shard was published; run the same command again to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _print_version(value: bool) -> None:
    if value:
        from corpus import __version__

        print(f"corpus {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Crawl, curate and train on web text."""


def example(*lines: str) -> str:
    """A command's help epilog: its examples, one per line."""
    return "Examples:\n\n" + "\n\n".join(f"  $ {line}" for line in lines)


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    table = Table(title=title)
    table.add_column("")
    table.add_column("", justify="right")
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)


@app.command(epilog=example("corpus crawl https://example.org/ -o runs/site/crawl --max-pages 500 --depth 3",
                            "corpus crawl --seeds seeds.txt -o runs/site/crawl --contact https://my-lab.example/crawler",
                            "corpus crawl --from-warc 'archives/*.warc.gz' -o runs/cc/crawl"))
@user_errors
def crawl(
    urls: Annotated[list[str] | None, typer.Argument(help="Seed URLs.")] = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder (re-running resumes).")] = Path("runs/crawl"),
    seeds_file: Annotated[Path | None, typer.Option("--seeds", help="File with one seed URL per line.")] = None,
    from_warc: Annotated[list[str] | None, typer.Option(
        "--from-warc", help="Ingest WARC/WET files (path, glob or folder; repeatable) instead of crawling.")] = None,
    max_pages: Annotated[int, typer.Option(min=0, help="Page requests at most (0: no limit).")] = 100,
    depth: Annotated[int, typer.Option(min=0, help="Follow links at most this deep (seeds and sitemap pages: 0).")]
    = 3,
    domain: Annotated[list[str] | None, typer.Option(
        "--domain", help="Allowed domain, subdomains included (default: the seeds' hosts).")] = None,
    allow: Annotated[list[str] | None, typer.Option(help="Follow only URLs matching this regex.")] = None,
    deny: Annotated[list[str] | None, typer.Option(help="Never follow URLs matching this regex.")] = None,
    sitemaps: Annotated[bool, typer.Option(help="Discover pages from robots.txt Sitemap: lines and /sitemap.xml.")]
    = True,
    fast: Annotated[bool, typer.Option("--fast", help="No throttling: only for your own servers.")] = False,
    ignore_robots: Annotated[bool, typer.Option("--ignore-robots", help="Do not obey robots.txt.")] = False,
    contact: Annotated[str | None, typer.Option(help="Contact URL for the User-Agent.")] = None,
    delay: Annotated[float | None, typer.Option(min=0.0, help="Seconds between requests to one domain (default 1).")]
    = None,
    per_domain: Annotated[int | None, typer.Option(min=1, help="Concurrent requests per domain (default 2).")]
    = None,
    max_size: Annotated[str | None, typer.Option(help="Largest response (after gzip), e.g. 5M.")] = None,
    favor: Annotated[str, typer.Option(help="Extraction: precision, balanced or recall.")] = "precision",
    extract: Annotated[bool, typer.Option(help="Extract text now (--no-extract: keep raw HTML only).")] = True,
    store_html: Annotated[bool, typer.Option("--store-html", help="Keep each page's HTML in metadata.html.")]
    = False,
    extract_timeout: Annotated[float | None, typer.Option(min=0.001, help="Seconds per page before extraction "
                                                          "gives up.")] = None,
    extract_workers: Annotated[int | None, typer.Option(min=0, help="Extraction processes (0: in the crawler).")]
    = None,
    workers: Annotated[int | None, typer.Option(min=1, help="--from-warc: files read in parallel.")] = None,
    warc_out: Annotated[Path | None, typer.Option(help="Also write every response to WARC files here.")] = None,
    warc_max_size: Annotated[str | None, typer.Option(help="Rotate WARC files at this size, e.g. 1G.")] = None,
    job_dir: Annotated[Path | None, typer.Option(help="Resume state (default OUT/_job).")] = None,
    redis_url: Annotated[str | None, typer.Option(help="Share one frontier with other crawlers via Redis.")] = None,
    redis_key: Annotated[str, typer.Option(help="Name of the shared crawl in Redis.")] = "corpus",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start again: remove what an earlier crawl wrote in "
                                            "OUT (nothing else) instead of resuming.")] = False,
    setting: Annotated[list[str] | None, typer.Option("--set", "--setting", "-s",
                                                      help="Scrapy setting KEY=VALUE (repeatable).")] = None,
    output_format: Annotated[str, typer.Option("--output-format",
                                               help="Shard format: parquet, jsonl or jsonl.gz.")] = "parquet",
) -> None:
    """Crawl pages from seed URLs (or read web archives), extract their main text, write shards."""
    from corpus.crawl.command import run

    run(list(urls or []), out, seeds_file=seeds_file, from_warc=from_warc, workers=workers, max_size=max_size,
        warc_max_size=warc_max_size, setting=setting, max_pages=max_pages or None, depth=depth,
        allowed_domains=domain, allow=allow, deny=deny, sitemaps=sitemaps, fast=fast,
        obey_robots=not ignore_robots, contact=contact, delay=delay, per_domain=per_domain, favor=favor,
        extract=extract, store_html=store_html,
        extract_timeout=extract_timeout, extract_workers=extract_workers, warc_out=warc_out, job_dir=job_dir,
        redis_url=redis_url, redis_key=redis_key, overwrite=overwrite, output_format=output_format)


def _print_presets(value: bool) -> None:
    if not value:
        return
    from corpus.core.config import presets, read_yaml

    table = Table(title="presets (corpus curate IN -o OUT --preset NAME)")
    table.add_column("name")
    table.add_column("description")
    for name, path in presets().items():
        table.add_row(name, str(read_yaml(path).get("description", "")))
    Console().print(table)
    raise typer.Exit(0)


@app.command(epilog=example("corpus curate runs/site/crawl -o runs/site/curated",
                            "corpus curate IN -o OUT -c configs/example.yaml --set lang.threshold=0.8 --workers 4",
                            "corpus curate my_jsonl/ -o OUT --text-field content --dry-run"))
@user_errors
def curate(
    input: Annotated[Path, typer.Argument(help="Folder of Parquet/JSONL(.gz) shards (or a run folder).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Pipeline YAML file.")] = None,
    preset: Annotated[str | None, typer.Option(help="A named pipeline (see --list-presets).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="STAGE_ID.PARAM=VALUE")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes (default: all cores).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad record or stage error.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start again: remove what an earlier curate run "
                                            "wrote in OUT (nothing else) instead of resuming.")] = False,
    max_error_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Exit non-zero when more than this share "
                                                   "of records is unreadable or errors.")] = 0.1,
    plan: Annotated[bool, typer.Option("--plan", help="Print dedup memory/disk needs and S-curve.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be removed, with samples "
                                          "per reason; write no shards.")] = False,
    samples: Annotated[int, typer.Option(min=0, help="Dry run: rejected documents shown per reason.")] = 3,
    limit: Annotated[int | None, typer.Option(min=1, help="Read at most N documents per input shard.")] = None,
    executor: Annotated[str, typer.Option(help="local (worker processes) or ray (Ray tasks; see docs/scaling.md).")]
    = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster to run on (HOST:PORT of its head, or ray://...); "
                                                "default: start a local Ray.")] = None,
    list_presets: Annotated[bool, typer.Option("--list-presets", is_eager=True, callback=_print_presets,
                                               help="List the named pipelines and exit.")] = False,
    text_field: Annotated[str, typer.Option(help="Input field (or column) holding the text.")] = "text",
    id_field: Annotated[str, typer.Option(help="Input field (or column) holding the id.")] = "id",
) -> None:
    """Run a curation pipeline over shards: kept shards, rejected shards with reasons, stats.json.

    Resumable: run the same command again after a crash or Ctrl-C and finished shards are not redone.
    """
    from corpus.core.config import load_config
    from corpus.core.executors import LocalExecutor

    if executor not in ("local", "ray"):
        raise CorpusError(f"--executor must be local or ray, not {executor!r}")
    if address and executor != "ray":
        raise CorpusError("--address needs --executor ray")
    pipeline = load_config(config, preset, overrides)
    fields = {k: v for k, v in (("text", text_field), ("id", id_field)) if v and v != k} or None
    if plan:
        from corpus.curate.dedup_plan import show_plan

        show_plan(pipeline, input, workers)
        return
    if dry_run:  # a dry run's scratch folder is local, so it runs here whatever --executor says
        stats = LocalExecutor(workers=workers, strict=strict).run(pipeline, input, out, dry_run=True,
                                                                   samples=samples, limit=limit, fields=fields)
        print_curate_summary(stats)
        print_dry_run_samples(stats)
        from corpus.core.io import atomic_write_json
        from corpus.core.runs import claim_output

        claim_output(out, "curate", inputs=[input], writes=("dry_run.json",)).finish(dry_run=True)
        atomic_write_json(out / "dry_run.json", stats)
        console.print(f"dry run: no shards written; report in {out / 'dry_run.json'}")
        return
    options = {"limit": limit, "overwrite": overwrite, "max_error_share": max_error_share, "fields": fields}
    if executor == "ray":
        from corpus.core.ray_executor import RayExecutor

        stats = RayExecutor(address, workers=workers, strict=strict).run(pipeline, input, out, **options)
    else:
        stats = LocalExecutor(workers=workers, strict=strict).run(pipeline, input, out, **options)
    print_curate_summary(stats)
    if stats.get("failed"):
        raise CorpusError(f"{out}: {stats['failed']}")


def print_curate_summary(stats: dict[str, Any]) -> None:
    from rich.markup import escape

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
    where = "" if stats.get("dry_run") else f" under {stats['output']}/quarantine/"
    if stats.get("malformed") or stats.get("empty_files"):
        files = stats.get("quarantined_per_file", {})
        listed = ", ".join(f"{name} ({n})" for name, n in list(files.items())[:5])
        more = f" and {len(files) - 5} more file(s)" if len(files) > 5 else ""
        console.print(f"[yellow]{stats.get('malformed', 0)} malformed record(s), {stats.get('empty_files', 0)} "
                      f"empty file(s) quarantined[/yellow]{escape(where)}: {escape(listed)}{more}; first: "
                      f"{escape(stats['quarantined'][0])}", highlight=False, soft_wrap=True)
    if stats.get("errors"):
        where = "" if stats.get("dry_run") else f" recorded under {stats['output']}/errors/"
        console.print(f"[yellow]{stats['errors']} stage error(s)[/yellow]{escape(where)}")
    if stats.get("audit"):
        from corpus.curate.audit import print_audit

        print_audit(stats["audit"])


def print_dry_run_samples(stats: dict[str, Any]) -> None:
    """A few rejected documents per stage and reason, with the signals that decided."""
    for key, docs in stats.get("samples", {}).items():
        table = Table(title=f"would remove: {key}", show_lines=True)
        table.add_column("id")
        table.add_column("text", overflow="fold", max_width=80)
        table.add_column("signals", overflow="fold", max_width=40)
        reason = key.split("/", 1)[-1]
        family = "rep_" if reason.startswith("gopher_rep") else reason.split("_", 1)[0] + "_"
        for doc in docs:
            meta = doc["metadata"]
            signals = {k: meta[k] for k in ("language", "language_score") if k in meta}
            # The signals of the rule family that removed it first (they decided), then the latest others.
            measured = meta.get("signals", {})
            signals.update({k: v for k, v in measured.items() if k.startswith(family)})
            signals.update(dict(list(measured.items())[-3:]))
            shown = ", ".join(f"{k}={v}" for k, v in list(signals.items())[:8])
            table.add_row(doc["id"], doc["text"][:300], shown)
        Console().print(table)


@train_app.command("tokenize")
@user_errors
def tokenize(
    data: Annotated[Path, typer.Option(help="Curated shards (a folder, or a curate output folder).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Token store folder.")],
    tokenizer: Annotated[Path | None, typer.Option(help="Use this tokenizer folder instead of training one.")] = None,
    vocab_size: Annotated[int, typer.Option(min=64, help="WordPiece vocabulary size (a trained tokenizer).")] = 8000,
    sample_docs: Annotated[int, typer.Option(min=1, help="Documents the tokenizer is trained on (a seeded sample).")
                           ] = 1_000_000,
    sample_bytes: Annotated[int, typer.Option(min=1, help="...or this many characters, whichever comes first.")
                            ] = 1_000_000_000,
    eval_fraction: Annotated[float, typer.Option(min=0.0, max=0.99, help="Documents held out for evaluation.")
                             ] = 0.05,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split and the tokenizer's sample.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Processes tokenising shards in parallel.")] = 1,
    executor: Annotated[str, typer.Option(help="local (a process pool) or ray.")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --executor ray).")] = None,
) -> None:
    """Tokenise curated shards once into a token store that pretraining streams from.

    Example: corpus train tokenize --data runs/site/curated -o runs/site/tokens --vocab-size 30522 --workers 8
    """
    from corpus.train.tokens import StoreSettings, build_token_store

    if executor not in ("local", "ray"):
        raise CorpusError(f"--executor {executor}: choose local or ray")
    runner: Any = None
    if executor == "ray":
        from corpus.core.ray_executor import RayExecutor

        runner = RayExecutor(address=address, workers=workers)
    manifest = build_token_store(data, out, tokenizer=tokenizer, vocab_size=vocab_size, sample_docs=sample_docs,
                                 sample_bytes=sample_bytes, settings=StoreSettings(eval_fraction=eval_fraction,
                                                                                   seed=seed),
                                 executor=runner, workers=workers)
    train, held_out = manifest["splits"]["train"], manifest["splits"]["eval"]
    print_table("token store", [
        ("folder", out), ("documents in", manifest["documents_in"]), ("train documents", train["documents"]),
        ("train tokens", train["tokens"]), ("eval documents", held_out["documents"]),
        ("vocabulary", manifest["vocab_size"]), ("ids", manifest["dtype"]),
        ("empty / malformed", f"{manifest['empty']} / {manifest['malformed']}"),
    ])


@train_app.command("pretrain")
@user_errors
def pretrain(
    data: Annotated[Path, typer.Option(help="Curated shards (tokenised first into OUT/tokens), or a token store.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Model output folder.")],
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 200,
    preset: Annotated[str, typer.Option(help="Model size: tiny, mini, small, medium, base, large, or a "
                                             "BertConfig JSON file.")] = "tiny",
    objective: Annotated[str, typer.Option(help="mlm+nsp (original BERT) or mlm.")] = "mlm+nsp",
    seq_len: Annotated[int, typer.Option(help="Sequence length.")] = 128,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 16,
    vocab_size: Annotated[int, typer.Option(help="WordPiece vocabulary size.")] = 8000,
    tokenizer: Annotated[Path | None, typer.Option(help="Use this tokenizer folder instead of training one.")] = None,
    init_from: Annotated[Path | None, typer.Option(
        help="Continue from this saved model (BERT's phase 2: seq 512 from seq 128 weights); new optimizer "
             "and schedule.")] = None,
    tokens: Annotated[Path | None, typer.Option(help="Where to build the token store (default OUT/tokens).")] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 5e-4,
    warmup_steps: Annotated[int | None, typer.Option(help="Warmup steps (default 10% of the steps).")] = None,
    schedule: Annotated[str, typer.Option(help="linear, cosine or constant after warmup.")] = "linear",
    dropout: Annotated[float, typer.Option(help="Hidden and attention dropout.")] = 0.1,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per optimizer step.")] = 1,
    loader_workers: Annotated[int | None, typer.Option(help="DataLoader workers (default 0 on CPU, 4 on GPU).")
                              ] = None,
    workers: Annotated[int, typer.Option(help="Processes tokenising the corpus (when DATA is curated shards).")
                       ] = 1,
    log_every: Annotated[int, typer.Option(help="Log every N steps (log.jsonl, progress bar).")] = 10,
    eval_every: Annotated[int, typer.Option(help="Evaluate on the held-out split every N steps (0: at the end).")
                          ] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps (0: none).")] = 0,
    keep_checkpoints: Annotated[int, typer.Option(help="Checkpoints kept (older ones are removed).")] = 2,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also log to OUT/tensorboard.")] = False,
    compile: Annotated[bool | None, typer.Option("--compile/--no-compile",
                                                 help="torch.compile the model (default: on CUDA).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in OUT.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the model in OUT (only files "
                                                                "pretraining writes are removed).")] = False,
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch (1 is fastest on a busy machine).")] = None,
    precision: Annotated[str, typer.Option(
        help="auto (bf16 on GPU, fp32 on CPU), bf16 (also ~1.6x faster on CPUs with AVX-512 BF16 or AMX) or fp32."
    )] = "auto",
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", help="Any other setting as KEY=VALUE (e.g. --set min_lr_ratio=0.1 --set data_streams=8); "
                      "see docs/train.md.")] = None,
) -> None:
    """Tokenise the corpus into a token store (once), then pretrain BERT (masked LM + next-sentence prediction).

    Example: corpus train pretrain --data runs/site/curated -o runs/site/model --preset mini --steps 2000
    """
    from corpus.train.pretrain import parse_overrides
    from corpus.train.pretrain import pretrain as run_pretrain

    options: dict[str, Any] = {
        "grad_accum": grad_accum, "resume": resume, "overwrite": overwrite, "precision": precision,
        "init_from": init_from, "tokens": tokens, "schedule": schedule, "dropout": dropout, "log_every": log_every,
        "eval_every": eval_every, "checkpoint_every": checkpoint_every, "keep_checkpoints": keep_checkpoints,
        "tensorboard": tensorboard, "compile": compile, "loader_workers": loader_workers,
        "tokenize_workers": workers, "threads": threads,
    }
    options.update(parse_overrides(overrides or []))
    summary = run_pretrain(data, out, steps=steps, preset=preset, objective=objective, seq_len=seq_len,
                           batch_size=batch_size, vocab_size=vocab_size, tokenizer=tokenizer, lr=lr,
                           warmup_steps=warmup_steps, device=device, seed=seed, **options)
    print_table("pretrain", list(summary.items()))


@train_app.command("classifier", epilog=example(
    "corpus train classifier --data labelled.jsonl -o toxic.bin --epochs 10 --text-field comment"))
@user_errors
def train_classifier_command(
    data: Annotated[Path, typer.Option(help="Labelled JSONL(.gz)/Parquet: one record per text, with a label.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Model file to write (fastText .bin).")],
    valid: Annotated[Path | None, typer.Option(help="Held-out file (default: a share of --data).")] = None,
    valid_fraction: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of --data held out when no "
                                                  "--valid.")] = 0.1,
    text_field: Annotated[str, typer.Option(help="Field with the text.")] = "text",
    label_field: Annotated[str, typer.Option(help="Field with the label.")] = "label",
    epoch: Annotated[int, typer.Option("--epochs", "--epoch", min=1, help="Training epochs.")] = 10,
    lr: Annotated[float, typer.Option(min=0.0, help="Learning rate.")] = 0.2,
    word_ngrams: Annotated[int, typer.Option(min=1, help="Word n-gram length.")] = 2,
    dim: Annotated[int, typer.Option(min=1, help="Embedding size.")] = 50,
    bucket: Annotated[int, typer.Option(min=0, help="Hash buckets for word n-grams (model size: bucket x dim).")]
    = 200_000,
    seed: Annotated[int, typer.Option(help="Random seed (held-out split and training).")] = 0,
) -> None:
    """Train a fastText classifier (e.g. toxic vs clean) and print its held-out precision and recall."""
    from corpus.core.runs import check_separate
    from corpus.curate.classifier import train_classifier

    check_separate(out, [data, valid])
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


def _parse_sets(items: list[str] | None) -> dict[str, Any]:
    """`--set key=value` fine-tuning overrides; values are read as YAML 1.2 (numbers, true/false, lists) and checked
    against the fine-tuning options' types and ranges before any work."""
    import yaml

    from corpus.core.config import check_options, parse_value
    from corpus.train.finetune import FinetuneConfig

    values: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CorpusError(f"--set {item!r}: expected KEY=VALUE, e.g. --set epochs=2")
        try:
            values[key.strip()] = parse_value(value) if value.strip() else None
        except yaml.YAMLError as err:
            raise CorpusError(f"--set {item!r}: value is not valid YAML ({err})") from None
    return check_options(FinetuneConfig, values, "--set") if values else values


def print_metrics(title: str, metrics: dict[str, Any]) -> None:
    """Headline metrics, then one row per label (classify) or entity type (ner)."""
    headline = [(k, f"{metrics[k]:.4f}") for k in ("accuracy", "macro_f1", "f1", "precision", "recall")
                if k in metrics]
    print_table(title, [*headline, ("examples", metrics.get("examples", ""))])
    per = metrics.get("per_label") or metrics.get("per_type") or {}
    if per:
        table = Table(title=f"{title.split(' (')[0]}: per {'label' if 'per_label' in metrics else 'entity type'}")
        for column in ("", "precision", "recall", "F1", "support"):
            table.add_column(column, justify="left" if not column else "right")
        for name, m in per.items():
            table.add_row(name, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}", str(m["support"]))
        Console().print(table)


# What `corpus train finetune` writes in its output folder: the only names its --overwrite may remove.
FINETUNE_WRITES = ("config.json", "model.safetensors", "pytorch_model.bin", "generation_config.json", "tokenizer.json",
                   "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "metrics.json",
                   "finetune_config.json", "checkpoints", "log.jsonl", "tensorboard", "train_summary.json")


@train_app.command("finetune", epilog=example(
    "corpus train finetune --model runs/site/model --task classify --train train.jsonl --eval dev.jsonl -o runs/clf",
    "corpus train finetune --model runs/site/model --task ner --train train.conll -o runs/ner --set warmup_ratio=0.06"))
@user_errors
def finetune_command(
    model: Annotated[Path, typer.Option(help="Pretrained model folder (ours or a local Hugging Face BERT-family).")],
    train: Annotated[Path, typer.Option(help="Training file: JSONL/Parquet/CSV (classify), CoNLL or JSONL (ner).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder for the fine-tuned model.")],
    task: Annotated[str, typer.Option(help="classify or ner.")] = "classify",
    eval_file: Annotated[Path | None, typer.Option("--eval", help="Evaluation file: picks the best epoch "
                                                   "(default: 10% of --train held out).")] = None,
    test: Annotated[Path | None, typer.Option(help="Test file: scored once with the chosen model.")] = None,
    epochs: Annotated[float, typer.Option(min=0.001, help="Passes over the training data.")] = 3.0,
    steps: Annotated[int | None, typer.Option(min=1, help="Optimizer steps (overrides --epochs).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per step.")] = 32,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (linear warmup and decay).")] = 5e-5,
    max_length: Annotated[int, typer.Option(min=8, help="Tokens per example (longer ones are cut).")] = 128,
    class_weights: Annotated[str | None, typer.Option(help="balanced, or LABEL=WEIGHT,... (classify).")] = None,
    tune_threshold: Annotated[bool, typer.Option("--tune-threshold", help="Binary classify: pick the decision "
                                                 "threshold on the eval split; predict and scorers use it.")] = False,
    patience: Annotated[int, typer.Option(min=0, help="Stop after this many evaluations without improvement "
                                          "(0: never).")] = 2,
    metric: Annotated[str | None, typer.Option(help="Early-stopping metric: macro_f1 or accuracy (classify), "
                                               "f1 or accuracy (ner).")] = None,
    max_train_examples: Annotated[int | None, typer.Option(min=1, help="Train on a random sample of this size.")]
    = None,
    random_init: Annotated[bool, typer.Option("--random-init", help="Same architecture, random weights "
                                              "(a baseline).")] = False,
    text_field: Annotated[str | None, typer.Option(help="Field with the text (ner: the word list).")] = None,
    label_field: Annotated[str | None, typer.Option(help="Field with the label (ner: the tag list).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto (bf16 on GPU), bf16 or fp32.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Any other fine-tuning option KEY=VALUE "
                                                        "(warmup_ratio, weight_decay, dropout, ...).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the fine-tuned model in OUT (only files "
                                            "fine-tuning writes are removed).")] = False,
) -> None:
    """Fine-tune a model for text classification or NER with the pretraining loop; writes OUT/metrics.json."""
    from corpus.train.finetune import finetune

    options = dict(task=task, eval=str(eval_file) if eval_file else None, test=str(test) if test else None,
                   epochs=epochs, steps=steps, batch_size=batch_size, lr=lr, max_length=max_length,
                   class_weights=class_weights, tune_threshold=tune_threshold, patience=patience, metric=metric,
                   max_train_examples=max_train_examples, init="random" if random_init else "pretrained",
                   text_field=text_field, label_field=label_field, device=device, precision=precision, seed=seed)
    options.update(_parse_sets(overrides))  # --set KEY=VALUE wins over the flag of the same name
    from corpus.core.runs import check_output, claim_output, refuse_finished

    refuse_finished(out, "finetune", "a fine-tuned model", overwrite)
    check_output(out, "finetune", inputs=[model, train, eval_file, test])
    claimed: list[Any] = []

    def claim() -> None:  # once data and options were checked: a mistake never costs the existing model
        claimed.append(claim_output(out, "finetune", inputs=[model, train, eval_file, test], overwrite=overwrite,
                                    writes=FINETUNE_WRITES))

    try:
        summary = finetune(model, train, out, before_writing=claim, **options)
    except BaseException as err:
        if claimed:
            claimed[0].fail(f"{type(err).__name__}: {err}"[:300])
        raise
    claimed[0].finish(best_step=summary["best_step"])
    print_metrics(f"eval (best step {summary['best_step']} of {summary['steps']})", summary["eval"])
    if summary["threshold"]:
        rule = summary["threshold"]
        console.print(f"decision threshold: {rule['label']} when its probability >= {rule['probability']:.2f} "
                      f"(eval {rule['metric']} {rule['argmax_score']:.4f} with argmax -> {rule['tuned_score']:.4f})")
    if summary["test"]:
        print_metrics("test", summary["test"])
    console.print(f"eval: {summary['eval_file']}" + (f"; test: {summary['test_file']}" if summary["test"] else "")
                  + f"; model and metrics.json in {summary['model_path']}", highlight=False, soft_wrap=True)


@app.command(epilog=example("corpus predict data.jsonl --model runs/clf -o runs/clf/predictions.jsonl",
                            "corpus predict comments.parquet --model runs/clf --text-field body > labelled.jsonl"))
@user_errors
def predict(
    data: Annotated[Path, typer.Argument(help="JSONL/Parquet/CSV of texts (classify) or CoNLL/JSONL words (ner).")],
    model: Annotated[Path, typer.Option(help="A fine-tuned model folder.")],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output JSONL (default: stdout).")] = None,
    text_field: Annotated[str | None, typer.Option(help="Field with the text (ner: the word list).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Examples per forward pass.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Label every record with a fine-tuned model: each input record plus its prediction and probabilities."""
    from corpus.train.predict import predict_file

    summary = predict_file(model, data, out, text_field=text_field, batch_size=batch_size, device=device)
    table = Table(title=f"predict: {summary['records']} records, {summary['records_per_s']}/s -> {summary['output']}")
    table.add_column("entity type" if summary["task"] == "ner" else "label")
    table.add_column("count", justify="right")
    for label, count in summary["counts"].items():
        table.add_row(label, str(count))
    console.print(table)


@app.command("eval", epilog=example("corpus eval --model runs/site/model --suite my_suite.yaml -o runs/eval",
                                    "corpus eval --model runs/site/model --suite shared --data-root ~/data/shared "
                                    "--set epochs=2"))
@user_errors
def eval_command(
    model: Annotated[Path, typer.Option(help="Model folder: pretrained (fine-tuned per task) or fine-tuned.")],
    suite: Annotated[str, typer.Option(help="Suite YAML file or built-in name (e.g. shared).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Where fine-tuned copies and results go.")]
    = Path("runs/eval"),
    data_root: Annotated[Path | None, typer.Option(help="Folder the suite's data paths are relative to.")] = None,
    only: Annotated[list[str] | None, typer.Option("--task", help="Run only this task (repeatable).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Fine-tuning option KEY=VALUE.")] = None,
    random_init: Annotated[bool, typer.Option("--random-init", help="Fine-tune from random weights.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier evaluation's results in OUT "
                                            "(only what eval writes is removed).")] = False,
) -> None:
    """Run a suite of tasks on one model and print one table (results also in OUT/results.json)."""
    from corpus.core.io import atomic_write_json
    from corpus.core.runs import check_output, claim_output, refuse_finished
    from corpus.train.evaluate import load_suite, print_rows, run_suite

    spec = load_suite(suite, data_root)
    options = _parse_sets(overrides)
    if random_init:
        options["init"] = "random"
    refuse_finished(out, "eval", "an evaluation's results", overwrite)
    check_output(out, "eval", inputs=[model])
    with claim_output(out, "eval", inputs=[model], overwrite=overwrite,
                      writes=(*spec["tasks"], "results.json")) as run:
        rows = run_suite(model, spec, out, only, **options)
        print_rows(f"{spec['name']}: {model}", rows)
        atomic_write_json(out / "results.json", {"model": str(model), "suite": spec["name"], "rows": rows})
        run.finish(tasks=len(rows))


@app.command(epilog=example("corpus ablate --curated runs/site/curated --raw runs/site/crawl --suite my_suite.yaml"))
@user_errors
def ablate(
    curated: Annotated[Path, typer.Option(help="Curated shards.")],
    raw: Annotated[Path, typer.Option(help="The raw crawl of the same source.")],
    suite: Annotated[str, typer.Option(help="Suite YAML file or built-in name.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder.")] = Path("runs/ablate"),
    steps: Annotated[int, typer.Option(min=1, help="Pretraining steps for each corpus (the shared budget).")] = 300,
    preset: Annotated[str, typer.Option(help="Model size.")] = "mini",
    seq_len: Annotated[int, typer.Option(min=16, help="Pretraining sequence length.")] = 128,
    batch_size: Annotated[int, typer.Option(min=1, help="Pretraining sequences per step.")] = 32,
    vocab_size: Annotated[int, typer.Option(min=64, help="WordPiece vocabulary size.")] = 8000,
    random_baseline: Annotated[bool, typer.Option(help="Also fine-tune the architecture from random weights.")]
    = True,
    data_root: Annotated[Path | None, typer.Option(help="Folder the suite's data paths are relative to.")] = None,
    only: Annotated[list[str] | None, typer.Option("--task", help="Run only this task (repeatable).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Fine-tuning option KEY=VALUE.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier ablation's results in OUT "
                                            "(only what ablate writes is removed).")] = False,
) -> None:
    """Pretrain the same small BERT on curated and raw text for the same budget; fine-tune both on a suite.

    A run that stopped part-way runs again into the same OUT (its token stores are reused)."""
    from corpus.core.runs import check_output, claim_output, refuse_finished
    from corpus.train.ablate import ABLATE_WRITES
    from corpus.train.ablate import ablate as run_ablation
    from corpus.train.evaluate import load_suite, print_rows

    options = _parse_sets(overrides)
    load_suite(suite, data_root)  # a missing suite or data file fails now, not after two pretraining runs
    refuse_finished(out, "ablate", "an ablation's results", overwrite)
    check_output(out, "ablate", inputs=[curated, raw])
    with claim_output(out, "ablate", inputs=[curated, raw], overwrite=overwrite, writes=ABLATE_WRITES):
        result = run_ablation(curated, raw, suite, out, steps=steps, preset=preset, seq_len=seq_len,
                              batch_size=batch_size, vocab_size=vocab_size, random_baseline=random_baseline,
                              data_root=data_root, only=only, finetune_options=options, device=device)
    print_rows(f"ablation ({result['suite']}, {steps} steps x {batch_size} x {seq_len} tokens each)", result["rows"])
    print_table("curated minus raw", [(task, d) for task, d in result["curated_minus_raw"].items()])


@app.command(epilog=example("corpus report runs/site", "corpus report runs/a runs/b -o runs/compare",
                            "corpus report runs/site/curated --format json > summary.json"))
@user_errors
def report(
    runs: Annotated[list[Path], typer.Argument(help="A run folder (crawl and/or curate outputs), or two to compare.",
                                               show_default=False)],
    out: Annotated[Path | None, typer.Option("-o", "--out", help="Output folder (default RUN/report).")] = None,
    output_format: Annotated[str, typer.Option(
        "--format", help="html: report.html, datasheet.md, dataset card, JSON and Markdown; json or md: only that "
        "summary, also printed to stdout (for CI).")] = "html",
    limit: Annotated[int, typer.Option(min=1, help="Documents read per shard folder for distributions and "
                                               "samples.")] = 20_000,
    samples: Annotated[int, typer.Option(min=0, help="Removed documents shown per stage and reason.")] = 3,
    card: Annotated[bool, typer.Option(help="Write the dataset card README.md into the curated folder.")] = True,
) -> None:
    """Audit a run: report.html (plots embedded), datasheet.md, a dataset card; or compare two runs."""
    from corpus.report import FORMATS, build_report, compare_reports

    if output_format not in FORMATS:
        raise CorpusError(f"--format must be one of {', '.join(FORMATS)}, not {output_format!r}")
    if len(runs) > 2:
        raise CorpusError(f"give one run folder, or two to compare (got {len(runs)})")
    if len(runs) == 2:
        paths = compare_reports(runs[0], runs[1], out, output_format=output_format, limit=limit)
    else:
        paths = build_report(runs[0], out, output_format=output_format, limit=limit, samples=samples, card=card)
    if output_format == "html":
        print_table("report", [(k, v) for k, v in paths.items()])
    else:
        sys.stdout.write(paths["json" if output_format == "json" else "markdown"].read_text(encoding="utf-8") + "\n")


@app.command(epilog=example("corpus demo", "corpus demo -o runs/demo2 --steps 200"))
@user_errors
def demo(
    out: Annotated[Path, typer.Option("-o", "--out", help="Run folder (an earlier demo's output there is replaced; "
                                      "any other non-empty folder is refused).")] = Path("runs/demo"),
    steps: Annotated[int, typer.Option(min=1, help="Pretraining steps.")] = 60,
) -> None:
    """Serve the bundled sample site on 127.0.0.1, crawl, curate, pretrain a tiny BERT, write the report."""
    from corpus.demo import run_demo

    run_demo(out, steps=steps)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
