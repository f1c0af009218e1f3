"""Identity-term lexicon and the `bias` annotation stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.core.config import build_jobs, load_config
from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.executors import LocalExecutor
from corpus.core.io import read_documents, write_shard
from corpus.curate.bias import BiasAnnotator, IdentityLexicon, lexicon_languages, load_lexicon

REQUIRED_GROUPS = {"gender", "sexual_orientation", "religion", "race_ethnicity", "nationality", "disability", "age"}


@pytest.mark.parametrize("language", ["en", "fr", "de", "es"])
def test_bundled_lexicons_cover_the_required_groups(language: str) -> None:
    assert language in lexicon_languages()
    lexicon = load_lexicon(language)
    assert lexicon is not None and REQUIRED_GROUPS <= set(lexicon.group_names)
    assert all(len(subs) >= 2 for subs in lexicon.groups.values())


@pytest.mark.parametrize(("language", "text", "groups"), [
    ("fr", "Les femmes noires et les réfugiés musulmans ; les pages blanches.",
     {"gender": 1, "race_ethnicity": 1, "nationality": 1, "religion": 1}),
    ("de", "Schwarze Menschen, Muslime und Menschen mit Behinderung.",
     {"race_ethnicity": 1, "religion": 1, "disability": 1}),
    ("es", "Las mujeres indígenas y las personas mayores; el perro negro.",
     {"gender": 1, "race_ethnicity": 1, "age": 1}),
])
def test_other_languages_count_mentions(language: str, text: str, groups: dict[str, int]) -> None:
    assert load_lexicon(language).annotate(text)["identity"] == groups


def test_mentions_are_counted_per_group_on_word_boundaries() -> None:
    lexicon = load_lexicon("en")
    text = ("Black women and trans women met an old man and MUSLIMS from the LGBTQ+ community; "
            "she told him that people of color and Deaf students came too.")
    note = lexicon.annotate(text)
    assert note["identity"] == {"gender": 3, "race_ethnicity": 2, "age": 1, "religion": 1, "sexual_orientation": 1,
                                "disability": 1}
    subs = note["identity_subgroups"]
    # "Black women" counts for race and gender; within a group the longest term wins ("trans women").
    assert subs["gender/women"] == 1 and subs["gender/transgender_nonbinary"] == 1
    assert subs["race_ethnicity/black"] == 1 and subs["race_ethnicity/multiracial"] == 1
    assert subs["gender/men"] == 1 and subs["age/older_people"] == 1  # groups match independently: "old man"
    assert note["pronouns"] == {"female": 1, "male": 1}
    # Substrings are not words: no Scunthorpe problem for identity terms either.
    assert load_lexicon("en").annotate("Gayle sold jewelry to Mankind Ltd in Scunthorpe and Asiana.")["identity"] == {}


def test_user_lexicon_extends_or_replaces_the_bundled_one(tmp_path: Path) -> None:
    extra = tmp_path / "caste.yaml"
    extra.write_text("templates:\n  person: [community, people]\n"
                     "groups:\n  caste:\n    dalit: [dalit, dalits, '{person} of the margins']\n"
                     "  religion:\n    jain: [jain, jains]\n")
    both = load_lexicon("en", str(extra))
    note = both.annotate("Dalits and Jains and Muslims; people of the margins.")
    assert note["identity"] == {"caste": 2, "religion": 2}
    assert note["identity_subgroups"]["religion/jain"] == 1
    only = load_lexicon("en", str(extra), replace_default=True)
    assert set(only.group_names) == {"caste", "religion"} and only.annotate("Muslims")["identity"] == {}


def test_bad_lexicon_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="missing.yaml: lexicon file does not exist"):
        load_lexicon("en", str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n  caste: [dalit]\n")
    with pytest.raises(CorpusError, match="bad.yaml: group 'caste' must map subgroups"):
        IdentityLexicon.from_files([bad])
    template = tmp_path / "template.yaml"
    template.write_text("groups:\n  caste:\n    dalit: ['{nobody} x']\n")
    with pytest.raises(CorpusError, match="unknown template"):
        IdentityLexicon.from_files([template])


def test_bias_stage_annotates_documents_in_a_pipeline(tmp_path: Path) -> None:
    docs = [
        Document("a", "The mosque welcomed Muslim families and their children."),
        Document("b", "Der Fluss fließt durch das Tal.", {"language": "xx"}),
        Document("c", "The weather was fine."),
    ]
    write_shard(tmp_path / "in" / "a.jsonl", docs)
    config = tmp_path / "p.yaml"
    config.write_text(json.dumps({"output_format": "jsonl", "stages": ["bias"]}))
    stats = LocalExecutor(workers=1, progress=False).run(load_config(config), tmp_path / "in", tmp_path / "out")
    kept = {d.id: d.metadata for d in read_documents(tmp_path / "out" / "data")}
    assert kept["a"]["identity"] == {"religion": 1, "age": 1}
    assert kept["c"]["identity"] == {} and kept["c"]["pronouns"] == {}
    assert "identity" not in kept["b"]  # no lexicon for that language: left alone, and counted
    counters = stats["jobs"][0]["stages"][0]["counters"]
    assert counters["bias/docs/religion"] == 1 and counters["bias/no_lexicon/xx"] == 1


def test_bias_stage_rejects_a_missing_lexicon_at_load_time(tmp_path: Path) -> None:
    config = tmp_path / "p.yaml"
    config.write_text(json.dumps({"stages": [{"stage": "bias", "lexicon": str(tmp_path / "nope.yaml")}]}))
    with pytest.raises(CorpusError, match="nope.yaml: lexicon file does not exist"):
        build_jobs(load_config(config))
    assert BiasAnnotator().apply(Document("x", "Two lesbians.")).metadata["identity"] == {"sexual_orientation": 1}
