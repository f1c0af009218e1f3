"""Choosing MinHash dedup's threshold on the tuning corpus: precision and recall against the threshold.

    python benchmarks/dedup_tune.py [DATA] [--plot docs/dedup_threshold.png]

Builds the tuning corpus of `benchmarks/dedup_corpus.py` (never the held-out one) and replays the stage's
steps in memory for each threshold: the same shingles, signatures and band keys (`corpus.curate.minhash`),
the bands `choose_bands(threshold, 128, 0.99)` picks, the same candidate edges (each bucket member to the
bucket's first and previous member), then the verification rule, exact dedup, and connected components.
Two rules are compared: Jaccard of all shingles (the previous rule) and Jaccard of distinctive shingles
(those in fewer than `common_df` = 50 documents), each also accepting all-shingle Jaccard >= 0.75. Prints a
table and, last, one JSON object; `--plot` writes the PNG that docs/dedup.md shows.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import dedup_corpus as dc
import numpy as np

from corpus.curate.dedup import text_hash
from corpus.curate.minhash import (
    VERIFY_RECALL,
    band_keys,
    choose_bands,
    distinct_per_document,
    shingle_hashes,
    signatures,
)

THRESHOLDS = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85]
FULL_THRESHOLD = 0.75
COMMON_DF = 50


def prepare(corpus: dc.Corpus) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Each document's distinct shingle hashes, its 128 signature values, and every shingle's document count."""
    texts = [d["text"] for d in corpus.docs]
    sets, sigs = [], []
    for start in range(0, len(texts), 256):
        hashes, offsets = shingle_hashes(texts[start : start + 256], 5)
        sigs.append(signatures(hashes, offsets, 128, 1))
        distinct, counts = distinct_per_document(hashes, offsets)
        ends = np.cumsum(counts)
        sets += [distinct[e - c : e] for c, e in zip(counts.tolist(), ends.tolist(), strict=True)]
    everything, df = np.unique(np.concatenate(sets), return_counts=True)
    return sets, np.concatenate(sigs), everything, df


def candidates(sigs: np.ndarray, bands: int, rows: int) -> set[tuple[int, int]]:
    keys = band_keys(sigs, bands, rows)
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, k in enumerate(keys[:, band].tolist()):
            buckets[k].append(i)
        for members in buckets.values():
            for j in range(1, len(members)):
                pairs.add((members[0], members[j]))
                pairs.add((members[j - 1], members[j]))
    return pairs


def similarities(pairs: set[tuple[int, int]], sets: list[np.ndarray], common: np.ndarray,
                 memo: dict[tuple[int, int], tuple[float, float]]) -> dict[tuple[int, int], tuple[float, float]]:
    """(distinctive-shingle Jaccard, all-shingle Jaccard) per pair, as `ExactJaccard` computes them."""
    for a, b in pairs:
        if (a, b) in memo:
            continue
        x, y = sets[a], sets[b]
        inter = len(np.intersect1d(x, y, assume_unique=True))
        full = inter / (len(x) + len(y) - inter) if len(x) and len(y) else 0.0
        xr, yr = x[~np.isin(x, common)], y[~np.isin(y, common)]
        if len(xr) or len(yr):
            inter = len(np.intersect1d(xr, yr, assume_unique=True))
            distinct = inter / (len(xr) + len(yr) - inter)
        else:
            distinct = full
        memo[(a, b)] = (distinct, full)
    return memo


def sweep(corpus: dc.Corpus) -> list[dict]:
    sets, sigs, everything, df = prepare(corpus)
    common = everything[df >= COMMON_DF]
    ids = [d["id"] for d in corpus.docs]
    exact: dict[int, list[str]] = defaultdict(list)
    for d in corpus.docs:
        exact[text_hash(d["text"])].append(d["id"])
    exact_links = [(m[0], x) for m in exact.values() for x in m[1:]]
    memo: dict[tuple[int, int], tuple[float, float]] = {}
    rows = []
    for threshold in THRESHOLDS:
        bands, r = choose_bands(threshold, 128, VERIFY_RECALL)
        pairs = candidates(sigs, bands, r)
        sims = similarities(pairs, sets, common, memo)
        for rule in ("distinctive", "all"):
            which = 0 if rule == "distinctive" else 1
            links = [(ids[a], ids[b]) for (a, b) in pairs
                     if sims[(a, b)][which] >= threshold or sims[(a, b)][1] >= FULL_THRESHOLD]
            scored = dc.score(corpus, dc.components(links + exact_links))
            rows.append({"threshold": threshold, "rule": rule, "bands": bands, "rows": r, "candidates": len(pairs),
                         **scored["pairs"], "recall_le_5pct": scored["recall_edits_le_5pct"]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def plot(rows: list[dict], path: Path, chosen: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"distinctive": "-", "all": ":"}
    for rule, style in styles.items():
        sub = [r for r in rows if r["rule"] == rule]
        x = [r["threshold"] for r in sub]
        label = "distinctive shingles" if rule == "distinctive" else "all shingles (previous rule)"
        ax.plot(x, [r["precision"] for r in sub], style, color="tab:blue", marker="o", ms=3,
                label=f"precision, {label}")
        ax.plot(x, [r["recall"] for r in sub], style, color="tab:orange", marker="o", ms=3, label=f"recall, {label}")
        ax.plot(x, [r["recall_le_5pct"] for r in sub], style, color="tab:green", marker="o", ms=3,
                label=f"recall <= 5% edits, {label}")
    ax.axvline(chosen, color="grey", lw=0.8)
    ax.axhline(0.99, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("verification threshold (word 5-gram Jaccard; bands follow from it)")
    ax.set_ylabel("pair precision / recall")
    ax.set_title("MinHash dedup on the tuning corpus (truth by construction)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=6.5, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--sizes", type=lambda s: dict(zip(("news", "docs", "forum"), map(int, s.split(",")),
                                                           strict=True)), default={"news": 4000, "docs": 2000,
                                                                                   "forum": 3000})
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chosen", type=float, default=0.5)
    parser.add_argument("--plot", type=Path, default=None)
    args = parser.parse_args()
    corpus = dc.build("tuning", args.data, args.seed, args.sizes)
    dc.label_natural(corpus)
    rows = sweep(corpus)
    if args.plot:
        plot(rows, args.plot, args.chosen)
    ok = [r for r in rows if r["rule"] == "distinctive" and r["precision"] >= 0.99]
    best = max(ok, key=lambda r: r["f1"]) if ok else None
    print(json.dumps({"rows": rows, "best_f1_with_precision_0.99": best}))


if __name__ == "__main__":
    main()
