"""Turn a loaded run into facts: plain JSON-able numbers every output (HTML, Markdown, JSON, datasheet, card)
is written from, plus the raw series the plots need. Absent parts become entries of `missing`, never zeros.

Token counts are estimates: characters / 4 (a common rule of thumb for English BPE vocabularies); word counts
are whitespace-separated words.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from corpus.report.load import Run, Scan

CHARS_PER_TOKEN = 4
TOKENS_METHOD = "estimated as characters / 4"
QUALITY_STAGES = {"gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality"}

# What each optional part measures, and how to get it into a run.
PARTS = {
    "crawl": ("collection facts (pages fetched, HTTP statuses, robots.txt, dates)",
              "crawl with `corpus crawl` into the run folder (or report on a folder holding crawl/ and curated/)"),
    "curation": ("the curation funnel, removal reasons and kept documents",
                 "run `corpus curate IN -o RUN/curated`"),
    "language": ("language identification", "add the `language` stage (presets default, web-en, multilingual)"),
    "quality": ("heuristic quality filtering",
                "add `gopher_quality`, `gopher_repetition`, `c4_quality` or `fineweb_quality` (preset web-en)"),
    "dedup": ("deduplication (duplicate clusters)", "add `exact_dedup` or `minhash_dedup` (preset dedup)"),
    "toxicity": ("toxicity scores", "add the `toxicity` stage (preset toxicity)"),
    "identity": ("identity-group mentions", "add the `bias` stage early in the pipeline (preset toxicity)"),
    "audit": ("the disparate-removal audit", "add the `audit` stage (preset toxicity)"),
    "pii": ("personal data (PII) detection", "add the `pii` stage (presets web-en, multilingual)"),
}


@dataclass
class Measured:
    facts: dict[str, Any]
    series: dict[str, Any] = field(default_factory=dict)  # raw values for plots; not written to JSON


def tokens(chars: float | int | None) -> int | None:
    return None if chars is None else int(round(chars / CHARS_PER_TOKEN))


def describe(values: list[int] | list[float]) -> dict[str, Any] | None:
    """Count, mean and percentiles of a list (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]

    return {"n": len(ordered), "mean": round(statistics.fmean(ordered), 2), "min": ordered[0], "p5": pct(0.05),
            "p25": pct(0.25), "median": pct(0.5), "p75": pct(0.75), "p95": pct(0.95), "max": ordered[-1]}


def _config_entries(run: Run) -> dict[str, dict[str, Any]]:
    entries = {}
    for job in (run.config or {}).get("jobs", []):
        for entry in job.get("stages", []):
            entries[str(entry.get("id"))] = entry
    return entries


def _registry_name(stage_id: str, entries: dict[str, dict[str, Any]]) -> str | None:
    """The registered stage name behind a stats entry (multi-job stages add suffixes: dedup_signatures)."""
    if stage_id in entries:
        return entries[stage_id].get("stage")
    for config_id, entry in entries.items():
        if stage_id.startswith(config_id + "_"):
            return entry.get("stage")
    return None


def _kind(stage: dict[str, Any], registry: str | None) -> str | None:
    counters = stage.get("counters", {})
    name = str(stage.get("name", ""))
    keys = " ".join(counters)
    if registry == "language" or name == "LanguageFilter" or "lang/" in keys:
        return "language"
    if (registry or "").endswith("_dedup") or "clusters/" in keys or "duplicate" in keys or "Dedup" in name:
        return "dedup"
    if registry == "toxicity" or "toxicity/" in keys:
        return "toxicity"
    if registry == "bias" or "bias/" in keys:
        return "identity"
    if registry == "pii" or "pii/" in keys:
        return "pii"
    if registry == "audit" or name == "DisparateImpactAudit":
        return "audit"
    if registry in QUALITY_STAGES or "Quality" in name or "Repetition" in name:
        return "quality"
    return None


def _stages(run: Run) -> list[dict[str, Any]]:
    entries = _config_entries(run)
    stages = []
    for job in (run.curate_stats or {}).get("jobs", []):
        for stage in job.get("stages", []):
            registry = _registry_name(str(stage.get("id")), entries)
            stages.append({**stage, "job": job.get("name"), "registry": registry, "kind": _kind(stage, registry)})
    return stages


def _funnel(stages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for stage in stages:
        c = stage["counters"]
        if str(stage.get("name", "")).endswith("Signatures") and c.get("in") == c.get("kept"):
            continue  # pass-through half of a multi-job stage: its decisions show in the next row
        reasons = {k.split("/", 1)[1]: int(v) for k, v in sorted(c.items()) if k.startswith("dropped/")}
        doc_in, kept = int(c.get("in", 0)), int(c.get("kept", 0))
        unexplained = doc_in - kept - sum(reasons.values())
        if unexplained > 0:
            reasons["(errors or unrecorded)"] = unexplained
        rows.append({
            "stage": stage["id"], "class": stage.get("name"), "registry": stage.get("registry"),
            "kind": stage.get("kind"), "job": stage.get("job"), "in": doc_in, "kept": kept,
            "removed": doc_in - kept, "removed_share": round((doc_in - kept) / doc_in, 4) if doc_in else 0.0,
            "reasons": reasons, "chars_in": c.get("chars_in"), "chars_kept": c.get("chars_kept"),
            "tokens_in": tokens(c.get("chars_in")), "tokens_kept": tokens(c.get("chars_kept")),
            "seconds": c.get("seconds"),
        })
    return rows


def _both(*scans: Scan | None) -> Scan | None:
    """Kept + rejected documents: the input as each document was when decided on (when the input is gone)."""
    present = [s for s in scans if s is not None]
    if not present:
        return None
    merged = Scan(present[0].folder)
    for scan in present:
        merged.scanned += scan.scanned
        merged.complete = merged.complete and scan.complete
        merged.chars += scan.chars
        merged.words += scan.words
        merged.domains.update(scan.domains)
        merged.languages.update(scan.languages)
        merged.identity.update(scan.identity)
        merged.identity_annotated += scan.identity_annotated
        for stage, scores in scan.toxicity.items():
            merged.toxicity.setdefault(stage, []).extend(scores)
        for kind, clusters in scan.clusters.items():
            merged.clusters.setdefault(kind, {}).update(clusters)
        times = [*merged.fetched, *scan.fetched]
        merged.fetched = [min(times), max(times)] if times else []
    return merged


def _scan_note(scan: Scan | None, what: str) -> str | None:
    if scan is None:
        return None
    if scan.sampled:
        of = f" of {scan.total}" if scan.total is not None else ""
        return f"{what}: from a sample of {scan.scanned}{of} documents (whole shards in a seeded random order)"
    return None


def measure(run: Run) -> Measured:
    """Every fact the report states, computed once."""
    stages = _stages(run)
    kinds = {s["kind"] for s in stages if s["kind"]}
    stats = run.curate_stats
    entries = _config_entries(run)
    facts: dict[str, Any] = {
        "run": {"name": run.name, "path": str(run.parts.root.resolve()),
                "generated": datetime.now(UTC).isoformat(timespec="seconds")},
        "parts": run.parts.as_dict(),
        "tokens_method": TOKENS_METHOD,
        "notes": list(run.notes),
    }
    series: dict[str, Any] = {}
    present = set(kinds)
    if run.parts.crawl is not None:
        present.add("crawl")
    if stats is not None:
        present.add("curation")
    if stats and stats.get("audit"):
        present.add("audit")
    facts["missing"] = [{"part": name, "what": what, "how": how} for name, (what, how) in PARTS.items()
                        if name not in present and (name in ("crawl", "curation") or "curation" in present)]
    before = run.input_scan or _both(run.kept, run.rejected)
    facts["crawl"] = _crawl(run)
    facts["config"] = _config(run)
    facts["funnel"] = _funnel(stages) if stats else None
    facts["summary"] = _summary(run, facts["funnel"], before)
    facts["reasons"] = _reasons(facts["funnel"], stats)
    facts["languages"] = _languages(stages, run)
    facts["lengths"], series["lengths"] = _lengths(run, before)
    facts["domains"] = _domains(run, before)
    facts["duplicates"], series["cluster_sizes"] = _duplicates(stages, run) if "dedup" in kinds else (None, None)
    facts["toxicity"], series["toxicity"] = _toxicity(stages, run, entries) if "toxicity" in kinds else (None, None)
    facts["identity"] = _identity(stages, run) if ("identity" in kinds or (stats or {}).get("audit")) else None
    facts["audit"] = _audit(stats) if (stats or {}).get("audit") else None
    facts["pii"] = _pii(stages, run, entries) if "pii" in kinds else None
    facts["samples"] = _samples(run)
    facts["model"] = _model(run)
    facts["quality"] = _quality(run)
    for note in (_scan_note(run.kept, "kept-document distributions"),
                 _scan_note(run.rejected, "removed-document samples and cluster sizes"),
                 _scan_note(run.input_scan, "input-document distributions")):
        if note:
            facts["notes"].append(note)
    for scan in (run.input_scan, run.kept, run.rejected):
        if scan is not None and scan.malformed:
            facts["notes"].append(f"{scan.malformed} unreadable record(s) skipped while reading {scan.folder}")
    if stats is not None and run.input_scan is None and before is not None:
        facts["notes"].append("the curate input is not readable here: 'before' distributions are rebuilt from kept + "
                              "removed documents (texts as they were when each was kept or removed)")
    if stats is not None and run.kept is None:
        facts["notes"].append(f"no kept shards under {run.parts.curated}/data: kept-document distributions unknown")
    if stats is not None and run.rejected is None and (stats.get("documents_rejected") or 0) > 0:
        facts["notes"].append("no rejected shards: no samples of removed documents")
    return Measured(facts, series)


def _summary(run: Run, funnel: list[dict[str, Any]] | None, before: Scan | None) -> dict[str, Any]:
    stats = run.curate_stats or {}
    summary: dict[str, Any] = {
        "documents_in": stats.get("documents_in"),
        "documents_kept": stats.get("documents_kept"),
        "documents_rejected": stats.get("documents_rejected"),
        "malformed": stats.get("malformed"),
        "empty_files": stats.get("empty_files"),
        "stage_errors": stats.get("errors"),
        "seconds": stats.get("seconds"),
    }
    if summary["documents_in"]:
        summary["kept_share"] = round((summary["documents_kept"] or 0) / summary["documents_in"], 4)
    if funnel:
        summary["chars_in"] = funnel[0]["chars_in"]
        summary["chars_kept"] = funnel[-1]["chars_kept"]
        summary["tokens_in"] = funnel[0]["tokens_in"]
        summary["tokens_kept"] = funnel[-1]["tokens_kept"]
    if before is not None and before.complete:
        summary["words_in"] = sum(before.words)
    if run.kept is not None and run.kept.complete:
        summary["words_kept"] = sum(run.kept.words)
    return summary


def _reasons(funnel: list[dict[str, Any]] | None, stats: dict[str, Any] | None) -> list[dict[str, Any]]:
    total = (stats or {}).get("documents_in") or 0
    rows = []
    for row in funnel or []:
        for reason, n in row["reasons"].items():
            rows.append({"stage": row["stage"], "reason": reason, "documents": n,
                         "share_of_stage_input": round(n / row["in"], 4) if row["in"] else 0.0,
                         "share_of_all_input": round(n / total, 4) if total else 0.0})
    return rows


def _crawl(run: Run) -> dict[str, Any] | None:
    if run.parts.crawl is None:
        return None
    flat = run.crawl_stats or {}
    summary = run.crawl_summary or {}
    config = run.crawl_config or {}
    spider = config.get("spider", {})
    settings = config.get("settings", {})
    prefix = "downloader/response_status_count/"
    statuses = summary.get("responses", {}).get("by_status") or {
        k.removeprefix(prefix): v for k, v in flat.items() if k.startswith(prefix)}
    errors = summary.get("errors") or {k.split("/", 2)[2]: v for k, v in flat.items() if k.startswith("corpus/errors/")}
    input_scan = run.input_scan if run.input_folder and run.parts.crawl in run.input_folder.parents else None
    return {
        "folder": str(run.parts.crawl),
        "pages_fetched": flat.get("downloader/response_count", summary.get("responses", {}).get("total")),
        "pages": summary.get("pages", flat.get("corpus/pages")),
        "documents": summary.get("documents", flat.get("corpus/documents", flat.get("item_scraped_count"))),
        "statuses": {str(k): int(v) for k, v in sorted(statuses.items())},
        "errors": errors,
        "robots_blocked": summary.get("robots_blocked", flat.get("robotstxt/forbidden", 0)),
        "retries": summary.get("retries", flat.get("retry/count", 0)),
        "bytes_received": summary.get("bytes", {}).get("received", flat.get("downloader/response_bytes")),
        "start_time": flat.get("start_time"),
        "finish_time": flat.get("finish_time"),
        "finish_reason": summary.get("finish_reason", flat.get("finish_reason")),
        "elapsed_seconds": summary.get("elapsed_seconds", flat.get("elapsed_time_seconds")),
        "extraction_failures": summary.get("extraction_failures", {}),
        "skipped": summary.get("skipped", {}),
        "duplicates_skipped": summary.get("duplicates_skipped", {}),
        "warc_records": summary.get("warc_records"),
        "seeds": config.get("seeds"),
        "limits": {k: spider.get(k) for k in ("max_pages", "depth", "allowed_domains", "allow", "deny", "sitemaps",
                                              "favor", "extract") if k in spider},
        "obey_robots": settings.get("ROBOTSTXT_OBEY"),
        "user_agent": settings.get("USER_AGENT"),
        "fetched_range": input_scan.fetched if input_scan is not None and input_scan.fetched else None,
        "counters": {k: v for k, v in sorted(flat.items()) if isinstance(v, int | float)},
    }


def _config(run: Run) -> dict[str, Any] | None:
    if run.config is None:
        return None
    stages = []
    for job in run.config.get("jobs", []):
        for entry in job.get("stages", []):
            params = {k: v for k, v in entry.items() if k not in ("stage", "id")}
            stages.append({"id": entry.get("id"), "stage": entry.get("stage"), "job": job.get("name"),
                           "params": params})
    return {"name": run.config.get("name"), "description": run.config.get("description"),
            "output_format": run.config.get("output_format"), "stages": stages}


def _languages(stages: list[dict[str, Any]], run: Run) -> dict[str, Any] | None:
    stage = next((s for s in stages if s["kind"] == "language"), None)
    if stage is None:
        return None
    before = {k[5:]: int(v) for k, v in stage["counters"].items() if k.startswith("lang/")}
    after = dict(run.kept.languages.most_common()) if run.kept is not None else None
    return {"stage": stage["id"], "before": dict(sorted(before.items(), key=lambda kv: -kv[1])), "after": after,
            "after_sampled": bool(run.kept and run.kept.sampled)}


def _lengths(run: Run, before: Scan | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    if before is None and run.kept is None:
        return None, None
    facts = {
        "unit": "characters; words are whitespace-separated",
        "before_source": "curate input" if run.input_scan is not None else "kept + removed documents",
        "chars_before": describe(before.chars) if before else None,
        "chars_after": describe(run.kept.chars) if run.kept else None,
        "words_before": describe(before.words) if before else None,
        "words_after": describe(run.kept.words) if run.kept else None,
    }
    series = {"before": before.chars if before else [], "after": run.kept.chars if run.kept else []}
    return facts, series


def _domains(run: Run, before: Scan | None, top: int = 15) -> dict[str, Any] | None:
    if before is None and run.kept is None:
        return None
    counts_before = before.domains if before else Counter()
    counts_after = run.kept.domains if run.kept else Counter()
    ranked = (counts_before or counts_after).most_common(top)
    rows = []
    for domain, _ in ranked:
        b, a = counts_before.get(domain), counts_after.get(domain, 0)
        rows.append({"domain": domain, "before": b, "after": a,
                     "removed_share": round(1 - a / b, 4) if b else None})
    return {"distinct_before": len(counts_before) if before else None, "distinct_after": len(counts_after),
            "top": rows}


def _duplicates(stages: list[dict[str, Any]], run: Run) -> tuple[dict[str, Any], dict[str, list[int]]]:
    rows = []
    for stage in stages:
        if stage["kind"] != "dedup":
            continue
        c = stage["counters"]
        if str(stage.get("name", "")).endswith("Signatures") and c.get("in") == c.get("kept"):
            continue  # the pass-through half; its partner row reports the decisions
        rows.append({"stage": stage["id"], "registry": stage["registry"], "in": int(c.get("in", 0)),
                     "removed": sum(int(v) for k, v in c.items() if k.startswith("dropped/")),
                     "reasons": {k[8:]: int(v) for k, v in c.items() if k.startswith("dropped/")},
                     "counters": {k[9:]: v for k, v in c.items() if k.startswith("clusters/")}})
    clusters: dict[str, dict[str, int]] = {}
    for scan in (run.kept, run.rejected):
        for kind, found in (scan.clusters.items() if scan else []):
            clusters.setdefault(kind, {}).update(found)
    kinds = {}
    series = {}
    for kind, found in sorted(clusters.items()):
        sizes = list(found.values())
        histogram = Counter(sizes)
        kinds[kind] = {"clusters": len(sizes), "documents_in_clusters": sum(sizes),
                       "largest": max(sizes), "clusters_by_size": {str(k): v for k, v in sorted(histogram.items())}}
        series[kind] = sizes
    sampled = bool((run.kept and run.kept.sampled) or (run.rejected and run.rejected.sampled))
    return {"stages": rows, "clusters": kinds, "clusters_sampled": sampled,
            "note": "a cluster is a group of documents judged duplicates of each other; singletons are not "
                    "counted"}, series


def _toxicity(stages: list[dict[str, Any]], run: Run,
              entries: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    rows = []
    series: dict[str, Any] = {}
    for stage in stages:
        if stage["kind"] != "toxicity":
            continue
        c = stage["counters"]
        entry = entries.get(stage["id"], {})
        scored = int(c.get("toxicity/scored", 0))
        before = (run.kept.toxicity.get(stage["id"], []) if run.kept else []) + (
            run.rejected.toxicity.get(stage["id"], []) if run.rejected else [])
        after = run.kept.toxicity.get(stage["id"], []) if run.kept else []
        unsupported = {k.rsplit("/", 1)[1]: int(v) for k, v in c.items()
                       if k.startswith("toxicity/unsupported_language/")}
        rows.append({
            "stage": stage["id"], "scorer": entry.get("scorer"), "threshold": entry.get("threshold"),
            "granularity": entry.get("granularity"), "scored": scored - sum(unsupported.values()),
            "toxic": int(c.get("toxicity/toxic", 0)), "hate": int(c.get("toxicity/hate", 0)),
            "removed": sum(int(v) for k, v in c.items() if k.startswith("dropped/")),
            "mean_score": (round(c.get("toxicity/score_sum", 0) / (scored - sum(unsupported.values())), 4)
                           if scored > sum(unsupported.values()) else None),
            "unsupported_languages": unsupported,
            "scores_before": describe(before), "scores_after": describe(after),
            "toxic_kept": run.kept.toxic.get(stage["id"], 0) if run.kept else None,
        })
        series[stage["id"]] = {"before": before, "after": after, "threshold": entry.get("threshold")}
    return {"stages": rows}, series


def _identity(stages: list[dict[str, Any]], run: Run) -> dict[str, Any]:
    audit = (run.curate_stats or {}).get("audit")
    if audit and audit.get("representation"):
        groups = {k: v for k, v in audit["representation"].items() if "/" not in k}
        subgroups = {k: v for k, v in audit["representation"].items() if "/" in k}
        return {"source": "audit", "documents_before": audit.get("documents"),
                "documents_after": audit.get("documents_kept"), "groups": groups, "subgroups": subgroups,
                "pronouns": audit.get("pronouns")}
    stage = next((s for s in stages if s["kind"] == "identity"), None)
    counters = stage["counters"] if stage else {}
    before_total = int(counters.get("in", 0))
    after_total = (run.curate_stats or {}).get("documents_kept") or 0
    kept = run.kept.identity if run.kept else Counter()
    groups = {}
    for key, n in counters.items():
        if key.startswith("bias/docs/"):
            group = key[len("bias/docs/"):]
            a = kept.get(group, 0)
            groups[group] = {"docs_before": int(n), "docs_after": a,
                             "share_before": round(n / before_total, 6) if before_total else None,
                             "share_after": round(a / after_total, 6) if after_total else None}
    return {"source": "bias stage counters and kept documents", "documents_before": before_total,
            "documents_after": after_total, "groups": groups, "subgroups": {},
            "after_sampled": bool(run.kept and run.kept.sampled)}


def _audit(stats: dict[str, Any]) -> dict[str, Any]:
    audit = stats["audit"]
    rows = []
    for stage in audit.get("stages", []):
        for level in ("groups", "subgroups"):
            for group, g in stage.get(level, {}).items():
                rows.append({"stage": stage.get("stage"), "kind": stage.get("kind"), "level": level[:-1],
                             "group": group, "in": g.get("in"), "removed": g.get("removed"), "rate": g.get("rate"),
                             "stage_rate": stage.get("rate"), "ratio": g.get("ratio"), "ci": g.get("ci"),
                             "significant": g.get("significant"), "flagged": g.get("flagged")})
    return {"factor": audit.get("factor"), "confidence": audit.get("confidence"), "min_docs": audit.get("min_docs"),
            "documents": audit.get("documents"), "unannotated": audit.get("unannotated"),
            "flags": audit.get("flags", []), "rows": rows,
            "stages": [{k: s.get(k) for k in ("stage", "kind", "in", "removed", "rate")}
                       for s in audit.get("stages", [])]}


def _pii(stages: list[dict[str, Any]], run: Run, entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    documents = 0
    modes = []
    for stage in stages:
        if stage["kind"] != "pii":
            continue
        entry = entries.get(stage["id"], {})
        modes.append({"stage": stage["id"], "mode": entry.get("mode"), "kinds": entry.get("kinds")})
        for key, value in stage["counters"].items():
            if key == "pii/documents":
                documents += int(value)
            elif key.startswith("pii/"):
                counts[key[4:]] += int(value)
    return {"counts": dict(counts.most_common()), "documents": documents, "stages": modes,
            "kept_documents_with_pii": run.kept.pii_documents if run.kept else None}


def _samples(run: Run) -> dict[str, Any]:
    removed = dict(sorted(run.rejected.samples.items())) if run.rejected else {}
    kept = run.kept.samples if run.kept else {}
    return {"removed": removed, "kept": kept.get("kept", []), "kept_flagged": kept.get("kept_flagged", [])}


def _model(run: Run) -> dict[str, Any] | None:
    summary = run.model_summary
    if not summary:
        return None
    keys = ("preset", "objective", "steps", "final_loss", "eval_mlm_acc", "eval_mlm_loss", "tokens", "documents",
            "vocab_size", "finished")
    return {"folder": str(run.parts.model), **{k: summary[k] for k in keys if k in summary}}


def _quality(run: Run) -> dict[str, Any] | None:
    """Missing metadata fields among kept documents (a datasheet question with a measurable answer)."""
    scan = run.kept
    if scan is None or not scan.scanned:
        return None
    fields = ("url", "title", "date", "language", "fetched_at")
    return {"documents": scan.scanned,
            "missing_fields": {f: scan.scanned - scan.metadata_keys.get(f, 0) for f in fields
                               if f in scan.metadata_keys or f in ("url", "language")},
            "metadata_keys": sorted(scan.metadata_keys)}


def jsonable(value: Any) -> Any:
    """Facts as plain JSON types (samples become dicts with a short excerpt)."""
    from corpus.report.samples import Sample

    if isinstance(value, Sample):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
