from __future__ import annotations

from pathlib import Path

import pytest

from corpus.core.config import build_jobs, list_presets, load_config
from corpus.core.errors import CorpusError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_default_preset_splits_dedup_into_two_jobs() -> None:
    jobs = build_jobs(load_config())
    assert [j.name for j in jobs] == ["main", "main.dedup"]
    assert [s.id for s in jobs[0].stages] == ["normalize", "lang", "quality", "dedup_signatures"]
    assert [s.id for s in jobs[1].stages] == ["dedup"]
    assert "default" in list_presets()


def test_set_overrides_yaml_values_and_parses_types(tmp_path: Path) -> None:
    path = write(tmp_path, "stages:\n  - stage: language\n    id: lang\n    threshold: 0.3\n")
    config = load_config(path, overrides=["lang.threshold=0.8", "lang.languages=[en, fr]", "output_format=jsonl"])
    stage = build_jobs(config)[0].stages[0]
    assert stage.threshold == 0.8
    assert stage.languages == {"en", "fr"}
    assert config["output_format"] == "jsonl"


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("stages:\n  - stage: language\n    treshold: 0.3\n", [], r"p\.yaml:2: stage 'language' \(LanguageFilter\) "
         r"has no parameter 'treshold'; valid parameters: languages, threshold"),
        ("stages:\n  - stage: nope\n", [], r"p\.yaml:2: unknown stage 'nope'; registered stages:"),
        ("stages: [normalize]\nworkers: 3\n", [], r"p\.yaml:1: unknown top-level key\(s\) workers"),
        ("stages: [normalize\n", [], r"p\.yaml:2: invalid YAML"),
        ("stages: [normalize]\n", ["normalize.bogus=1"], r"--set normalize\.bogus=1: .*no parameter 'bogus'"),
        ("stages: [normalize]\n", ["lang.threshold=1"], r"no stage with id 'lang'; stage ids: normalize"),
        ("stages: [normalize]\n", ["threshold"], r"expected KEY=VALUE"),
    ],
)
def test_config_errors_name_the_place(tmp_path: Path, text: str, overrides: list[str], message: str) -> None:
    with pytest.raises(CorpusError, match=message):
        load_config(write(tmp_path, text), overrides=overrides)


def test_missing_config_and_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(CorpusError, match="unknown preset 'nope'"):
        load_config(preset="nope")


def test_every_shipped_preset_and_example_config_loads() -> None:
    for name in list_presets():
        assert build_jobs(load_config(preset=name))
    for path in sorted(Path(__file__).parents[2].joinpath("configs").glob("*.yaml")):
        assert build_jobs(load_config(path)), path


def test_the_saved_config_has_every_default_and_reruns_as_the_same_pipeline(shards: Path, tmp_path: Path) -> None:
    import yaml

    from corpus.core.executors import LocalExecutor

    out = tmp_path / "out"
    LocalExecutor(workers=1, progress=False).run(load_config(overrides=["lang.threshold=0.4"]), shards, out)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    stages = {s["id"]: s for s in saved["jobs"][0]["stages"]}
    assert stages["lang"]["threshold"] == 0.4  # the override
    assert stages["quality"]["min_doc_words"] == 50 and stages["quality"]["max_symbol_word_ratio"] == 0.1  # defaults
    # The saved file is a valid pipeline: running it again on the same folder resumes, nothing is redone.
    stats = LocalExecutor(workers=1, progress=False).run(load_config(out / "config.yaml"), shards, out)
    assert stats["resumed_ranks"] == 6


def test_named_presets_document_their_recipe() -> None:
    assert {"web-en", "multilingual", "default"} <= set(list_presets())
    for name in ("web-en", "multilingual"):
        config = load_config(preset=name, overrides=["lang.threshold=0.7"])
        assert "FineWeb" in config["description"]
        assert build_jobs(config)[0].stages[1].threshold == 0.7
