"""A small corpus of varied English prose, written here so the tests need no downloaded data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from corpus.core.document import Document
from corpus.core.io import write_shard

PARAGRAPHS = [
    "The river begins as a thin stream high in the hills. It gathers water from springs and melting "
    "snow. By the time it reaches the valley it is wide and slow. Farmers along its banks have used "
    "it for centuries.\n"
    "In spring the water rises quickly. Fields near the bank are flooded for a few weeks. The silt "
    "left behind makes the soil rich, so the farmers welcome the floods even though they are "
    "inconvenient.",
    "Bread needs only flour, water, salt and yeast. The dough is kneaded until it is smooth and "
    "elastic. Then it rests in a warm place and slowly doubles in size.\n"
    "A hot oven gives the loaf a dark, crisp crust. Many bakers put a tray of water in the oven, "
    "because the steam keeps the surface soft for the first minutes. The bread should cool before it "
    "is cut.",
    "Jupiter is the largest planet in the solar system. It is made mostly of hydrogen and helium. Its "
    "great red spot is a storm that has lasted for hundreds of years.\n"
    "Through a small telescope you can see four bright moons. Galileo first saw them in 1610. They "
    "change position from night to night as they circle the planet.",
    "A bicycle chain needs regular cleaning. Dirt mixes with oil and wears the teeth of the gears. "
    "Wipe the chain with a cloth, then add a drop of oil to each link.\n"
    "Check the tyres every week. Soft tyres make riding slow and tiring, and they are more likely to "
    "puncture. The correct pressure is printed on the side of the tyre.",
    "Compost turns kitchen scraps and garden waste into dark, crumbly soil. A good heap mixes green "
    "material, such as grass cuttings, with brown material, such as dry leaves and cardboard.\n"
    "Turning the heap lets air reach the centre. Without air the heap becomes wet and smells bad. "
    "After a few months the compost is ready to spread on the beds.",
    "Public libraries lend books for free. They also offer newspapers, computers and quiet rooms for "
    "study. Many people visit them to read, to learn a new skill or simply to stay warm.\n"
    "Librarians arrange books by subject so readers can find them. Dr. Melvil Dewey designed a famous "
    "system of numbers for this purpose in 1876. It is still used in many countries today.",
    "Clouds form when warm, moist air rises and cools. The water vapour condenses into tiny droplets. "
    "High, thin clouds are made of ice crystals rather than water.\n"
    "Low grey clouds often bring drizzle. Tall clouds with flat tops can bring thunder, heavy rain "
    "and hail. Sailors and farmers learned long ago to read the sky for signs of the weather.",
    "Old market towns grew where roads crossed or where a river could be forded. Traders came on "
    "fixed days each week to sell cattle, cloth and grain.\n"
    "The market square was usually the widest space in the town. Around it stood the inns, the church "
    "and the houses of the richest merchants. Some of these buildings still stand today.",
    "Tomatoes need sun, warmth and regular water. Plant them out after the last frost, when the soil "
    "is warm. Tie the stems to a stake as they grow, because the fruit is heavy.\n"
    "Pinch out the side shoots so the plant puts its energy into the fruit. Water at the base, not on "
    "the leaves, to avoid disease. Pick the tomatoes when they are red and slightly soft.",
    "A water mill uses the flow of a stream to turn a large wheel. The wheel drives a shaft, and "
    "gears carry the motion to the millstones.\n"
    "The miller controlled the flow with a gate called a sluice. When grain was poured between the "
    "stones it was ground into flour. Mills were once found in almost every village with a stream.",
    "Soup is a simple way to use vegetables. Onions, carrots and celery are cooked gently in a little "
    "butter. Then stock is added and the pot simmers for half an hour.\n"
    "Some cooks blend the soup until it is smooth, while others leave it chunky. A spoonful of cream "
    "or a handful of fresh herbs makes it richer. Soup often tastes better on the second day.",
    "The moon has no light of its own. It reflects the light of the sun. As it travels around the "
    "earth we see different parts of its lit side, and so its shape seems to change.\n"
    "A full cycle of phases takes about twenty nine days. The new moon is almost invisible, while the "
    "full moon rises at sunset and shines all night long.",
]


@pytest.fixture(scope="session")
def prose_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve short documents on different subjects in one JSONL shard."""
    folder = tmp_path_factory.mktemp("prose")
    write_shard(folder / "prose.jsonl", [Document(f"doc-{i}", text) for i, text in enumerate(PARAGRAPHS)])
    return folder


@pytest.fixture(scope="session")
def tiny_bert(prose_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Our own pretrained checkpoint (tiny preset, a few steps): what `corpus train pretrain` writes.

    Read-only for the tests; fine-tuning tests write their models elsewhere."""
    from corpus.train.pretrain import pretrain

    out = tmp_path_factory.mktemp("tiny-bert")
    pretrain(prose_corpus, out, steps=3, preset="tiny", seq_len=64, batch_size=8, vocab_size=512,
             device="cpu", progress=False)
    return out


@pytest.fixture(scope="session")
def prose() -> list[str]:
    return list(PARAGRAPHS)


@pytest.fixture(scope="package", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The test models are too small to gain from threads, and idle OpenMP threads spinning on a busy
    2-core machine made these tests several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
