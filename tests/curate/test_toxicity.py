"""Toxicity scorers and the ToxicityFilter stage, with the real shipped models and word lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.core.config import build_jobs, load_config
from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.executors import LocalExecutor
from corpus.core.io import read_documents, write_shard
from corpus.curate.classifier import train_classifier
from corpus.curate.toxicity import ProfanityCheckScorer, ToxicityFilter, WordListScorer, split_spans

CLEAN_SENTENCES = [
    "The river runs past the old mill and into the valley.",
    "Our garden grows tomatoes, beans and a few herbs every summer.",
    "The library opens at nine and closes at six on weekdays.",
    "Cyclists should check their brakes and tyres before a long ride.",
    "The museum shows paintings from the eighteenth century.",
]


def run(tmp_path: Path, docs: list[Document], stages: list[dict], name: str = "out") -> tuple[dict, Path]:
    folder = tmp_path / f"{name}-in"
    write_shard(folder / "a.jsonl", docs)
    config_path = tmp_path / f"{name}.yaml"
    config_path.write_text(json.dumps({"output_format": "jsonl", "stages": stages}))
    out = tmp_path / name
    stats = LocalExecutor(workers=1, progress=False).run(load_config(config_path), folder, out)
    return stats, out


def test_wordlist_matches_whole_words_after_normalisation_so_scunthorpe_is_clean() -> None:
    scorer = WordListScorer()  # LDNOOBW, the list C4 used
    clean = "Scunthorpe United beat Middlesex; the class analysed the assassin's cocktail and Penistone's shittah tree."
    assert scorer.find(clean, "en") == []
    assert scorer.score([clean], ["en"]) == [0.0]
    bad = "This is SHIT and ｆｕｃｋ that."
    assert sorted(m.term for m in scorer.find(bad, "en")) == ["fuck", "shit"]
    assert scorer.score([bad], ["en"])[0] == pytest.approx(2 / 6)


def test_wordlist_per_language_user_files_phrases_and_spaceless_languages(tmp_path: Path) -> None:
    (tmp_path / "fr.txt").write_text("# my list\nzut\nvieille branche\n", encoding="utf-8")
    (tmp_path / "ja.txt").write_text("ばか\n", encoding="utf-8")
    scorer = WordListScorer({"fr": str(tmp_path / "fr.txt"), "ja": str(tmp_path / "ja.txt")})
    assert [m.term for m in scorer.find("Zut alors, ma vieille branche !", "fr")] == ["zut", "vieille branche"]
    assert scorer.find("Zut alors", "en") == []  # English uses LDNOOBW, which lacks "zut"
    assert [m.term for m in scorer.find("あなたはばかです", "ja")] == ["ばか"]  # no word boundaries in Japanese
    with pytest.raises(CorpusError, match="missing.txt"):
        WordListScorer({"de": str(tmp_path / "missing.txt")})


def test_profanity_check_model_separates_offensive_from_clean() -> None:
    scores = ProfanityCheckScorer().score(["What the fuck is this shit", CLEAN_SENTENCES[0]], ["en", "en"])
    assert scores[0] > 0.9 > 0.2 > scores[1]


def test_english_model_leaves_other_languages_unjudged() -> None:
    stage = ToxicityFilter(scorer="profanity_check", threshold=0.5)
    french = Document("fr", "Quelle merde, putain de bordel de merde.", {"language": "fr"})
    english = Document("en", "What the fuck is this shit.", {"language": "en"})
    assert stage.keep_batch([french, english]) == [True, (False, "toxicity_high_score")]
    assert french.metadata["toxicity"]["unsupported_language"] == "fr"
    assert french.metadata["toxicity"]["spans"] == 0 and french.metadata["toxicity"]["toxic"] is False
    # The word lists do read French (LDNOOBW-fr).
    assert ToxicityFilter(scorer="wordlist", threshold=0).keep(Document("f", french.text, {"language": "fr"})) == (
        False, "toxicity_high_score")


def test_split_spans_sentences_and_paragraphs() -> None:
    text = "First one. Second one!  Third?\nNew line here\n\nLast paragraph."
    sentences = [text[s:e] for s, e in split_spans(text, "sentence")]
    assert sentences == ["First one.", "Second one!", "Third?", "New line here", "Last paragraph."]
    assert [text[s:e] for s, e in split_spans(text, "paragraph")][0] == "First one. Second one!  Third?"
    assert split_spans("   ", "document") == []


def test_one_bad_sentence_in_a_long_good_document_is_visible() -> None:
    bad = "What the fuck is this shit."
    text = " ".join(CLEAN_SENTENCES * 4) + " " + bad + " " + " ".join(CLEAN_SENTENCES)
    by_sentence = ToxicityFilter(scorer="profanity_check", granularity="sentence")
    doc = Document("d", text)
    assert by_sentence.keep(doc) is True  # tag only: nothing removed
    note = doc.metadata["toxicity"]
    assert note["score"] > 0.9 and note["toxic"] is True
    assert note["spans"] == 26 and note["flagged_spans"] == 1 and note["flagged_share"] == pytest.approx(1 / 26, 1e-3)
    start, end, _ = note["top_spans"][0]
    assert text[start:end] == bad
    whole = Document("w", text)
    ToxicityFilter(scorer="profanity_check", granularity="document").keep(whole)
    assert whole.metadata["toxicity"]["score"] < note["score"]


def test_threshold_removes_with_reason_and_tag_only_keeps_everything(tmp_path: Path) -> None:
    docs = [Document("clean", " ".join(CLEAN_SENTENCES)), Document("bad", "What the fuck is this shit. " * 3)]
    stats, out = run(tmp_path, docs, [{"stage": "toxicity", "threshold": 0.8}], "filter")
    assert [d.id for d in read_documents(out / "data")] == ["clean"]
    (rejected,) = list(read_documents(out / "rejected"))
    assert rejected.id == "bad" and rejected.metadata["stage"] == "toxicity"
    assert rejected.metadata["reason"] == "toxicity_high_score"
    assert rejected.metadata["toxicity"]["score"] > 0.8
    counters = stats["jobs"][0]["stages"][0]["counters"]
    assert counters["dropped/toxicity_high_score"] == 1 and counters["toxicity/toxic"] == 1

    stats, out = run(tmp_path, docs, [{"stage": "toxicity"}], "tag")
    kept = {d.id: d for d in read_documents(out / "data")}
    assert set(kept) == {"clean", "bad"}
    assert kept["bad"].metadata["toxicity"]["toxic"] is True and kept["clean"].metadata["toxicity"]["toxic"] is False


def test_max_flagged_share_drops_mostly_toxic_documents_only() -> None:
    stage = ToxicityFilter(scorer="wordlist", max_flagged_share=0.5)
    mostly = Document("m", "Shit. Fuck this. The park is nice.")
    once = Document("o", " ".join(CLEAN_SENTENCES) + " Shit.")
    assert stage.keep_batch([mostly, once]) == [(False, "toxicity_flagged_share"), True]


def test_hate_flag_needs_an_identity_term_and_a_toxic_span_in_one_sentence() -> None:
    stage = ToxicityFilter(scorer="wordlist")
    same = Document("same", "Muslims are fucking idiots.")
    apart = Document("apart", "Muslims pray five times a day. This fucking printer is broken again.")
    stage.keep_batch([same, apart])
    assert same.metadata["toxicity"]["hate"] is True and same.metadata["toxicity"]["hate_groups"] == ["religion"]
    assert apart.metadata["toxicity"]["hate"] is False
    dropping = ToxicityFilter(scorer="wordlist", drop_hate=True)
    assert dropping.keep_batch([Document("s", same.text), Document("a", apart.text)]) == [
        (False, "toxicity_hate"), True]


def test_mitigation_keeps_identity_terms_the_classifier_finds_harmless() -> None:
    history = "The United Negro College Fund has supported Black students since 1944."
    slur = "you stupid negro"
    plain = ToxicityFilter(scorer="wordlist", threshold=0)
    assert plain.keep_batch([Document("h", history), Document("s", slur)]) == [
        (False, "toxicity_high_score"), (False, "toxicity_high_score")]
    mitigated = ToxicityFilter(scorer="wordlist", threshold=0, mitigate=True)
    docs = [Document("h", history), Document("s", slur), Document("f", "Negro League players, fuck yeah.")]
    assert mitigated.keep_batch(docs) == [True, (False, "toxicity_high_score"), (False, "toxicity_high_score")]
    note = docs[0].metadata["toxicity"]
    assert note["mitigated"] is True and note["toxic"] is False and note["classifier_score"] <= 0.5
    assert "mitigated" not in docs[1].metadata["toxicity"]  # the classifier agrees with the list
    assert "mitigated" not in docs[2].metadata["toxicity"]  # "fuck" is no identity term


def _labelled(path: Path) -> Path:
    rows = []
    for i in range(150):
        rows.append({"text": f"you are a stupid idiot number {i} and I hate you", "label": "toxic"})
        rows.append({"text": f"thank you for the lovely garden photos number {i}", "label": "clean"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_fasttext_scorer_uses_a_trained_classifier(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    train_classifier(_labelled(tmp_path / "data.jsonl"), model, epoch=5, bucket=10_000)
    stage = ToxicityFilter(scorer="fasttext", model_path=str(model), granularity="document", threshold=0.5)
    assert stage.keep_batch([Document("a", "You stupid idiot, I hate you"), Document("b", "Lovely garden photos")]) == [
        (False, "toxicity_high_score"), True]
    # A model without the label stops the run with one clear error, rather than failing every document.
    stage = {"stage": "toxicity", "scorer": "fasttext", "model_path": str(model), "positive_label": "OFF"}
    with pytest.raises(CorpusError, match="no label __label__OFF.*clean, __label__toxic"):
        run(tmp_path, [Document("a", "some text")], [stage], "wrong-label")


def test_custom_scorer_class_plugs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_scorer.py").write_text(
        "class LengthScorer:\n"
        "    name = 'length'\n"
        "    default_threshold = 0.5\n"
        "    def __init__(self, scale=10):\n"
        "        self.scale = scale\n"
        "    def score(self, texts, languages):\n"
        "        return [min(1.0, len(t) / self.scale) for t in texts]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    stage = ToxicityFilter(scorer="my_scorer:LengthScorer", scorer_options={"scale": 20}, threshold=0.5)
    assert stage.keep_batch([Document("a", "short"), Document("b", "a much longer piece of text")]) == [
        True, (False, "toxicity_high_score")]


def test_bad_configuration_fails_at_load_time_with_a_clear_message(tmp_path: Path) -> None:
    def config(**params: object) -> dict:
        path = tmp_path / "bad.yaml"
        path.write_text(json.dumps({"stages": [{"stage": "toxicity", **params}]}))
        return load_config(path)

    with pytest.raises(CorpusError, match="unknown scorer 'perspective'"):
        build_jobs(config(scorer="perspective"))
    with pytest.raises(CorpusError, match="granularity must be one of"):
        build_jobs(config(granularity="word"))
    with pytest.raises(CorpusError, match="mitigate applies to the wordlist scorer"):
        build_jobs(config(mitigate=True))
    with pytest.raises(CorpusError, match="nope.bin: fastText model file does not exist"):
        build_jobs(config(scorer="fasttext", model_path=str(tmp_path / "nope.bin")))
    with pytest.raises(CorpusError, match="no parameter 'treshold'"):
        config(treshold=0.5)
