"""Shared fixtures: small corpora written here, never downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus.core.document import Document
from corpus.core.io import write_shard

EN = (
    "The village library opened its doors in the spring of that year, and the people who lived nearby came "
    "to borrow books about gardening, history and the stars. The librarian kept a careful record of every loan "
    "and noticed that the most popular books were the ones with pictures of the river and the old mill. "
    "Children came after school to read with their friends, and on Saturday mornings there was a story hour "
    "that filled the small room with laughter."
)
EN2 = (
    "Cycling to work has become common in many cities because it is cheap, healthy and often faster than "
    "driving through traffic. A good bicycle needs little maintenance: the chain should be cleaned and oiled "
    "every few weeks, the tyres kept at the right pressure, and the brakes checked before long rides. Many "
    "riders also carry a small pump and a spare tube so that a puncture does not end the journey."
)
FR = (
    "La bibliothèque du village a ouvert ses portes au printemps, et les habitants sont venus emprunter des "
    "livres sur le jardinage, l'histoire et les étoiles. La bibliothécaire tenait un registre précis de chaque "
    "prêt et remarquait que les livres les plus demandés étaient ceux qui montraient la rivière et le vieux moulin. "
    "Le samedi matin, les enfants venaient écouter des histoires et la petite salle se remplissait de rires."
)
DE = (
    "Die Bibliothek des Dorfes öffnete im Frühling ihre Türen, und die Menschen aus der Umgebung kamen, um "
    "Bücher über Gartenarbeit, Geschichte und die Sterne auszuleihen. Die Bibliothekarin führte ein genaues "
    "Verzeichnis über jede Ausleihe und bemerkte, dass die beliebtesten Bücher jene mit Bildern vom Fluss waren. "
    "Am Samstagmorgen lasen die Kinder gemeinsam Geschichten vor, und der kleine Raum war voller Lachen."
)


def make_docs() -> list[Document]:
    return [
        Document("en-1", EN, {"url": "http://example.test/library"}),
        Document("fr-1", FR),
        Document("en-dup", EN),  # exact duplicate of en-1
        Document("short", "Too short to keep."),
        Document("de-1", DE),
        Document("en-2", EN2),
    ]


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    """Three input shards in three formats, six documents, one exact duplicate."""
    folder = tmp_path / "in"
    docs = make_docs()
    write_shard(folder / "a.jsonl", docs[:2])
    write_shard(folder / "b.jsonl.gz", docs[2:4])
    write_shard(folder / "c.parquet", docs[4:])
    return folder
