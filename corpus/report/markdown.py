"""Markdown summaries (`--format md`): the headline numbers and tables, for CI logs and pull requests."""

from __future__ import annotations

from typing import Any


def _n(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def _cell(value: Any) -> str:
    """Table cells hold user data (domains, reasons): keep them on one line and out of the table syntax."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def report_markdown(facts: dict[str, Any]) -> str:
    f = facts
    s = f["summary"]
    out = [f"# corpus report: {f['run']['name']}", "", f"Generated {f['run']['generated']} from `{f['run']['path']}`. "
           f"Tokens are {f['tokens_method']}.", ""]
    if f["missing"]:
        out += [f"**Not in this run: {', '.join(m['part'] for m in f['missing'])}.**", ""]
        out += [f"- {m['part']}: {m['what']} unknown; to measure it, {m['how']}" for m in f["missing"]] + [""]
    out += [f"- {note}" for note in f["notes"]] + ([""] if f["notes"] else [])
    if s.get("documents_in") is not None:
        out += _table(["documents in", "kept", "removed", "kept %", "tokens in (est.)", "tokens kept (est.)"],
                      [[_n(s["documents_in"]), _n(s["documents_kept"]), _n(s["documents_rejected"]),
                        _pct(s.get("kept_share")), _n(s.get("tokens_in")), _n(s.get("tokens_kept"))]])
    crawl = f.get("crawl")
    if crawl:
        out += ["## Collection", ""]
        out += _table(["pages fetched", "documents", "robots.txt blocked", "statuses"],
                      [[_n(crawl["pages_fetched"]), _n(crawl["documents"]), _n(crawl["robots_blocked"]),
                        ", ".join(f"{k}: {v}" for k, v in crawl["statuses"].items())]])
    if f.get("funnel"):
        out += ["## Funnel", ""]
        out += _table(["stage", "in", "kept", "removed %", "tokens kept (est.)", "reasons"],
                      [[f"`{r['stage']}`", _n(r["in"]), _n(r["kept"]), _pct(r["removed_share"]), _n(r["tokens_kept"]),
                        ", ".join(f"{k}: {v}" for k, v in r["reasons"].items())] for r in f["funnel"]])
    if f.get("languages"):
        lang = f["languages"]
        out += ["## Languages", ""]
        rows = [[k, _n(v), _n((lang.get("after") or {}).get(k, 0))] for k, v in lang["before"].items()]
        if len(rows) > 20:
            rest = list(lang["before"])[20:]
            rows = rows[:20] + [[f"{len(rest)} others", _n(sum(lang["before"][k] for k in rest)),
                                 _n(sum((lang.get("after") or {}).get(k, 0) for k in rest))]]
        out += _table(["language", "before", "after"], rows)
    if f.get("duplicates"):
        out += ["## Duplicates", ""]
        out += _table(["stage", "removed"], [[f"`{r['stage']}`", _n(r["removed"])] for r in f["duplicates"]["stages"]])
    if f.get("toxicity"):
        out += ["## Toxicity", ""]
        out += _table(["stage", "scorer", "threshold", "scored", "toxic", "removed", "toxic kept"],
                      [[f"`{r['stage']}`", r["scorer"], r["threshold"], _n(r["scored"]), _n(r["toxic"]),
                        _n(r["removed"]), _n(r["toxic_kept"])] for r in f["toxicity"]["stages"]])
    if f.get("audit"):
        audit = f["audit"]
        out += ["## Disparate removal", "", f"{len(audit['flags'])} flag(s) at factor {audit['factor']}.", ""]
        flagged = [r for r in audit["rows"] if r["flagged"]]
        if flagged:
            out += _table(["stage", "group", "rate", "stage rate", "ratio"],
                          [[r["stage"], r["group"], _pct(r["rate"]), _pct(r["stage_rate"]), r["ratio"]]
                           for r in flagged])
    if f.get("pii"):
        out += ["## Personal data", ""]
        out += _table(["kind", "found"], [[k, _n(v)] for k, v in f["pii"]["counts"].items()] or [["none", "0"]])
    return "\n".join(out)


def compare_markdown(c: dict[str, Any]) -> str:
    a, b = (r["name"] for r in c["runs"])
    out = [f"# corpus report: {a} vs {b}", ""]
    out += _table(["", a, b, "change"], [[r["metric"], _n(r["a"]), _n(r["b"]), _n(r["delta"])] for r in c["summary"]])
    if c["config_diff"]:
        out += ["## Configuration differences", ""]
        out += _table(["setting", a, b], [[f"`{r['key']}`", r["a"], r["b"]] for r in c["config_diff"]])
    else:
        out += ["Same pipeline configuration.", ""]
    out += ["## Funnel", ""]
    out += _table(["stage", f"{a} kept", f"{b} kept"], [[f"`{r['stage']}`", _n(r["a_kept"]), _n(r["b_kept"])]
                                                        for r in c["funnel"]])
    if c["reasons"]:
        out += ["## Removal reasons", ""]
        out += _table(["stage", "reason", a, b, "change"],
                      [[r["stage"], r["reason"], _n(r["a"]), _n(r["b"]), _n(r["delta"])] for r in c["reasons"]])
    docs = c["documents"]
    if docs:
        out += ["## Kept documents", "", f"Kept by both: {_n(docs['kept_both'])}; only by {a}: {_n(docs['only_a'])}; "
                f"only by {b}: {_n(docs['only_b'])}.", ""]
        for side, other in (("a", b), ("b", a)):
            why = docs[f"only_{side}_removed_by"]
            if why:
                out += [f"Kept only by {c['runs'][0 if side == 'a' else 1]['name']}: removed in {other} by "
                        + ", ".join(f"{k}: {v}" for k, v in why.items()), ""]
    return "\n".join(out)
