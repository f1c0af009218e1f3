"""A dedup test corpus whose truth is known by construction, and how to score a system's clusters on it.

Real texts of three kinds are the originals: news (AG News), documentation with code (the Vim manual, or
the AWS CLI's example pages: prose, shell commands and JSON output), and forum-like short posts (tweets).
Copies of some originals are planted with recorded edit operations: word deletions, insertions and
substitutions at a drawn rate, added site boilerplate lines, reordered paragraphs, truncation, exact
copies, and mixes. Truth: a planted copy is a duplicate of its original (and of the original's other
copies), whatever its shingle similarity. The originals' own near-duplicates (retweets, templated pages)
are labelled by word alignment (difflib's ratio on word lists >= NATURAL_RATIO: at most about 10% of the
words differ) among pairs any permissive search or any system proposes, and scored as the kind `natural`;
pairs of originals between AMBIGUOUS_RATIO and that (templated pages: "To add a tag to a role" and "To
add a tag to a SAML provider") are left out of the scores either way, and counted. Unrelated originals that
receive the same boilerplate are the hard negatives.

Two corpora never share source texts: `tuning` (AG News dev, Vim manual, OLID tweets) is what defaults are
chosen on; `heldout` (AG News test, AWS CLI examples, Davidson tweets) is built with another seed and
only measured.
"""

from __future__ import annotations

import difflib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORD = re.compile(r"[^\W_]+")
NATURAL_RATIO = 0.9
AMBIGUOUS_RATIO = 0.7
RATE_BANDS = [(0.0, 0.0), (0.0, 0.01), (0.01, 0.03), (0.03, 0.05), (0.05, 0.10), (0.10, 0.20), (0.20, 0.35)]
KINDS = ["exact", "substitute", "delete", "insert", "mixed", "boilerplate", "boilerplate+edits", "reorder",
         "reorder+edits", "truncate"]
AWSCLI_GLOB = "/root/.pyenv/versions/*/lib/python3*/site-packages/awscli/examples"
VIM_DOC = Path("/usr/share/vim/vim90/doc")

# Site boilerplate added to copies (and, as hard negatives, to unrelated originals): headers and footers of
# the kind extraction leaves in. Tuning and held-out corpora draw from different halves.
HEADERS = [
    "Posted by the editorial team in Technology. Updated on Monday. Reading time about five minutes.",
    "From the archive: originally published in the weekly bulletin. Filed under guides and reference.",
    "Skip to main content. Menu. Search this site. Sign in or register for a free account today.",
    "Breaking: the latest update from our correspondents. Follow us for live coverage of the story.",
    "You are here: Home > Community > Forums > General discussion > Read topic",
    "Documentation index | Previous page | Next page | Report an issue with this page | Edit on GitHub",
    "Sponsored content. Advertisement. Continue reading below the advertisement.",
    "Reply #4 on: Today at 10:32 am. Quote. Share. Report post. Permalink.",
]
FOOTERS = [
    "Subscribe to our newsletter to get the latest stories delivered to your inbox every morning. We respect "
    "your privacy and you can unsubscribe at any time. By continuing to use this site you agree to our cookies.",
    "Home | News | Sport | Business | Culture | Weather. Copyright 2024 The Daily Chronicle. All rights "
    "reserved. Terms of use. Privacy policy. Contact the newsroom. Advertise with us. Careers.",
    "This article was written with the help of our readers. If you spotted an error please let us know "
    "through the feedback form. Share this article on social media. Related stories are listed below.",
    "Was this page helpful? Yes No. Thanks for your feedback. Last updated three days ago.",
    "Like 12. Reply. Log in or sign up to reply to this topic. Forum rules apply.",
    "Copyright (c) The Authors. Licensed under the Apache License, Version 2.0. Built with Sphinx.",
    "Read more: top stories this week. Most popular. Most shared. Editor's picks. Newsletter sign-up.",
    "Powered by community software. All times are UTC. Contact us. Privacy. Terms and rules.",
]


# --- sources -------------------------------------------------------------------------------------


def words_of(text: str) -> list[str]:
    return WORD.findall(text.lower())


def agnews(data: Path, split: str) -> list[str]:
    path = data / "agnews" / f"{split}.jsonl"
    out = []
    for line in path.read_text().splitlines():
        text = json.loads(line)["text"].replace("\\", " ").replace(" #39;", "'")
        if len(text.split()) >= 15:
            out.append(text)
    return out


def tweets(path: Path, rng: random.Random) -> list[str]:
    """Forum-like posts: one to three consecutive tweets of a file (a short reply, or a few in a thread)."""
    texts = [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    posts, i = [], 0
    while i < len(texts):
        k = rng.choice([1, 1, 2, 3])
        post = "\n".join(t.strip() for t in texts[i : i + k])
        i += k
        if len(post.split()) >= 8:
            posts.append(post)
    return posts


def vim_pages(folder: Path, rng: random.Random) -> list[str]:
    """Vim help files cut at their `====` section rules into pages of about 60-600 words (prose and code)."""
    pages = []
    for path in sorted(folder.glob("*.txt")):
        raw = path.read_text(encoding="utf-8", errors="replace")
        for section in re.split(r"\n[=]{20,}\n", raw):
            blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", section) if b.strip()]
            page: list[str] = []
            target = rng.randint(60, 600)
            for block in blocks:
                page.append(block)
                if sum(len(b.split()) for b in page) >= target:
                    pages.append("\n\n".join(page))
                    page, target = [], rng.randint(60, 600)
            if sum(len(b.split()) for b in page) >= 40:
                pages.append("\n\n".join(page))
    return pages


def awscli_pages(folder: Path) -> list[str]:
    """The AWS CLI's example pages (reStructuredText: a title, prose, commands, JSON output)."""
    return [p.read_text(encoding="utf-8", errors="replace").strip() for p in sorted(folder.rglob("*.rst"))
            if len(p.read_text(encoding="utf-8", errors="replace").split()) >= 30]


def find_awscli() -> Path | None:
    found = sorted(Path("/").glob(AWSCLI_GLOB.lstrip("/")))
    return found[-1] if found else None


@dataclass
class Corpus:
    """Documents (dicts with id, text, metadata) and the truth: planted (original, copy) pairs with what was
    done to each copy, and labelled natural pairs."""

    docs: list[dict[str, Any]]
    planted: list[tuple[str, str]] = field(default_factory=list)
    natural: list[tuple[str, str]] = field(default_factory=list)
    ambiguous: list[tuple[str, str]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    source_text: dict[str, str] = field(default_factory=dict)  # originals as taken, before any wrapping

    @property
    def by_id(self) -> dict[str, dict[str, Any]]:
        return {d["id"]: d for d in self.docs}


def originals(split: str, data: Path, docs_folder: Path | None, rng: random.Random,
              sizes: dict[str, int]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(kind, text) originals of one split, distinct after word normalisation, and where each kind came from."""
    if split == "tuning":
        sources = {"news": "AG News dev", "docs": f"Vim manual ({docs_folder or VIM_DOC})",
                   "forum": "OLID tweets (train)"}
        news = agnews(data, "dev")
        docs = vim_pages(docs_folder or VIM_DOC, rng)
        forum = tweets(data / "olid_offenseval2019" / "train.jsonl", rng)
    else:
        folder = docs_folder or find_awscli()
        if folder is None:
            raise SystemExit("held-out corpus: no AWS CLI examples found; pass --heldout-docs FOLDER of *.rst")
        sources = {"news": "AG News test", "docs": f"AWS CLI examples ({folder})",
                   "forum": "Davidson et al. tweets"}
        news = agnews(data, "test")
        docs = awscli_pages(folder)
        forum = tweets(data / "hate_offensive_davidson" / "labeled_data.jsonl", rng)
    out: list[tuple[str, str]] = []
    for kind, texts in (("news", news), ("docs", docs), ("forum", forum)):
        seen: set[str] = set()
        distinct = []
        for text in texts:
            key = " ".join(words_of(text))
            if key and key not in seen:
                seen.add(key)
                distinct.append(text)
        rng.shuffle(distinct)
        out += [(kind, t) for t in distinct[: sizes[kind]]]
    return out, sources


# --- edits ---------------------------------------------------------------------------------------


def draw_rate(rng: random.Random, low: float = 0.0) -> float:
    bands = [b for b in RATE_BANDS[1:] if b[1] > low]
    a, b = rng.choice(bands)
    return rng.uniform(max(a, low), b)


def edit_words(text: str, rate: float, ops: list[str], vocabulary: list[str], rng: random.Random) -> tuple[str, int]:
    """`text` with about rate x words edited (each edit one of `ops`), line breaks kept; returns it and the count."""
    lines = [line.split(" ") for line in text.split("\n")]
    slots = [(i, j) for i, line in enumerate(lines) for j, w in enumerate(line) if w]
    edits = min(len(slots), max(1, round(rate * len(slots))))
    chosen = rng.sample(slots, edits)
    plan = {slot: rng.choice(ops) for slot in chosen}
    out = []
    for i, line in enumerate(lines):
        new: list[str] = []
        for j, w in enumerate(line):
            op = plan.get((i, j))
            if op == "substitute":
                new.append(rng.choice(vocabulary))
            elif op == "insert":
                new += [w, rng.choice(vocabulary)]
            elif op != "delete":
                new.append(w)
        out.append(" ".join(new))
    return "\n".join(out), edits


def reorder(text: str, rng: random.Random) -> str:
    """Paragraphs (or lines, or sentences) in another order."""
    for splitter, joiner in ((r"\n\s*\n", "\n\n"), (r"\n", "\n"), (r"(?<=[.!?])\s+", " ")):
        parts = [p for p in re.split(splitter, text) if p.strip()]
        if len(parts) >= 2:
            shuffled = parts[:]
            while shuffled == parts:
                rng.shuffle(shuffled)
            return joiner.join(shuffled)
    return text


def plant(original: str, kind: str, vocabulary: list[str], headers: list[str], footers: list[str],
          rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A copy of `original` made by `kind`, and the record of what was done: operations and the edit rate
    (words deleted, inserted, substituted, added or cut, over the original's words)."""
    n = len(original.split())
    record: dict[str, Any] = {"planted": kind}
    changed = 0
    text = original
    if kind in ("reorder", "reorder+edits"):
        text = reorder(text, rng)
        record["reordered"] = True
    if kind == "truncate":
        cut = max(1, round(draw_rate(rng, 0.01) * n))
        text = " ".join(text.split(" ")[: max(1, len(text.split(" ")) - cut)])
        changed += cut
        record["truncated_words"] = cut
    if kind in ("substitute", "delete", "insert", "mixed", "boilerplate+edits", "reorder+edits"):
        ops = [kind] if kind in ("substitute", "delete", "insert") else ["substitute", "delete", "insert"]
        rate = draw_rate(rng) if "+" not in kind else rng.uniform(0.0, 0.05)
        text, edits = edit_words(text, rate, ops, vocabulary, rng)
        changed += edits
        record["word_edits"] = edits
    if kind.startswith("boilerplate"):
        added = []
        if rng.random() < 0.7:
            header = rng.choice(headers)
            text = f"{header}\n\n{text}"
            added.append(header)
        if not added or rng.random() < 0.7:
            footer = rng.choice(footers)
            text = f"{text}\n\n{footer}"
            added.append(footer)
        words = sum(len(a.split()) for a in added)
        changed += words
        record["boilerplate_words"] = words
    record["edit_rate"] = round(changed / max(1, n), 4)
    return text, record


def rate_band(rate: float) -> str:
    if rate == 0:
        return "0%"
    for low, high in RATE_BANDS[1:]:
        if rate <= high:
            return f"{low * 100:g}-{high * 100:g}%"
    return f">{RATE_BANDS[-1][1] * 100:g}%"


def band_order() -> list[str]:
    return ["0%", *[f"{a * 100:g}-{b * 100:g}%" for a, b in RATE_BANDS[1:]], f">{RATE_BANDS[-1][1] * 100:g}%"]


def build(split: str, data: Path, seed: int, sizes: dict[str, int], docs_folder: Path | None = None,
          copy_share: float = 0.25, negative_share: float = 0.05) -> Corpus:
    """The corpus: originals, planted copies (a share of originals gets 1-3 copies of random kinds), and
    unrelated originals wrapped in the same boilerplate (negatives); natural pairs are labelled later."""
    rng = random.Random(seed)
    texts, sources = originals(split, data, docs_folder, rng, sizes)
    half = len(HEADERS) // 2
    side = slice(0, half) if split == "tuning" else slice(half, None)
    headers, footers = HEADERS[side], FOOTERS[side]
    docs = [{"id": f"{split[0]}{i:06d}", "text": t, "metadata": {"source": k, "planted": "original"}}
            for i, (k, t) in enumerate(texts)]
    vocabulary = [w for _, t in rng.sample(texts, min(2000, len(texts))) for w in t.split()[:50]]
    planted: list[tuple[str, str]] = []
    copies = []
    chosen = rng.sample(range(len(docs)), int(len(docs) * (copy_share + negative_share)))
    split_at = int(len(docs) * copy_share)
    for d in (docs[i] for i in chosen[:split_at]):
        for c in range(rng.choice([1, 1, 1, 2, 3])):
            kind = rng.choice(KINDS)
            text, record = plant(d["text"], kind, vocabulary, headers, footers, rng)
            copy = {"id": f"{d['id']}-c{c}", "text": text,
                    "metadata": {"source": d["metadata"]["source"], **record}}
            copies.append(copy)
            planted.append((d["id"], copy["id"]))
    # Negatives: unrelated originals that get the same site boilerplate as each other (and as copies).
    for d in (docs[i] for i in chosen[split_at:]):
        d["text"] = f"{rng.choice(headers)}\n\n{d['text']}\n\n{rng.choice(footers)}"
        d["metadata"]["boilerplate_negative"] = True
    source_text = {d["id"]: t for d, (_, t) in zip(docs, texts, strict=True)}
    docs += copies
    rng.shuffle(docs)
    return Corpus(docs, planted, [], [], sources, source_text)


# --- natural duplicates --------------------------------------------------------------------------


def collapsed_words(text: str) -> list[str]:
    """Words, a run of one repeated word counted once (tweets open with long runs of `@USER`)."""
    words = words_of(text)
    return [w for i, w in enumerate(words) if i == 0 or w != words[i - 1]]


def alignment_ratio(a: str, b: str) -> float:
    """Share of words two texts have in common in order (difflib's 2M/T on word lists): about 1 - edit rate."""
    x, y = collapsed_words(a), collapsed_words(b)
    if not x or not y:
        return 1.0 if x == y else 0.0
    matcher = difflib.SequenceMatcher(None, x, y, autojunk=False)
    if matcher.real_quick_ratio() < AMBIGUOUS_RATIO or matcher.quick_ratio() < AMBIGUOUS_RATIO:
        return matcher.quick_ratio()  # an upper bound, already too low to matter
    return matcher.ratio()


def permissive_candidates(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """Pairs of originals sharing any band of 3-word-gram MinHash, 50 bands of 2 rows: a pair whose 3-gram
    Jaccard is 0.3 turns up with probability 0.99 (a search for natural duplicates, not a judgement)."""
    import numpy as np

    from corpus.curate.minhash import band_keys, shingle_hashes, signatures

    ids = [d["id"] for d in docs]
    keys = []
    for start in range(0, len(docs), 512):
        chunk = [d["text"] for d in docs[start : start + 512]]
        hashes, offsets = shingle_hashes(chunk, 3)
        keys.append(band_keys(signatures(hashes, offsets, 100, seed=7), 50, 2))
    key = np.concatenate(keys)
    pairs: set[tuple[str, str]] = set()
    for b in range(key.shape[1]):
        buckets: dict[int, list[int]] = defaultdict(list)
        for i, k in enumerate(key[:, b].tolist()):
            buckets[k].append(i)
        for members in buckets.values():
            if 1 < len(members) <= 50:  # a giant bucket is a template every page shares, not a duplicate
                pairs.update((ids[a], ids[m]) for a in members for m in members if ids[a] < ids[m])
    return pairs


def label_natural(corpus: Corpus, extra: Iterable[tuple[str, str]] = ()) -> None:
    """Natural duplicate pairs among originals (and their copies' families), by word alignment of the
    originals as taken from their source (the boilerplate we wrapped some in does not make them alike)."""
    text = corpus.source_text
    base = [{"id": i, "text": t} for i, t in text.items()]
    family = {c: o for o, c in corpus.planted}
    candidates = permissive_candidates(base)
    for a, b in extra:  # what a system linked: judged the same way
        oa, ob = family.get(a, a), family.get(b, b)
        if oa != ob:
            candidates.add((min(oa, ob), max(oa, ob)))
    found, unsure = set(corpus.natural), set(corpus.ambiguous)
    for a, b in candidates - found - unsure:
        ratio = alignment_ratio(text[a], text[b])
        if ratio >= NATURAL_RATIO:
            found.add((a, b))
        elif ratio >= AMBIGUOUS_RATIO:
            unsure.add((a, b))
    corpus.natural, corpus.ambiguous = sorted(found), sorted(unsure)


# --- scoring -------------------------------------------------------------------------------------


def components(links: Iterable[tuple[str, str]]) -> list[set[str]]:
    """Connected components (of two or more) of the graph these links make."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        parent[find(a)] = find(b)
    groups: dict[str, set[str]] = defaultdict(set)
    for x in list(parent):
        groups[find(x)].add(x)
    return [g for g in groups.values() if len(g) > 1]


def pairs_of(clusters: Iterable[set[str]]) -> set[tuple[str, str]]:
    out = set()
    for c in clusters:
        members = sorted(c)
        out.update((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
    return out


def prf(tp: int, predicted: int, actual: int) -> dict[str, float]:
    p = tp / predicted if predicted else 1.0
    r = tp / actual if actual else 1.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4)}


def truth_clusters(corpus: Corpus) -> list[set[str]]:
    return components([*corpus.planted, *corpus.natural])


def score(corpus: Corpus, predicted: list[set[str]], kept: set[str] | None = None) -> dict[str, Any]:
    """Pair P/R/F1 over cluster pairs; recall of planted copies per kind, per edit-rate band and per source
    kind; what the false links were; and, with `kept`, removal precision (removed documents whose cluster
    keeps a true duplicate of them)."""
    truth = truth_clusters(corpus)
    truth_pairs = pairs_of(truth)
    ambiguous = {p for a, b in corpus.ambiguous for p in ((a, b), (b, a))} - truth_pairs
    all_predicted = pairs_of(predicted)
    predicted_pairs = all_predicted - ambiguous
    cluster_of = {x: i for i, c in enumerate(predicted) for x in c}
    by_id = corpus.by_id

    def linked(a: str, b: str) -> bool:
        return a in cluster_of and cluster_of.get(a) == cluster_of.get(b)

    by_kind: dict[str, list[bool]] = defaultdict(list)
    by_band: dict[str, list[bool]] = defaultdict(list)
    by_source: dict[str, list[bool]] = defaultdict(list)
    light: list[bool] = []
    for original, copy in corpus.planted:
        meta = by_id[copy]["metadata"]
        hit = linked(original, copy)
        by_kind[meta["planted"]].append(hit)
        by_band[rate_band(meta["edit_rate"])].append(hit)
        by_source[meta["source"]].append(hit)
        if meta["edit_rate"] <= 0.05:
            light.append(hit)
    by_kind["natural"] = [linked(a, b) for a, b in corpus.natural]
    truth_of = {x: i for i, c in enumerate(truth) for x in c}
    false = Counter()
    for a, b in predicted_pairs - truth_pairs:
        negative = any(by_id[x]["metadata"].get("boilerplate_negative") or "boilerplate" in
                       by_id[x]["metadata"]["planted"] for x in (a, b))
        false[f"{by_id[a]['metadata']['source']}{' (shared boilerplate)' if negative else ''}"] += 1
    out: dict[str, Any] = {
        "pairs": prf(len(predicted_pairs & truth_pairs), len(predicted_pairs), len(truth_pairs)),
        "recall_edits_le_5pct": round(sum(light) / max(1, len(light)), 4),
        "recall_by_kind": {k: {"pairs": len(v), "recall": round(sum(v) / len(v), 4)} for k, v in by_kind.items() if v},
        "recall_by_band": {b: {"pairs": len(by_band[b]), "recall": round(sum(by_band[b]) / len(by_band[b]), 4)}
                           for b in band_order() if by_band.get(b)},
        "recall_by_source": {k: round(sum(v) / len(v), 4) for k, v in by_source.items()},
        "false_pairs_by_source": dict(false),
        "ambiguous_pairs_linked": len(all_predicted & ambiguous),
    }
    if kept is not None:
        good = unsure = removed = 0
        for c in predicted:
            keepers = [x for x in c if x in kept]
            for x in c:
                if x in kept:
                    continue
                removed += 1
                if x in truth_of and truth_of[x] in {truth_of.get(k) for k in keepers}:
                    good += 1
                elif any((x, k) in ambiguous for k in keepers):
                    unsure += 1  # removed for an ambiguous look-alike: counted neither way
        should = sum(len(c) - 1 for c in truth)
        out["removals"] = {"removed": removed, "wrongly_removed": removed - good - unsure,
                           **prf(good, removed - unsure, should)}
    return out
