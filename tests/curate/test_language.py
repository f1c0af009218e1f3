from __future__ import annotations

from corpus.core.document import Document
from corpus.core.stage import RankContext
from corpus.curate.fasttext_model import import_fasttext, lid176_path
from corpus.curate.language import LanguageFilter


def test_shipped_lid176_model_identifies_languages() -> None:
    assert lid176_path().name == "lid.176.ftz"
    docs = [
        Document("en", "The weather was mild and the children walked to school along the river."),
        Document("fr", "Le temps était doux et les enfants marchaient vers l'école le long de la rivière."),
        Document("de", "Das Wetter war mild und die Kinder gingen am Fluss entlang zur Schule."),
        Document("es", "El tiempo era templado y los niños caminaban hacia la escuela junto al río."),
        Document("ja", "天気は穏やかで、子供たちは川沿いを歩いて学校へ行きました。"),
    ]
    ctx = RankContext()
    kept = list(LanguageFilter(languages=["en", "fr", "de", "ja"]).run(docs, ctx))
    assert {d.id: d.metadata["language"] for d in docs} == {"en": "en", "fr": "fr", "de": "de", "es": "es", "ja": "ja"}
    assert [d.id for d in kept] == ["en", "fr", "de", "ja"]
    assert ctx.stats["LanguageFilter"]["dropped/lang_not_allowed"] == 1
    assert all(0.5 < d.metadata["language_score"] <= 1 for d in docs)


def test_per_language_threshold() -> None:
    doc = Document("x", "The weather was mild and the children walked to school along the river.")
    assert list(LanguageFilter(threshold={"en": 1.01, "default": 0.1}).run([doc], RankContext())) == []


def test_installed_fasttext_can_train() -> None:
    assert callable(import_fasttext(need_training=True).train_supervised)


def test_per_paragraph_shares_and_dropping_foreign_paragraphs() -> None:
    from tests.conftest import EN, EN2, FR

    text = f"{EN}\n\n{FR}\n\n{EN2}\n\nMerci."
    doc = Document("mixed", text)
    annotate = LanguageFilter(languages=["en"], per_paragraph=True)
    assert annotate.keep(doc) is True
    shares = doc.metadata["languages"]
    assert set(shares) >= {"en", "fr"} and 0.25 < shares["fr"] < 0.45 and doc.text == text
    cleaned = Document("mixed", text)
    ctx = RankContext()
    kept = list(LanguageFilter(languages=["en"], per_paragraph=True, drop_paragraphs=True).run([cleaned], ctx))
    # The French paragraph goes; the two-word line is too short to judge and stays.
    assert kept[0].text == f"{EN}\n\n{EN2}\n\nMerci."
    assert kept[0].metadata["language_paragraphs_dropped"] == 1
    assert ctx.stats["LanguageFilter"]["paragraphs_dropped"] == 1


def test_a_user_supplied_fasttext_model_is_used(tmp_path) -> None:
    import json

    from corpus.curate.classifier import train_classifier

    records = [{"text": f"{w} {w} apple orange {i}", "label": "aa"} for i in range(50) for w in ("apple", "pear")]
    records += [{"text": f"{w} {w} stone river {i}", "label": "bb"} for i in range(50) for w in ("stone", "hill")]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    train_classifier(tmp_path / "train.jsonl", tmp_path / "lid.bin", valid_fraction=0, dim=10)
    stage = LanguageFilter(languages=["bb"], threshold=0.5, model_path=str(tmp_path / "lid.bin"))
    docs = [Document("a", "apple orange apple"), Document("b", "stone river stone")]
    assert [d.id for d in stage.run(docs, RankContext())] == ["b"]
    assert [d.metadata["language"] for d in docs] == ["aa", "bb"]


def test_cascade_lets_lingua_settle_what_fasttext_confuses() -> None:
    texts = ["Saya akan pergi ke pasar bersama nenek esok pagi.",  # Malay; lid.176 says Indonesian
             "Eg likar å gå tur i fjellet om hausten."]  # Nynorsk; lid.176 says Norwegian
    plain = LanguageFilter(threshold=0).predict(texts)
    assert [p[0] for p in plain] == ["id", "no"]
    # (top_k=1: lingua chooses within the confusable group only, which keeps the test's model loading small)
    cascade = LanguageFilter(threshold=0, cascade=True, cascade_top_k=1).predict(texts)
    assert [p[0] for p in cascade] == ["ms", "nn"]
    assert all(p[2] == "lingua" for p in cascade)
    # Confident, unconfusable predictions never reach lingua.
    confident = LanguageFilter(threshold=0, cascade=True).predict([EN_SENTENCE])
    assert confident[0][0] == "en" and len(confident[0]) == 2


EN_SENTENCE = "The weather was mild and the children walked to school along the river, talking about the summer."
