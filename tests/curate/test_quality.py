"""Gopher quality, Gopher repetition, C4 and FineWeb rules: each rule its own reason, signals stored."""

from __future__ import annotations

import random

import pytest

from corpus.core.document import Document
from corpus.core.stage import RankContext
from corpus.curate.c4 import C4QualityFilter
from corpus.curate.fineweb import FineWebQualityFilter
from corpus.curate.quality import GopherQualityFilter
from corpus.curate.repetition import GopherRepetitionFilter, NGrams
from tests.conftest import EN, EN2

PROSE = EN + "\n" + EN2  # two real paragraphs: passes every rule
LONG_WORDS = ["extraordinarily", "comprehensively", "telecommunications", "counterproductive", "misunderstandings",
              "responsibilities", "characteristically", "unquestionably", "interdisciplinary", "photosynthesis",
              "overwhelmingly", "incomprehensible", "entrepreneurship", "disproportionately", "recommendations",
              "infrastructure", "neighbourhoods", "accomplishments", "internationally", "constitutional"]


def decide(stage, text: str, language: str | None = "en") -> tuple[bool, str | None, Document]:
    doc = Document("d", text, {"language": language} if language else {})
    result = stage.keep(doc)
    keep, reason = result if isinstance(result, tuple) else (result, None)
    return keep, reason, doc


@pytest.mark.parametrize("stage", [GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(),
                                   FineWebQualityFilter()])
def test_good_prose_passes_every_filter_and_carries_its_signals(stage) -> None:
    keep, reason, doc = decide(stage, PROSE)
    assert keep, reason
    if not isinstance(stage, C4QualityFilter):
        assert doc.metadata["signals"]
    else:
        assert doc.metadata["signals"]["c4_sentences"] >= 5


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Too short to keep.", "gopher_short_doc"),
        (" ".join(["a", "an", "to", "of"] * 30), "gopher_below_avg_word_length"),
        (" ".join(["internationalisation", "characterisation"] * 40), "gopher_above_avg_word_length"),
        (EN + " #tag" * 40, "gopher_too_many_hashes"),
        (EN + " wait..." * 40, "gopher_too_many_ellipsis"),
        ("\n".join(f"- item number {i} in the list of the things we have" for i in range(30)),
         "gopher_too_many_bullets"),
        ("\n".join(f"and then the story of the river goes on {i}..." for i in range(30)),
         "gopher_too_many_end_ellipsis"),
        (EN + " " + " ".join(f"{i} {i * 7} = ;" for i in range(60)), "gopher_below_alpha_threshold"),
        (" ".join(["river", "bridge", "orchard", "morning", "water", "stone"] * 12), "gopher_too_few_stop_words"),
    ],
)
def test_gopher_quality_rules_each_have_a_reason(text: str, reason: str) -> None:
    keep, got, doc = decide(GopherQualityFilter(), text)
    assert (keep, got) == (False, reason)
    assert "gopher_words" in doc.metadata["signals"]  # the rejected document says what was measured


def test_stop_words_count_distinct_words_in_the_documents_language() -> None:
    text = " ".join(["the river and the bridge"] * 20)
    assert decide(GopherQualityFilter(), text)[0]
    assert decide(GopherQualityFilter(min_stop_words=3), text)[1] == "gopher_too_few_stop_words"
    # No list for German by default: the rule does not apply; with one, it does.
    german = " ".join(["Fluss Brücke Garten Morgen Wasser Stein"] * 12)
    assert decide(GopherQualityFilter(), german, "de")[0]
    assert not decide(GopherQualityFilter(stop_words={"de": ["der", "die", "und"]}), german, "de")[0]


def test_annotate_only_measures_everything_and_drops_nothing() -> None:
    keep, _, doc = decide(GopherQualityFilter(annotate_only=True), "Too short to keep.")
    assert keep
    assert {"gopher_words", "gopher_alpha_words_ratio", "gopher_stop_words"} <= set(doc.metadata["signals"])


def _walk(words: list[str], n: int) -> int:
    """The reference definition: left to right, a repeated n-gram counts and is jumped over."""
    seen, total, i = set(), 0, 0
    while i < len(words) - n + 1:
        gram = tuple(words[i:i + n])
        if gram in seen:
            total += sum(len(w) for w in gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return total


def test_ngram_statistics_match_the_reference_definition() -> None:
    rng = random.Random(0)
    for _ in range(300):
        vocab = ["a", "bb", "ccc", "dddd", "e"][: rng.randint(1, 5)]
        words = [rng.choice(vocab) for _ in range(rng.randint(0, 60))]
        grams = NGrams(words)
        for n in range(1, 11):
            assert grams.duplicate_chars(n) == _walk(words, n), (words, n)
            if len(words) >= n:
                tuples = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
                counts = {t: tuples.count(t) for t in tuples}
                top = max(counts.values())
                first = next(t for t in tuples if counts[t] == top)
                assert grams.top_count_chars(n, 1) == (sum(map(len, first)) + n - 1) * top


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("\n\n".join([EN, EN2, EN, EN]), "gopher_rep_dup_para_frac"),
        ("\n".join([EN, EN2, "Short line one.", "Short line two.", EN2]), "gopher_rep_dup_line_char_frac"),
        ("\n".join(["Buy cheap shoes now"] * 5 + [EN]), "gopher_rep_dup_line_frac"),
        (EN + " " + "cheap shoes " * 60, "gopher_rep_top_2_gram"),
        (" ".join(" ".join(f"w{i}x{j}" for j in range(36)) + " extraordinary celebrations everywhere tonight"
                  for i in range(10)), "gopher_rep_top_4_gram"),
    ],
)
def test_repetition_rules_each_have_a_reason(text: str, reason: str) -> None:
    keep, got, doc = decide(GopherRepetitionFilter(), text)
    assert (keep, got) == (False, reason)
    assert doc.metadata["signals"]


def test_duplicated_ngrams_rule() -> None:
    text = EN + " " + " ".join(f"so we walked along the river bank again {word}" for word in EN2.split()[:25])
    keep, reason, doc = decide(GopherRepetitionFilter(top_n_grams=[]), text)
    assert not keep and reason.startswith("gopher_rep_dup_") and reason.endswith("_gram")


def test_c4_removes_lines_and_drops_pages_by_rule() -> None:
    lines = [EN, "Please enable Javascript to view this page.", "Home | About", "This site uses cookies to help.",
             EN2, "Citations were added here.[1] It is the end of the story[citation needed]."]
    stage = C4QualityFilter()
    ctx = RankContext()
    kept = list(stage.run([Document("d", "\n".join(lines))], ctx))
    assert kept[0].text.split("\n") == [EN, EN2, "Citations were added here. It is the end of the story."]
    counters = ctx.stats["C4QualityFilter"].counters
    assert counters["c4/line_javascript"] == 1 and counters["c4/line_policy"] == 1
    assert counters["c4/line_no_terminal_punct"] == 1
    assert kept[0].metadata["signals"]["c4_lines_removed"] == 3
    assert decide(stage, PROSE + "\nLorem ipsum dolor sit amet, consectetur.")[1] == "c4_lorem_ipsum"
    assert decide(stage, PROSE + "\nThe code reads function f() { return 1; } in the text.")[1] == "c4_curly_bracket"
    assert decide(stage, "One sentence here. And another one.")[1] == "c4_too_few_sentences"
    # FineWeb's setting keeps lines without terminal punctuation.
    assert "Home page of the library" in decide(C4QualityFilter(filter_no_terminal_punct=False),
                                                PROSE + "\nHome page of the library")[2].text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("\n".join(["A line without an end mark that goes on and on"] * 2 + [f"Another one {i} w/o"
                                                                              for i in range(20)]),
         "fineweb_line_punct_ratio"),
        (EN + "\n" + "\n".join(f"Short line {i}." for i in range(10)), "fineweb_short_line_ratio"),
        (EN + "\n" + "\n".join(["The same line, repeated on the page."] * 2), "fineweb_char_dup_ratio"),
        ("\n".join([f"{a} {b}" for a, b in zip(LONG_WORDS[::2], LONG_WORDS[1::2], strict=True)]
                   + ["Internationalisation characterisations.", "Institutionalisation compartmentalisation."]),
         "fineweb_list_ratio"),
    ],
)
def test_fineweb_rules_each_have_a_reason(text: str, reason: str) -> None:
    assert decide(FineWebQualityFilter(), text)[:2] == (False, reason)
