"""Identity-term annotations: which social groups a document mentions, and its gendered pronouns.

The counts are what the disparate-impact audit (`corpus.curate.audit`) groups documents by, so run the `bias` stage
early (right after normalisation): every document a later stage removes then carries its groups into
`rejected/`. The lexicon is data (`curate/lexicons/identity_<lang>.yaml`), extendable with user files.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.stage import RankContext, Transform
from corpus.curate.terms import GroupedTermMatcher, TermMatcher, is_spaceless, term_key


def lexicons_dir() -> Path:
    return Path(str(resources.files("corpus.curate") / "lexicons"))


def lexicon_languages() -> list[str]:
    """Languages with a bundled identity lexicon."""
    return sorted(p.stem.removeprefix("identity_") for p in lexicons_dir().glob("identity_*.yaml"))


@dataclass(frozen=True, slots=True)
class Mention:
    group: str
    subgroup: str
    term: str
    start: int
    end: int


def _read_lexicon_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise CorpusError(f"{path}: lexicon file does not exist") from err
    except yaml.YAMLError as err:
        raise CorpusError(f"{path}: invalid YAML ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("groups", {}), dict):
        raise CorpusError(f"{path}: expected a mapping with 'groups: {{group: {{subgroup: [terms]}}}}'")
    return data


def _expand(term: str, templates: dict[str, list[str]], where: str) -> list[str]:
    if "{" not in term:
        return [term]
    for name, words in templates.items():
        if "{" + name + "}" in term:
            return [t for w in words for t in _expand(term.replace("{" + name + "}", str(w)), templates, where)]
    raise CorpusError(f"{where}: term {term!r} uses an unknown template; templates: {', '.join(templates) or 'none'}")


class IdentityLexicon:
    """Groups -> subgroups -> terms, matched on word boundaries, each group on its own."""

    def __init__(
        self,
        groups: dict[str, dict[str, list[str]]],
        pronouns: dict[str, list[str]] | None = None,
        language: str = "en",
    ) -> None:
        self.language = language
        self.groups = groups
        spaceless = is_spaceless(language)
        self.matcher = GroupedTermMatcher(
            {group: {t: sub for sub, terms in subgroups.items() for t in terms} for group, subgroups in groups.items()},
            spaceless,
        )
        self.pronouns = TermMatcher({t: kind for kind, terms in (pronouns or {}).items() for t in terms}, spaceless)
        self.term_keys = {term_key(t) for subgroups in groups.values() for terms in subgroups.values() for t in terms}

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], language: str = "en") -> IdentityLexicon:
        """Merge lexicon files in order: later files add groups, subgroups and terms."""
        groups: dict[str, dict[str, list[str]]] = {}
        pronouns: dict[str, list[str]] = {}
        for path in paths:
            path = Path(path)
            data = _read_lexicon_file(path)
            templates = {str(k): [str(w) for w in v] for k, v in (data.get("templates") or {}).items()}
            for group, subgroups in (data.get("groups") or {}).items():
                if not isinstance(subgroups, dict):
                    raise CorpusError(f"{path}: group {group!r} must map subgroups to lists of terms")
                for subgroup, terms in subgroups.items():
                    if not isinstance(terms, list):
                        raise CorpusError(f"{path}: {group}/{subgroup} must be a list of terms")
                    target = groups.setdefault(str(group), {}).setdefault(str(subgroup), [])
                    for term in terms:
                        target.extend(_expand(str(term), templates, str(path)))
            for kind, terms in (data.get("pronouns") or {}).items():
                pronouns.setdefault(str(kind), []).extend(str(t) for t in terms)
        return cls(groups, pronouns, language)

    @property
    def group_names(self) -> list[str]:
        return list(self.groups)

    @property
    def subgroup_names(self) -> list[str]:
        return [f"{g}/{s}" for g, subs in self.groups.items() for s in subs]

    def is_term(self, term: str) -> bool:
        return term_key(term) in self.term_keys

    def find(self, text: str) -> list[Mention]:
        return [Mention(group, m.value, m.term, m.start, m.end) for group, m in self.matcher.find(text)]

    def annotate(self, text: str) -> dict[str, dict[str, int]]:
        """{"identity": {group: n}, "identity_subgroups": {"group/sub": n}, "pronouns": {kind: n}}, zeros left out."""
        groups: dict[str, int] = {}
        subgroups: dict[str, int] = {}
        for mention in self.find(text):
            groups[mention.group] = groups.get(mention.group, 0) + 1
            key = f"{mention.group}/{mention.subgroup}"
            subgroups[key] = subgroups.get(key, 0) + 1
        pronouns: dict[str, int] = {}
        for match in self.pronouns.find(text):
            pronouns[match.value] = pronouns.get(match.value, 0) + 1
        return {"identity": groups, "identity_subgroups": subgroups, "pronouns": pronouns}


@functools.lru_cache(maxsize=16)
def _load(language: str, extra: tuple[str, ...], replace_default: bool) -> IdentityLexicon | None:
    bundled = lexicons_dir() / f"identity_{language}.yaml"
    paths = [] if replace_default else ([bundled] if bundled.exists() else [])
    paths += [Path(p) for p in extra]
    if not paths:
        return None
    return IdentityLexicon.from_files(paths, language)


def load_lexicon(
    language: str = "en", lexicon: str | list[str] | None = None, replace_default: bool = False
) -> IdentityLexicon | None:
    """The bundled lexicon for `language` plus user files (or only the user files); None if there is none.

    User files apply to every language they are given for; a stage passes them for each document's language.
    """
    extra = (lexicon,) if isinstance(lexicon, str) else tuple(lexicon or ())
    for path in extra:
        if not Path(path).exists():
            raise CorpusError(f"{path}: lexicon file does not exist")
    return _load(language, tuple(str(p) for p in extra), replace_default)


class BiasAnnotator(Transform):
    """Writes `identity` (mentions per group), `identity_subgroups` and `pronouns` counts into metadata.

    The document's `language` (from the language stage) picks the lexicon; documents without one use
    `default_language`. Languages without a lexicon are counted under `bias/no_lexicon/<lang>` and left alone.
    """

    def __init__(
        self, lexicon: str | list[str] | None = None, replace_default: bool = False, default_language: str = "en"
    ) -> None:
        self.lexicon = lexicon
        self.replace_default = replace_default
        self.default_language = default_language
        if lexicon is not None:  # fail at config time, not in a worker
            load_lexicon(default_language, lexicon, replace_default)

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        self.stats = ctx.stats_for(self)
        return super().run(docs, ctx)

    def apply(self, doc: Document) -> Document:
        language = doc.metadata.get("language") or self.default_language
        lexicon = load_lexicon(language, self.lexicon, self.replace_default)
        stats = getattr(self, "stats", None)
        if lexicon is None:
            if stats is not None:
                stats.add(f"bias/no_lexicon/{language}")
            return doc
        annotation = lexicon.annotate(doc.text)
        doc.metadata.update(annotation)
        if stats is not None:
            for group, count in annotation["identity"].items():
                stats.add(f"bias/docs/{group}")
                stats.add(f"bias/mentions/{group}", count)
            for kind, count in annotation["pronouns"].items():
                stats.add(f"bias/pronouns/{kind}", count)
        return doc
