"""Two runs side by side: what a configuration change did to the funnel, the reasons, and which documents."""

from __future__ import annotations

from collections import Counter
from typing import Any

from corpus.report.facts import Measured
from corpus.report.load import Run


def _flatten(config: dict[str, Any] | None) -> dict[str, Any]:
    """`stage_id.param` -> value (stages matched by id, so reordering does not count as a change)."""
    flat: dict[str, Any] = {}
    if not config:
        return flat
    for key, value in config.items():
        if key != "jobs":
            flat[key] = value
    for position, job in enumerate(config.get("jobs", [])):
        for entry in job.get("stages", []):
            stage_id = entry.get("id")
            flat[f"{stage_id}"] = f"{entry.get('stage')} (job {job.get('name', position)})"
            for param, value in entry.items():
                if param not in ("id", "stage"):
                    flat[f"{stage_id}.{param}"] = value
    return flat


def config_diff(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Settings that differ; a stage only one run has is one row, not one row per parameter."""
    fa, fb = _flatten(a), _flatten(b)
    absent = "(absent)"
    only = {k for k in fa.keys() ^ fb.keys() if "." not in k}  # stage ids present in one run only
    rows = []
    for key in dict.fromkeys([*fa, *fb]):
        if key.split(".", 1)[0] in only and "." in key:
            continue
        va, vb = fa.get(key, absent), fb.get(key, absent)
        if va != vb:
            rows.append({"key": key, "a": va, "b": vb})
    return rows


def _delta(a: Any, b: Any) -> Any:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return round(b - a, 4)
    return None


def _documents(run_a: Run, run_b: Run, samples: int = 5) -> dict[str, Any] | None:
    if run_a.kept is None or run_b.kept is None:
        return None
    ids_a, ids_b = run_a.kept.ids, run_b.kept.ids
    complete = run_a.kept.complete and run_b.kept.complete

    def side(only: set[str], other: Run, this: Run) -> tuple[dict[str, int], list[dict[str, str]]]:
        decisions = other.rejected.decisions if other.rejected else {}
        reasons = Counter(decisions.get(i, "(not in its input or not read)") for i in only)
        shown = [{"id": i, "label": this.kept.labels.get(i, "") if this.kept else "",
                  "decision": decisions.get(i, "(not in its input or not read)")} for i in sorted(only)[:samples]]
        return dict(reasons.most_common()), shown

    only_a, only_b = ids_a - ids_b, ids_b - ids_a
    why_a, shown_a = side(only_a, run_b, run_a)
    why_b, shown_b = side(only_b, run_a, run_b)
    return {"complete": complete, "kept_both": len(ids_a & ids_b), "only_a": len(only_a), "only_b": len(only_b),
            "only_a_removed_by": why_a, "only_b_removed_by": why_b, "only_a_samples": shown_a,
            "only_b_samples": shown_b}


def compare(run_a: Run, measured_a: Measured, run_b: Run, measured_b: Measured) -> dict[str, Any]:
    """The comparison facts (JSON-able)."""
    fa, fb = measured_a.facts, measured_b.facts
    sa, sb = fa["summary"], fb["summary"]
    names = [fa["run"]["name"], fb["run"]["name"]]
    if names[0] == names[1]:
        names = [f"A: {names[0]}", f"B: {names[1]}"]
    summary = []
    for metric in ("documents_in", "documents_kept", "documents_rejected", "kept_share", "tokens_in", "tokens_kept",
                   "malformed", "stage_errors"):
        summary.append({"metric": metric.replace("_", " "), "a": sa.get(metric), "b": sb.get(metric),
                        "delta": _delta(sa.get(metric), sb.get(metric))})
    funnel_a = {r["stage"]: r for r in fa.get("funnel") or []}
    funnel_b = {r["stage"]: r for r in fb.get("funnel") or []}
    funnel = [{"stage": stage, "a_in": funnel_a.get(stage, {}).get("in"), "a_kept": funnel_a.get(stage, {}).get("kept"),
               "b_in": funnel_b.get(stage, {}).get("in"), "b_kept": funnel_b.get(stage, {}).get("kept")}
              for stage in dict.fromkeys([*funnel_a, *funnel_b])]
    reasons_a = {(r["stage"], r["reason"]): r["documents"] for r in fa.get("reasons") or []}
    reasons_b = {(r["stage"], r["reason"]): r["documents"] for r in fb.get("reasons") or []}
    reasons = [{"stage": k[0], "reason": k[1], "a": reasons_a.get(k, 0), "b": reasons_b.get(k, 0),
                "delta": reasons_b.get(k, 0) - reasons_a.get(k, 0)} for k in dict.fromkeys([*reasons_a, *reasons_b])]
    lang_a = ((fa.get("languages") or {}).get("after")) or {}
    lang_b = ((fb.get("languages") or {}).get("after")) or {}
    languages = [{"language": k, "a": lang_a.get(k, 0), "b": lang_b.get(k, 0)} for k in dict.fromkeys([*lang_a,
                                                                                                      *lang_b])]
    pii_a = (fa.get("pii") or {}).get("counts", {})
    pii_b = (fb.get("pii") or {}).get("counts", {})
    return {
        "runs": [{"name": names[0], "path": fa["run"]["path"]}, {"name": names[1], "path": fb["run"]["path"]}],
        "generated": fb["run"]["generated"],
        "tokens_method": fa["tokens_method"],
        "summary": summary,
        "config_diff": config_diff(run_a.config, run_b.config),
        "funnel": funnel,
        "reasons": reasons,
        "languages": languages,
        "pii": [{"kind": k, "a": pii_a.get(k, 0), "b": pii_b.get(k, 0)} for k in dict.fromkeys([*pii_a, *pii_b])],
        "audit_flags": [len((fa.get("audit") or {}).get("flags", [])) if fa.get("audit") else None,
                        len((fb.get("audit") or {}).get("flags", [])) if fb.get("audit") else None],
        "documents": _documents(run_a, run_b),
        "missing": [[m["part"] for m in fa["missing"]], [m["part"] for m in fb["missing"]]],
        "funnels": [fa.get("funnel") or [], fb.get("funnel") or []],
    }
