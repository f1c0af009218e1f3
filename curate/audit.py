"""Disparate-impact audit: what each filtering stage of a run removed, per identity group.

Dodge et al. (2021) found that C4's blocklist removed text by and about minority groups at far higher rates
than other text. This audit measures that for every stage of a run (quality rules, toxicity, dedup, all of
them), from the run's own outputs: kept shards (`data/`) and rejected shards (`rejected/`, each row carrying
its `stage` and `reason`). For each stage it compares the removal rate among documents that mention a group
(and reached that stage) with the stage's overall removal rate: the ratio, a Wilson confidence interval, and
a flag when the ratio exceeds `factor`. Tag-only toxicity stages get "what if it filtered" rows, mitigated
word-list stages a "without mitigation" comparison. (The `hate` flag is audited only when it removes
documents, `drop_hate`: it needs an identity mention by definition.) Representation (share of documents
per group) and the gendered pronoun ratio are compared before and after curation.

Add the `audit` stage to a pipeline (anywhere: it passes documents through) and the result lands under
`audit` in stats.json when the run finishes. Groups come from the `bias` stage's metadata; documents removed
before that stage are annotated here with the same lexicon.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from statistics import NormalDist
from typing import Any

from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.io import is_shard, read_shard
from corpus.core.stage import RankContext, Stage
from corpus.curate.bias import load_lexicon

ALL = "__all__"


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (well-behaved for small counts and rates near 0)."""
    if trials <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class _Tally:
    """Streaming counts: documents removed at each stage, kept, and flagged, per group."""

    def __init__(self) -> None:
        self.removed: dict[str, Counter[str]] = defaultdict(Counter)  # stage -> group -> docs removed there
        self.kept: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.tag_in: dict[str, Counter[str]] = defaultdict(Counter)  # "stage" or "stage:hate" -> group -> docs
        self.tag_hit: dict[str, Counter[str]] = defaultdict(Counter)
        self.mitigated: dict[str, Counter[str]] = defaultdict(Counter)  # stage -> group -> docs kept by mitigation
        self.mitigated_kept: Counter[str] = Counter()
        self.pronouns: dict[str, Counter[str]] = {"before": Counter(), "after": Counter()}
        self.unannotated = 0

    def add(self, groups: Iterable[str], stage: str | None, metadata: dict[str, Any], pronouns: dict[str, int]) -> None:
        keys = [ALL, *groups]
        self.total.update(keys)
        if stage is None:
            self.kept.update(keys)
        else:
            self.removed[stage].update(keys)
        for kind, count in pronouns.items():
            self.pronouns["before"][kind] += count
            self.pronouns["before"][f"docs_{kind}"] += 1
            if stage is None:
                self.pronouns["after"][kind] += count
                self.pronouns["after"][f"docs_{kind}"] += 1
        for key, note in metadata.items():
            if not (isinstance(note, dict) and "scorer" in note and "toxic" in note):
                continue  # only toxicity annotations
            if key != stage:  # a stage that removed the document reports it as a removal already
                self.tag_in[key].update(keys)
                if note.get("toxic"):
                    self.tag_hit[key].update(keys)
            if note.get("mitigated"):
                self.mitigated[key].update(keys)
                if stage is None:
                    self.mitigated_kept.update(keys)


def _compare(
    removed: Counter[str], reached: Counter[str], names: list[str], factor: float, confidence: float, min_docs: int
) -> dict[str, Any]:
    n, k = reached[ALL], removed[ALL]
    base = k / n if n else 0.0
    out: dict[str, Any] = {"in": n, "removed": k, "rate": round(base, 6), "groups": {}}
    for name in names:
        n_g, k_g = reached[name], removed[name]
        if not n_g:
            continue
        rate = k_g / n_g
        lo, hi = wilson_interval(k_g, n_g, confidence)
        entry: dict[str, Any] = {"in": n_g, "removed": k_g, "rate": round(rate, 6)}
        if base > 0:
            entry["ratio"] = round(rate / base, 4)
            entry["ci"] = [round(lo / base, 4), round(hi / base, 4)]
            entry["significant"] = lo > base
            entry["flagged"] = n_g >= min_docs and rate > factor * base
        else:
            entry.update(ratio=None, ci=None, significant=False, flagged=False)
        out["groups"][name] = entry
    return out


def _read(path: Path) -> Iterator[Document]:
    yield from read_shard(path, on_malformed=lambda bad: None)  # quarantine already reported them


def _shards(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_shard(p)) if folder.is_dir() else []


def audit_run(
    out_dir: str | Path,
    stats: dict[str, Any] | None = None,
    factor: float = 1.25,
    confidence: float = 0.95,
    min_docs: int = 20,
    lexicon: str | list[str] | None = None,
    default_language: str = "en",
    subgroups: bool = True,
) -> dict[str, Any]:
    """The audit of a finished run folder (its `stats.json` gives the stage order)."""
    out_dir = Path(out_dir)
    if stats is None:
        try:
            stats = json.loads((out_dir / "stats.json").read_text())
        except FileNotFoundError as err:
            raise CorpusError(f"{out_dir}: no stats.json; is this a curate output folder?") from err
    order = [stage["id"] for job in stats.get("jobs", []) for stage in job["stages"]]
    tally = _Tally()
    names: set[str] = set()
    sources = [(p, False) for p in _shards(out_dir / "data")] + [(p, True) for p in _shards(out_dir / "rejected")]
    for path, rejected in sources:
        for doc in _read(path):
            meta = doc.metadata
            stage = str(meta.get("stage")) if rejected else None
            if "identity" in meta:
                groups = set(meta.get("identity") or {})
                subs = set(meta.get("identity_subgroups") or {})
                pronouns = meta.get("pronouns") or {}
            else:
                lex = load_lexicon(meta.get("language") or default_language, lexicon)
                if lex is None:
                    tally.unannotated += 1
                    groups, subs, pronouns = set(), set(), {}
                else:
                    note = lex.annotate(doc.text)
                    groups, subs, pronouns = set(note["identity"]), set(note["identity_subgroups"]), note["pronouns"]
            keys = groups | subs if subgroups else groups
            names |= keys
            tally.add(keys, stage, meta, pronouns)
    order += sorted(set(tally.removed) - set(order))
    group_names = sorted(n for n in names if "/" not in n)
    sub_names = sorted(n for n in names if "/" in n)
    args = (factor, confidence, min_docs)

    def row(stage: str, kind: str, removed: Counter[str], reached: Counter[str]) -> dict[str, Any]:
        result = {"stage": stage, "kind": kind, **_compare(removed, reached, group_names, *args)}
        if sub_names:
            result["subgroups"] = _compare(removed, reached, sub_names, *args)["groups"]
        return result

    rows = []
    reached = Counter(tally.kept)
    for stage in order:  # start from every document; each stage then removes its own from `reached`
        reached.update(tally.removed.get(stage, Counter()))
    for stage in order:
        removed = tally.removed.get(stage, Counter())
        if removed[ALL] or stage in tally.mitigated:
            entry = row(stage, "removed", removed, reached)
            if stage in tally.mitigated:
                entry["mitigated"] = tally.mitigated[stage][ALL]
                without = _compare(removed + tally.mitigated[stage], reached, group_names + sub_names, *args)
                entry["without_mitigation"] = without
            rows.append(entry)
        reached.subtract(removed)
    for stage in sorted(tally.tag_in):
        if not tally.removed.get(stage, Counter())[ALL]:  # a stage that filtered has its removal row already
            rows.append(row(stage, "tagged", tally.tag_hit[stage], tally.tag_in[stage]))
    all_removed = Counter({k: tally.total[k] - tally.kept[k] for k in tally.total})
    overall = row("(all stages)", "removed", all_removed, tally.total)
    if tally.mitigated_kept[ALL]:
        overall["without_mitigation"] = _compare(all_removed + tally.mitigated_kept, tally.total,
                                                 group_names + sub_names, *args)
    rows.append(overall)
    flags = [
        {"stage": r["stage"], "kind": r["kind"], "group": g, "rate": e["rate"], "base_rate": r["rate"],
         "ratio": e["ratio"], "ci": e["ci"], "docs": e["in"], "significant": e["significant"]}
        for r in rows for table in (r["groups"], r.get("subgroups", {})) for g, e in table.items() if e["flagged"]
    ]
    flags.sort(key=lambda f: -f["ratio"])
    return {
        "factor": factor,
        "confidence": confidence,
        "min_docs": min_docs,
        "documents": tally.total[ALL],
        "documents_kept": tally.kept[ALL],
        "unannotated": tally.unannotated,
        "stages": rows,
        "flags": flags,
        "representation": _representation(tally, group_names + sub_names),
        "pronouns": {when: _pronouns(tally.pronouns[when]) for when in ("before", "after")},
    }


def _representation(tally: _Tally, names: list[str]) -> dict[str, Any]:
    before, after = tally.total[ALL], tally.kept[ALL]
    out = {}
    for name in names:
        share_before = tally.total[name] / before if before else 0.0
        share_after = tally.kept[name] / after if after else 0.0
        out[name] = {
            "docs_before": tally.total[name],
            "docs_after": tally.kept[name],
            "share_before": round(share_before, 6),
            "share_after": round(share_after, 6),
            "change": round(share_after / share_before, 4) if share_before else None,
        }
    return out


def _pronouns(counts: Counter[str]) -> dict[str, Any]:
    male, female = counts["male"], counts["female"]
    return {
        "male": male,
        "female": female,
        "male_per_female": round(male / female, 4) if female else None,
        "docs_male": counts["docs_male"],
        "docs_female": counts["docs_female"],
    }


class DisparateImpactAudit(Stage):
    """Passes documents through; when the run finishes, writes the audit under `audit` in stats.json."""

    def __init__(
        self,
        factor: float = 1.25,
        confidence: float = 0.95,
        min_docs: int = 20,
        lexicon: str | list[str] | None = None,
        default_language: str = "en",
        subgroups: bool = True,
    ) -> None:
        if factor <= 1:
            raise ValueError(f"factor must be above 1 (a removal rate that many times the base rate), not {factor}")
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, not {confidence}")
        self.factor = factor
        self.confidence = confidence
        self.min_docs = min_docs
        self.lexicon = lexicon
        self.default_language = default_language
        self.subgroups = subgroups

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        yield from docs

    def summarize_run(self, out_dir: Path, stats: dict[str, Any]) -> dict[str, Any]:
        """Called by the executor once every job has finished."""
        return {
            "audit": audit_run(out_dir, stats, self.factor, self.confidence, self.min_docs, self.lexicon,
                               self.default_language, self.subgroups)
        }


def print_audit(audit: dict[str, Any], console: Any = None, top: int = 8) -> None:
    """The flagged groups per stage, and representation before and after, as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"disparate-impact audit (flag: removal rate > {audit['factor']}x the stage's rate)")
    for column in ("stage", "docs in", "removed", "groups over the factor: ratio [CI]"):
        table.add_column(column, justify="right" if column in ("docs in", "removed") else "left")
    for row in audit["stages"]:
        flagged = sorted(
            ((g, e) for t in (row["groups"], row.get("subgroups", {})) for g, e in t.items() if e["flagged"]),
            key=lambda item: -item[1]["ratio"],
        )
        text = ", ".join(f"{g} {e['ratio']:.2f} [{e['ci'][0]:.2f}-{e['ci'][1]:.2f}]" for g, e in flagged[:top])
        if len(flagged) > top:
            text += f", +{len(flagged) - top} more"
        label = row["stage"] if row["kind"] == "removed" else f"{row['stage']} (if it filtered)"
        table.add_row(label, str(row["in"]), f"{row['rate']:.1%}", text or "-")
    console.print(table)
    pron = audit["pronouns"]
    ratio = [pron[w]["male_per_female"] for w in ("before", "after")]
    shown = " -> ".join("n/a" if r is None else f"{r:.2f}" for r in ratio)
    console.print(f"gendered pronouns (he/him/his per she/her): {shown}; "
                  f"documents audited: {audit['documents']}, kept: {audit['documents_kept']}")
