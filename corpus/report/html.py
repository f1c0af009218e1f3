"""Render facts and plots into one HTML page (Jinja2 with autoescaping: document text can never become markup)."""

from __future__ import annotations

import functools
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from corpus.report.facts import PARTS
from corpus.report.plots import Plot
from corpus.report.samples import highlight

SECTIONS = (
    ("collection", "Collection", "crawl"),
    ("funnel", "Curation funnel", "funnel"),
    ("reasons", "Removal reasons", "reasons"),
    ("languages", "Languages", "languages"),
    ("lengths", "Document lengths", "lengths"),
    ("domains", "Top domains", "domains"),
    ("duplicates", "Duplicates", "duplicates"),
    ("toxicity", "Toxicity", "toxicity"),
    ("identity", "Identity groups", "identity"),
    ("audit", "Disparate removal", "audit"),
    ("pii", "Personal data", "pii"),
    ("samples", "Samples", "samples"),
)


def number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() and abs(value) >= 1000 else f"{value:,.4g}"
    return str(value)


def percent(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def interval(value: Any) -> str:
    return "–" if not value else f"{value[0]:.2f} – {value[1]:.2f}"


@functools.cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("corpus.report", "templates"),
                      autoescape=select_autoescape(["html"], default=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = number
    env.filters["pct"] = percent
    env.filters["ci"] = interval
    return env


def _present(facts: dict[str, Any], key: str) -> bool:
    if key == "samples":
        return bool(facts["samples"]["removed"] or facts["samples"]["kept"])
    return bool(facts.get(key))


def render_report(facts: dict[str, Any], plots: dict[str, Plot]) -> str:
    sections = [(id_, title, _present(facts, key)) for id_, title, key in SECTIONS]
    template = environment().get_template("report.html")
    parts = {k: {"what": what, "how": how} for k, (what, how) in PARTS.items()}
    return template.render(f=facts, s=facts["summary"], plots=plots, parts=parts, sections=sections,
                           highlight=highlight)


def render_compare(facts: dict[str, Any], plots: dict[str, Plot]) -> str:
    return environment().get_template("compare.html").render(c=facts, plots=plots)
