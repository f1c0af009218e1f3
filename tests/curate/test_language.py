from __future__ import annotations

from corpus.document import Document
from corpus.stage import RankContext
from curate.fasttext_model import import_fasttext, lid176_path
from curate.language import LanguageFilter


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
