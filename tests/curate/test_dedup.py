"""Dedup stages end to end through the engine: planted duplicates found, keepers, rejects, resume,
worker-count independence, incremental runs against a saved index, URL and paragraph dedup."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from corpus.core.config import _strip_lines, build_jobs, normalise, validate
from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.executors import LocalExecutor
from corpus.core.io import read_documents, write_shard
from corpus.curate.dedup import normalise_url

WORDS = (
    "river mill library garden tomato bread oven flour winter summer bicycle chain tyre brake road city market "
    "stone bridge tower castle window door table chair lamp candle paper letter story song music dance child "
    "mother father friend teacher doctor farmer baker sailor ship harbour island mountain valley forest meadow"
).split()


def text(rng: random.Random, words: int = 160) -> str:
    return " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(words))


def substitute(rng: random.Random, source: str, count: int) -> str:
    """A near copy with `count` words replaced (each replacement changes up to 5 word 5-grams)."""
    words = source.split()
    for index in rng.sample(range(len(words)), count):
        words[index] = f"new{rng.randrange(10**6)}"
    return " ".join(words)


def write_shards(folder: Path, docs: list[Document], shards: int = 3) -> Path:
    for s in range(shards):
        write_shard(folder / f"part-{s}.jsonl", docs[s::shards])
    return folder


def global_order(docs: list[Document], shards: int = 3) -> list[str]:
    """The order the engine numbers documents in: shard by shard, then position."""
    return [d.id for s in range(shards) for d in docs[s::shards]]


def pipeline(*stages: dict[str, Any]) -> dict[str, Any]:
    config = _strip_lines(normalise({"stages": [dict(s) for s in stages]}))
    validate(config)
    return config


def run(config: dict[str, Any], inp: Path, out: Path, workers: int = 1) -> dict[str, Any]:
    return LocalExecutor(workers=workers, progress=False).run(config, inp, out)


def kept(out: Path) -> dict[str, Document]:
    return {d.id: d for d in read_documents(out / "data")}


def rejected(out: Path) -> dict[str, Document]:
    return {d.id: d for d in read_documents(out / "rejected")}


def counters(stats: dict[str, Any], stage_id: str) -> dict[str, float]:
    return next(s["counters"] for job in stats["jobs"] for s in job["stages"] if s["id"] == stage_id)


def planted_corpus(seed: int = 0) -> tuple[list[Document], list[set[str]]]:
    """20 unrelated documents; 5 of them get near copies (Jaccard about 0.9), two clusters have 3 members."""
    rng = random.Random(seed)
    docs = [Document(f"doc{i:02d}", text(rng)) for i in range(20)]
    clusters = []
    for i in range(5):
        copies = [Document(f"doc{i:02d}-copy{c}", substitute(rng, docs[i].text, 1 + c)) for c in range(1 + (i < 2))]
        docs += copies
        clusters.append({f"doc{i:02d}"} | {c.id for c in copies})
    rng.shuffle(docs)
    return docs, clusters


# --- MinHash -------------------------------------------------------------------------------------


def test_minhash_removes_planted_near_duplicates_and_says_which_it_kept(tmp_path: Path) -> None:
    docs, clusters = planted_corpus()
    inp = write_shards(tmp_path / "in", docs)
    stats = run(pipeline({"stage": "minhash_dedup", "id": "near"}), inp, tmp_path / "out")
    order = global_order(docs)
    keepers = {min(c, key=order.index): c for c in clusters}
    removed = {member: keeper for keeper, c in keepers.items() for member in c - {keeper}}
    out_kept, out_rejected = kept(tmp_path / "out"), rejected(tmp_path / "out")
    assert set(out_kept) == {d.id for d in docs} - set(removed)
    assert {i: d.metadata["duplicate_of"] for i, d in out_rejected.items()} == removed
    assert {d.metadata["reason"] for d in out_rejected.values()} == {"near_duplicate"}
    for keeper, members in keepers.items():
        assert out_kept[keeper].metadata["minhash_cluster_id"] == keeper
        assert out_kept[keeper].metadata["minhash_cluster_size"] == len(members)
    assert all(d.metadata["minhash_cluster_size"] > 1 for d in out_rejected.values())
    assert "minhash_cluster_id" not in out_kept["doc19"].metadata  # unrelated documents are untouched
    near = counters(stats, "near")
    assert near["dropped/near_duplicate"] == len(removed) == 7
    assert near["clusters/clusters"] == 5 and near["clusters/documents"] == len(docs)


@pytest.mark.parametrize(("keep", "winner"), [("longest", "long"), ("quality", "best")])
def test_keeper_policy_is_configurable(tmp_path: Path, keep: str, winner: str) -> None:
    rng = random.Random(1)
    base = text(rng)
    docs = [
        Document("first", base, {"quality_score": 0.2}),
        Document("long", base + " " + text(rng, 12), {"quality_score": 0.1}),
        Document("best", substitute(rng, base, 1), {"quality_score": 0.9}),
        Document("other", text(rng)),
    ]
    inp = write_shards(tmp_path / "in", docs, shards=2)
    run(pipeline({"stage": "minhash_dedup", "id": "near", "keep": keep}), inp, tmp_path / "out")
    assert set(kept(tmp_path / "out")) == {winner, "other"}
    assert {d.metadata["duplicate_of"] for d in rejected(tmp_path / "out").values()} == {winner}


def test_result_does_not_depend_on_workers_and_an_interrupted_run_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs, _ = planted_corpus(seed=2)
    inp = write_shards(tmp_path / "in", docs, shards=4)
    config = pipeline({"stage": "exact_dedup", "id": "exact"}, {"stage": "minhash_dedup", "id": "near"})

    def outcome(out: Path) -> tuple[list, list]:
        return ([d.to_record() for d in read_documents(out / "data")],
                [d.to_record() for d in read_documents(out / "rejected")])

    run(config, inp, tmp_path / "two", workers=2)
    run(config, inp, tmp_path / "one", workers=1)
    assert outcome(tmp_path / "two") == outcome(tmp_path / "one")

    from corpus.curate.dedup_index import ClusterFilter

    original = ClusterFilter.run

    def interrupted(self, docs, ctx):  # the run is killed while rank 2 filters
        if self.id == "near" and ctx.rank == 2:
            raise KeyboardInterrupt
        return original(self, docs, ctx)

    monkeypatch.setattr(ClusterFilter, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(config, inp, tmp_path / "resumed")
    monkeypatch.setattr(ClusterFilter, "run", original)
    stats = run(config, inp, tmp_path / "resumed")
    assert stats["resumed_ranks"] == 4 + 4 + 2  # exact signatures, exact filter + near signatures, near 0-1
    assert outcome(tmp_path / "resumed") == outcome(tmp_path / "one")


def test_verification_drops_candidates_below_the_threshold(tmp_path: Path) -> None:
    rng = random.Random(3)
    base = text(rng)
    docs = [Document("a", base), Document("close", substitute(rng, base, 1)),
            Document("loose", substitute(rng, base, 9)), Document("other", text(rng))]
    inp = write_shards(tmp_path / "in", docs, shards=2)
    loose = {"stage": "minhash_dedup", "id": "near", "num_perm": 64, "bands": 32, "rows": 2, "threshold": 0.75}
    run(pipeline({**loose, "verify": False}), inp, tmp_path / "plain")
    assert set(kept(tmp_path / "plain")) == {"a", "other"}  # the loose bands make "loose" a duplicate
    stats = run(pipeline({**loose, "verify": True}), inp, tmp_path / "verified")
    assert set(kept(tmp_path / "verified")) == {"a", "loose", "other"}
    assert counters(stats, "near")["clusters/false_positive_pairs"] >= 1


def test_edited_copies_are_caught_but_posts_sharing_only_boilerplate_are_not(tmp_path: Path) -> None:
    """The default rule: a copy with 4% of its words replaced (5-gram Jaccard about 0.6, below the old 0.75)
    is a duplicate; 60 different short posts wrapped in the same long site header and footer (5-gram Jaccard
    about 0.6 between any two) are not, because shingles found in 50+ documents do not count."""
    rng = random.Random(11)
    header, footer = text(rng, 60), text(rng, 60)
    posts = [Document(f"post{i:02d}", f"{header}\n\n{text(rng, 30)}\n\n{footer}") for i in range(60)]
    article = text(rng, 125)
    docs = [Document("article", article), Document("edited", substitute(rng, article, 5)), *posts]
    inp = write_shards(tmp_path / "in", docs)
    stage = {"stage": "minhash_dedup", "id": "near"}
    stats = run(pipeline(stage), inp, tmp_path / "default")
    assert set(rejected(tmp_path / "default")) == {"edited"}
    assert rejected(tmp_path / "default")["edited"].metadata["duplicate_of"] == "article"
    assert counters(stats, "near")["clusters/false_positive_pairs"] > 0  # the posts were candidates, rejected
    run(pipeline({**stage, "common_df": None}), inp, tmp_path / "all-shingles")
    assert len(rejected(tmp_path / "all-shingles")) > 50  # counting boilerplate shingles merges the posts
    run(pipeline({**stage, "threshold": 0.75, "common_df": None, "bands": 16, "rows": 6}), inp, tmp_path / "old")
    assert "edited" in kept(tmp_path / "old")  # what the previous default (verified Jaccard 0.75) missed


def test_text_without_spaces_uses_character_shingles(tmp_path: Path) -> None:
    rng = random.Random(4)
    han = "".join(chr(0x4E00 + rng.randrange(3000)) for _ in range(400))
    near = han[:200] + "的" + han[201:]
    docs = [Document("zh-1", han, {"language": "zh"}), Document("zh-2", near, {"language": "zh"}),
            Document("en-1", text(rng), {"language": "en"})]
    inp = write_shards(tmp_path / "in", docs, shards=1)
    run(pipeline({"stage": "minhash_dedup", "id": "near"}), inp, tmp_path / "auto")
    assert set(kept(tmp_path / "auto")) == {"zh-1", "en-1"}
    run(pipeline({"stage": "minhash_dedup", "id": "near", "shingle": "word"}), inp, tmp_path / "words")
    assert set(kept(tmp_path / "words")) == {"zh-1", "zh-2", "en-1"}


def test_incremental_dedup_against_a_saved_index(tmp_path: Path) -> None:
    rng = random.Random(5)
    old = [Document(f"old{i}", text(rng)) for i in range(6)]
    index = str(tmp_path / "index")
    config = pipeline({"stage": "exact_dedup", "id": "exact", "index_dir": index},
                      {"stage": "minhash_dedup", "id": "near", "index_dir": index})
    run(config, write_shards(tmp_path / "crawl1", old), tmp_path / "run1")
    fresh = text(rng)
    crawl2 = [Document("new-exact", old[1].text), Document("new-near", substitute(rng, old[2].text, 1)),
              Document("new-1", fresh), Document("new-1-copy", substitute(rng, fresh, 1)),
              Document("new-2", text(rng))]
    stats = run(config, write_shards(tmp_path / "crawl2", crawl2, shards=2), tmp_path / "run2")
    assert global_order(crawl2, shards=2).index("new-1") < global_order(crawl2, shards=2).index("new-1-copy")
    assert set(kept(tmp_path / "run2")) == {"new-1", "new-2"}
    dups = {i: (d.metadata["reason"], d.metadata["duplicate_of"]) for i, d in rejected(tmp_path / "run2").items()}
    assert dups == {"new-exact": ("exact_duplicate", "old1"), "new-near": ("near_duplicate", "old2"),
                    "new-1-copy": ("near_duplicate", "new-1")}
    assert counters(stats, "near")["clusters/index_documents"] == 6
    # The second run's kept documents joined the index: a third crawl is checked against both.
    crawl3 = [Document("again", substitute(rng, fresh, 2)), Document("again-old", old[4].text.upper()),
              Document("new-3", text(rng))]
    run(config, write_shards(tmp_path / "crawl3", crawl3, shards=1), tmp_path / "run3")
    assert set(kept(tmp_path / "run3")) == {"new-3"}
    assert {d.metadata["duplicate_of"] for d in rejected(tmp_path / "run3").values()} == {"new-1", "old4"}
    assert len(list((tmp_path / "index" / "minhash").glob("minhash-*"))) == 3
    other = pipeline({"stage": "minhash_dedup", "id": "near", "index_dir": index, "ngram": 3})
    with pytest.raises(CorpusError, match="built with"):
        run(other, tmp_path / "crawl3", tmp_path / "run4")


# --- exact and URL -------------------------------------------------------------------------------


def test_exact_dedup_ignores_case_and_spacing_and_tags_clusters(tmp_path: Path) -> None:
    rng = random.Random(6)
    a, b = text(rng, 40), text(rng, 40)
    docs = [Document("a1", a), Document("b1", b), Document("a2", "  " + a.upper().replace(" ", "\n", 3)),
            Document("a3", a), Document("c", text(rng, 40))]
    inp = write_shards(tmp_path / "in", docs, shards=2)
    run(pipeline({"stage": "exact_dedup", "id": "exact"}), inp, tmp_path / "out")
    order = global_order(docs, shards=2)
    first = min(("a1", "a2", "a3"), key=order.index)
    assert set(kept(tmp_path / "out")) == {first, "b1", "c"}
    assert {d.metadata["duplicate_of"] for d in rejected(tmp_path / "out").values()} == {first}
    assert kept(tmp_path / "out")[first].metadata["exact_cluster_size"] == 3


def test_url_dedup_normalises_urls_and_keeps_the_longest_fetch(tmp_path: Path) -> None:
    assert normalise_url("HTTP://Example.com:80/a/b/?utm_source=x&z=1&a=2#top") == "http://example.com/a/b?a=2&z=1"
    assert normalise_url("https://example.com") == normalise_url("https://EXAMPLE.com/")
    rng = random.Random(7)
    docs = [Document("short", text(rng, 20), {"url": "https://site.test/page?utm_medium=mail"}),
            Document("full", text(rng, 80), {"url": "https://SITE.test/page/#comments"}),
            Document("other", text(rng, 20), {"url": "https://site.test/other"}),
            Document("no-url", text(rng, 20))]
    inp = write_shards(tmp_path / "in", docs, shards=2)
    run(pipeline({"stage": "url_dedup", "id": "urls", "keep": "longest"}), inp, tmp_path / "out")
    assert set(kept(tmp_path / "out")) == {"full", "other", "no-url"}
    assert rejected(tmp_path / "out")["short"].metadata["reason"] == "url_duplicate"


# --- paragraphs ----------------------------------------------------------------------------------

FOOTER = "Home | About us | Contact\nCopyright 2024 Example Media. All rights reserved."


def test_paragraph_dedup_removes_boilerplate_repeated_across_pages(tmp_path: Path) -> None:
    rng = random.Random(8)
    bodies = [text(rng, 30) for _ in range(4)]
    docs = [Document(f"page{i}", f"{body}\n\n{FOOTER}") for i, body in enumerate(bodies[:3])]
    docs.append(Document("shared-two", f"{bodies[3]}\n\n{bodies[0]}"))  # quotes page0's body once
    docs.append(Document("only-footer", FOOTER.replace("2024", "2025")))  # digits do not matter
    inp = write_shards(tmp_path / "in", docs, shards=2)
    order = global_order(docs, shards=2)
    stats = run(pipeline({"stage": "paragraph_dedup", "id": "para"}), inp, tmp_path / "first")
    out = kept(tmp_path / "first")
    footer_owner = min(["page0", "page1", "page2", "only-footer"], key=order.index)
    assert [i for i, d in out.items() if FOOTER.split("\n")[0] in d.text] == [footer_owner]
    body_owner = min(["page0", "shared-two"], key=order.index)
    assert [i for i in ("page0", "shared-two") if bodies[0] in out[i].text] == [body_owner]
    assert counters(stats, "para")["paragraphs_removed"] == 4

    run(pipeline({"stage": "paragraph_dedup", "id": "para", "keep_first": False, "min_docs": 3}),
        inp, tmp_path / "strip")
    out = kept(tmp_path / "strip")
    assert all("Copyright" not in d.text for d in out.values())
    assert bodies[0] in out["page0"].text and bodies[0] in out["shared-two"].text  # only in 2 documents
    assert rejected(tmp_path / "strip")["only-footer"].metadata["reason"] == "paragraph_duplicate_empty"


def test_line_dedup_and_bad_parameters(tmp_path: Path) -> None:
    docs = [Document("a", "Menu\nfirst story line\nShare this"), Document("b", "Menu\nsecond story\nShare this")]
    inp = write_shards(tmp_path / "in", docs, shards=2)
    run(pipeline({"stage": "paragraph_dedup", "id": "lines", "unit": "line"}), inp, tmp_path / "out")
    assert kept(tmp_path / "out")["b"].text == "second story"
    with pytest.raises(CorpusError, match="bands"):
        build_jobs(pipeline({"stage": "minhash_dedup", "bands": 4}))
    with pytest.raises(CorpusError, match="keep must be one of"):
        build_jobs(pipeline({"stage": "exact_dedup", "keep": "random"}))


# --- the command line ----------------------------------------------------------------------------


def test_dedup_preset_and_plan_from_the_command_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from corpus.cli import app

    docs, clusters = planted_corpus(seed=9)
    docs.append(Document("exact-copy", docs[0].text))
    inp = write_shards(tmp_path / "in", docs)
    runner = CliRunner()
    result = runner.invoke(app, ["curate", str(inp), "-o", str(tmp_path / "plan"), "--preset", "dedup", "--plan"])
    assert result.exit_code == 0, result.output
    assert "35 bands x 3 rows" in result.output and "J=0.50" in result.output
    assert "memory" in result.output and not (tmp_path / "plan").exists()
    result = runner.invoke(app, ["curate", str(inp), "-o", str(tmp_path / "out"), "--preset", "dedup",
                                 "--workers", "1"])
    assert result.exit_code == 0, result.output
    removed = {d.metadata["reason"] for d in rejected(tmp_path / "out").values()}
    assert removed == {"exact_duplicate", "near_duplicate"}
    assert len(kept(tmp_path / "out")) == 20
