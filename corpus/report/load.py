"""Find the parts of a run folder and read them: crawl stats, curate stats and config, and a scan of the shards.

A report reads files only, so it can be made for any run, anywhere, after the fact. Every part is optional:
what is absent is recorded (and the report says so) rather than guessed.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.io import is_shard, manifest_path, read_shard
from corpus.report.samples import Sample, make_sample, span_context, toxicity_notes

# Folder names tried, in order, when a run folder holds several steps (the layout `corpus demo` writes).
CRAWL_NAMES = ("crawl",)
CURATE_NAMES = ("curated", "curate")
MODEL_NAMES = ("model",)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise CorpusError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected a JSON object")
    return data


def _is_curate_output(folder: Path) -> bool:
    path = folder / "stats.json"
    if not path.is_file():
        return False
    return "jobs" in _read_json(path)  # a crawl folder has a stats.json too (its summary), without jobs


def _is_crawl_output(folder: Path) -> bool:
    return (folder / "crawl_stats.json").is_file()


def _is_model(folder: Path) -> bool:
    return (folder / "train_summary.json").is_file() or (folder / "config.json").is_file()


def _candidates(root: Path, names: tuple[str, ...]) -> list[Path]:
    """The folder itself, then the conventional sub-folder names, then any other sub-folder (sorted)."""
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    named = [root / n for n in names if (root / n).is_dir()]
    return [root, *named, *[p for p in subdirs if p not in named]]


@dataclass
class RunParts:
    """Where each step's output lies (None: not found), and how it was found."""

    root: Path
    crawl: Path | None = None
    curated: Path | None = None
    model: Path | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, str | None]:
        return {k: (str(v) if v else None) for k, v in (("crawl", self.crawl), ("curated", self.curated),
                                                         ("model", self.model))}


def locate_parts(run_dir: str | Path) -> RunParts:
    """Locate crawl, curate and model outputs in a run folder, or accept a single step's folder.

    A curate output whose recorded input is a crawl folder elsewhere brings that crawl in too, so
    `corpus report runs/x/curated` and `corpus report runs/x` tell the same story.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise CorpusError(f"{root}: run folder does not exist")
    parts = RunParts(root)
    curated = [p for p in _candidates(root, CURATE_NAMES) if _is_curate_output(p)]
    if curated:
        parts.curated = curated[0]
        if len(curated) > 1:
            others = ", ".join(str(p.relative_to(root)) for p in curated[1:])
            parts.notes.append(f"several curate outputs found; reporting on {curated[0].name}, not on {others} "
                               "(give one of them as the run folder to report on it)")
    crawls = [p for p in _candidates(root, CRAWL_NAMES) if _is_crawl_output(p)]
    if crawls:
        parts.crawl = crawls[0]
    elif parts.curated is not None:
        recorded = _read_json(parts.curated / "stats.json").get("input")
        if recorded:
            source = Path(recorded)
            for folder in (source, source.parent):
                if folder.is_dir() and _is_crawl_output(folder):
                    parts.crawl = folder
                    parts.notes.append(f"crawl found through the curate input recorded in stats.json: {folder}")
                    break
    models = [p for p in _candidates(root, MODEL_NAMES) if p != root and _is_model(p)]
    if models:
        parts.model = models[0]
    return parts


def find_run_parts(run_dir: str | Path) -> dict[str, Path | None]:
    """Paths of the stats files of a run (kept for callers of the first report version)."""
    parts = locate_parts(run_dir)
    return {
        "crawl_stats": parts.crawl / "crawl_stats.json" if parts.crawl else None,
        "curate_stats": parts.curated / "stats.json" if parts.curated else None,
        "model": parts.model,
    }


# --- shard scans ------------------------------------------------------------------------------------------


def domain_of(metadata: dict[str, Any]) -> str:
    domain = metadata.get("domain")
    if domain:
        return str(domain)
    url = metadata.get("url")
    if url:
        try:
            return urlsplit(str(url)).hostname or "(no host)"
        except ValueError:
            return "(bad url)"
    return "(no url)"


@dataclass
class Scan:
    """What a read of (up to `limit` documents of) one shard folder measured."""

    folder: Path
    total: int | None = None  # from the folder's manifest, when it has one
    scanned: int = 0
    malformed: int = 0
    complete: bool = True  # False when the limit stopped the read early
    chars: list[int] = field(default_factory=list)
    words: list[int] = field(default_factory=list)
    languages: Counter[str] = field(default_factory=Counter)
    domains: Counter[str] = field(default_factory=Counter)
    toxicity: dict[str, list[float]] = field(default_factory=dict)  # stage id -> scores
    toxic: Counter[str] = field(default_factory=Counter)  # stage id -> documents marked toxic
    unscored: Counter[str] = field(default_factory=Counter)  # stage id -> documents in a language it cannot read
    identity: Counter[str] = field(default_factory=Counter)  # group -> documents mentioning it
    identity_annotated: int = 0
    pii: Counter[str] = field(default_factory=Counter)  # kind -> occurrences
    pii_documents: int = 0
    clusters: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> cluster id -> size
    reasons: Counter[str] = field(default_factory=Counter)  # "stage/reason" (rejected folders)
    decisions: dict[str, str] = field(default_factory=dict)  # id -> "stage/reason" (rejected folders)
    ids: set[str] = field(default_factory=set)
    labels: dict[str, str] = field(default_factory=dict)  # id -> url or title, to name documents in comparisons
    metadata_keys: Counter[str] = field(default_factory=Counter)
    fetched: list[str] = field(default_factory=list)  # min and max fetch times seen
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        return not self.complete


@dataclass
class ScanOptions:
    limit: int = 20_000  # documents read per folder at most (distributions then come from a sample)
    per_reason: int = 3  # removed documents shown per stage and reason
    kept_samples: int = 5  # kept documents shown (plus up to this many carrying PII/toxic/identity spans)
    seed: int = 0
    context: dict[str, Any] = field(default_factory=dict)  # what samples need to find spans (see samples.py)


def _shards(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if is_shard(p))


def scan_folder(folder: Path, role: str, options: ScanOptions) -> Scan | None:
    """Read documents of `folder` (role: input, kept or rejected); None if it has no shards.

    Shards are read in a seeded random order so that a capped read samples the whole folder, not its start.
    """
    shards = _shards(folder)
    if not shards:
        return None
    scan = Scan(folder)
    manifest = manifest_path(folder)
    if manifest.is_file():
        try:
            scan.total = int(_read_json(manifest).get("documents"))
        except (CorpusError, TypeError, ValueError):
            scan.total = None
    random.Random(options.seed).shuffle(shards)
    flagged_samples = 0

    def count_bad(_: Any) -> None:
        scan.malformed += 1

    for shard in shards:
        for doc in read_shard(shard, on_malformed=count_bad):
            if scan.scanned >= options.limit:
                scan.complete = False
                return scan
            scan.scanned += 1
            _measure(scan, doc)
            if role == "rejected":
                key = f"{doc.metadata.get('stage', '?')}/{doc.metadata.get('reason', '?')}"
                scan.reasons[key] += 1
                scan.decisions[doc.id] = key
                bucket = scan.samples.setdefault(key, [])
                if len(bucket) < options.per_reason:
                    bucket.append(make_sample(doc, options.context))
            elif role == "kept":
                bucket = scan.samples.setdefault("kept", [])
                if len(bucket) < options.kept_samples:
                    bucket.append(make_sample(doc, options.context))
                elif flagged_samples < options.kept_samples and _worth_showing(doc):
                    flagged_samples += 1
                    scan.samples.setdefault("kept_flagged", []).append(make_sample(doc, options.context))
    return scan


def _worth_showing(doc: Document) -> bool:
    """Kept documents an auditor wants to see: personal data found, toxic, or mentioning identity groups."""
    meta = doc.metadata
    return bool(meta.get("pii")) or any(n.get("toxic") for n in toxicity_notes(meta).values()) or bool(
        meta.get("identity"))


def _measure(scan: Scan, doc: Document) -> None:
    meta = doc.metadata
    scan.chars.append(len(doc.text))
    scan.words.append(len(doc.text.split()))
    scan.ids.add(doc.id)
    scan.labels[doc.id] = str(meta.get("url") or meta.get("title") or "")[:200]
    scan.metadata_keys.update(k for k in meta if k not in ("stage", "reason"))
    scan.domains[domain_of(meta)] += 1
    if meta.get("language"):
        scan.languages[str(meta["language"])] += 1
    for stage, note in toxicity_notes(meta).items():
        if note.get("unsupported_language"):
            scan.unscored[stage] += 1  # stored as 0.0, but nothing was judged: keep it out of the distribution
            continue
        try:
            scan.toxicity.setdefault(stage, []).append(float(note["score"]))
        except (TypeError, ValueError):
            continue
        if note.get("toxic"):
            scan.toxic[stage] += 1
    if isinstance(meta.get("identity"), dict):
        scan.identity_annotated += 1
        scan.identity.update(g for g, n in meta["identity"].items() if n)
    if isinstance(meta.get("pii"), dict) and meta["pii"]:
        scan.pii_documents += 1
        for kind, n in meta["pii"].items():
            if isinstance(n, int | float):
                scan.pii[kind] += int(n)
    for key, value in meta.items():
        if key.endswith("_cluster_id") and f"{key[:-3]}_size" in meta:
            kind = key[: -len("_cluster_id")]
            try:
                scan.clusters.setdefault(kind, {})[str(value)] = int(meta[f"{kind}_cluster_size"])
            except (TypeError, ValueError):
                continue
    fetched = meta.get("fetched_at")
    if isinstance(fetched, str) and fetched:
        if not scan.fetched:
            scan.fetched = [fetched, fetched]
        else:
            scan.fetched = [min(scan.fetched[0], fetched), max(scan.fetched[1], fetched)]


# --- the whole run ----------------------------------------------------------------------------------------


@dataclass
class Run:
    """Everything a report is made from."""

    parts: RunParts
    crawl_stats: dict[str, Any] | None = None  # Scrapy's flat counters (crawl_stats.json)
    crawl_summary: dict[str, Any] | None = None  # the crawl's own summary (its stats.json)
    crawl_config: dict[str, Any] | None = None
    curate_stats: dict[str, Any] | None = None
    config: dict[str, Any] | None = None  # the resolved pipeline (config.yaml)
    model_summary: dict[str, Any] | None = None
    input_scan: Scan | None = None
    input_folder: Path | None = None
    kept: Scan | None = None
    rejected: Scan | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.parts.root.resolve().name


def _optional_json(path: Path) -> dict[str, Any] | None:
    return _read_json(path) if path.is_file() else None


def _input_folder(run: Run) -> Path | None:
    """The curate step's input shards: as recorded in stats.json, else the crawl's data folder."""
    candidates = []
    if run.curate_stats and run.curate_stats.get("input"):
        candidates.append(Path(run.curate_stats["input"]))
    if run.parts.crawl is not None:
        candidates.append(run.parts.crawl)
    for folder in candidates:
        for inner in (folder, folder / "data"):
            if _shards(inner):
                return inner
    return None


def load_run(run_dir: str | Path, options: ScanOptions | None = None) -> Run:
    """Read every part of a run that exists; raise CorpusError if there is nothing to report on."""
    options = options or ScanOptions()
    parts = locate_parts(run_dir)
    if parts.crawl is None and parts.curated is None:
        raise CorpusError(f"{parts.root}: no crawl_stats.json or stats.json found; is this a corpus run folder? "
                          "(expected a crawl output, a curate output, or a folder holding them)")
    run = Run(parts, notes=list(parts.notes))
    if parts.crawl is not None:
        run.crawl_stats = _optional_json(parts.crawl / "crawl_stats.json")
        run.crawl_summary = _optional_json(parts.crawl / "stats.json")
        run.crawl_config = _optional_json(parts.crawl / "crawl_config.json")
    if parts.curated is not None:
        run.curate_stats = _read_json(parts.curated / "stats.json")
        config_path = parts.curated / "config.yaml"
        if config_path.is_file():
            try:
                run.config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
            except yaml.YAMLError as err:
                raise CorpusError(f"{config_path}: invalid YAML ({err})") from err
        options.context = span_context(run.config)
        run.kept = scan_folder(parts.curated / "data", "kept", options)
        run.rejected = scan_folder(parts.curated / "rejected", "rejected", options)
    if parts.model is not None:
        run.model_summary = _optional_json(parts.model / "train_summary.json")
    run.input_folder = _input_folder(run)
    if run.input_folder is not None:
        run.input_scan = scan_folder(run.input_folder, "input", options)
    return run
