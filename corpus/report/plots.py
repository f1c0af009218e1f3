"""Plots as SVG data URIs, so report.html is one file that reads offline.

Matplotlib's object API (no pyplot state), text kept as text (small files) and never parsed as math (a `$` in a
domain name must not break a plot). An <img> with an SVG data URI cannot run script, whatever labels contain.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any

BLUE, ORANGE, GREY, RED = "#3b6ea8", "#e08a2c", "#9aa5b1", "#b03a2e"
STYLE = {"svg.fonttype": "none", "text.parse_math": False, "font.size": 9, "axes.spines.top": False,
         "axes.spines.right": False, "svg.hashsalt": "corpus-report"}


@dataclass
class Plot:
    key: str
    title: str
    uri: str
    width: int
    height: int


def _short(label: Any, limit: int = 38) -> str:
    text = str(label)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _render(key: str, title: str, draw: Any, width: float = 7.0, height: float = 3.2) -> Plot:
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    with rc_context(STYLE):
        fig = Figure(figsize=(width, height))
        draw(fig)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    data = base64.b64encode(buffer.getvalue()).decode()
    return Plot(key, title, f"data:image/svg+xml;base64,{data}", int(width * 96), int(height * 96))


def _barh(ax: Any, labels: list[str], series: list[tuple[str, list[float], str]]) -> None:
    """Horizontal bars, first label on top; several series side by side."""
    n = len(series)
    height = 0.8 / n
    for i, (name, values, colour) in enumerate(series):
        positions = [len(labels) - 1 - j + (n - 1 - 2 * i) * height / 2 for j in range(len(labels))]
        ax.barh(positions, values, height=height, color=colour, label=name)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels([_short(x) for x in reversed(labels)])
    if n > 1:
        ax.legend(loc="lower right", frameon=False)


def _plain_log(axis: Any) -> None:
    """Log-axis tick labels as plain numbers (math text is off, so the default 10^n labels would show raw)."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _rows_height(rows: int) -> float:
    return min(9.0, 1.2 + 0.28 * max(rows, 3))


def funnel(facts: dict[str, Any]) -> Plot | None:
    rows = facts.get("funnel")
    if not rows:
        return None
    labels = ["input"] + [r["stage"] for r in rows]
    docs = [rows[0]["in"]] + [r["kept"] for r in rows]
    toks = [rows[0]["tokens_in"] or 0] + [r["tokens_kept"] or 0 for r in rows]

    def draw(fig: Any) -> None:
        left, right = fig.subplots(1, 2, sharey=True)
        _barh(left, labels, [("documents", docs, BLUE)])
        left.set_title("documents after each stage")
        _barh(right, labels, [("tokens", toks, ORANGE)])
        right.set_title("tokens after each stage (chars / 4)")

    return _render("funnel", "Funnel", draw, height=_rows_height(len(labels)))


def reasons(facts: dict[str, Any]) -> Plot | None:
    rows = [r for r in facts.get("reasons") or [] if r["documents"]]
    if not rows:
        return None
    labels = [f"{r['stage']}: {r['reason']}" for r in rows]

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        _barh(ax, labels, [("removed", [r["documents"] for r in rows], RED)])
        ax.set_xlabel("documents removed")

    return _render("reasons", "Removal reasons per stage", draw, height=_rows_height(len(rows)))


def languages(facts: dict[str, Any], top: int = 15) -> Plot | None:
    lang = facts.get("languages")
    if not lang or not lang["before"]:
        return None
    labels = list(lang["before"])[:top]
    series = [("before (reached the language stage)", [lang["before"][k] for k in labels], GREY)]
    if lang.get("after") is not None:
        series.append(("after (kept)", [lang["after"].get(k, 0) for k in labels], BLUE))

    counts = [v for _, values, _ in series for v in values if v > 0]

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        _barh(ax, labels, series)
        if counts and max(counts) > 50 * min(counts):  # one dominant language would flatten all the others
            ax.set_xscale("log")
            _plain_log(ax.xaxis)
            ax.set_xlabel("documents (log scale)")
        else:
            ax.set_xlabel("documents")

    return _render("languages", "Language distribution", draw, height=_rows_height(len(labels)))


def lengths(series: dict[str, Any] | None) -> Plot | None:
    if not series or not (series["before"] or series["after"]):
        return None
    values = [v for v in series["before"] + series["after"] if v > 0] or [1]
    low, high = math.log10(max(1, min(values))), math.log10(max(values) + 1)
    bins = [10 ** (low + (high - low) * i / 30) for i in range(31)] if high > low else 10

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        if series["before"]:
            ax.hist([max(v, 1) for v in series["before"]], bins=bins, color=GREY, alpha=0.7, label="before")
        if series["after"]:
            ax.hist([max(v, 1) for v in series["after"]], bins=bins, color=BLUE, alpha=0.7, label="after (kept)")
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
        ax.set_xlabel("characters per document (log scale)")
        ax.set_ylabel("documents")
        ax.legend(frameon=False)

    return _render("lengths", "Document lengths before and after curation", draw)


def domains(facts: dict[str, Any]) -> Plot | None:
    dom = facts.get("domains")
    if not dom or not dom["top"]:
        return None
    labels = [r["domain"] for r in dom["top"]]
    series = []
    if any(r["before"] is not None for r in dom["top"]):
        series.append(("before", [r["before"] or 0 for r in dom["top"]], GREY))
    series.append(("after (kept)", [r["after"] for r in dom["top"]], BLUE))

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        _barh(ax, labels, series)
        ax.set_xlabel("documents")

    return _render("domains", "Top domains", draw, height=_rows_height(len(labels)))


def cluster_sizes(facts: dict[str, Any]) -> Plot | None:
    dup = facts.get("duplicates")
    if not dup or not dup["clusters"]:
        return None

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        kinds = list(dup["clusters"].items())
        width = 0.8 / len(kinds)
        for i, (kind, info) in enumerate(kinds):
            sizes = [int(s) for s in info["clusters_by_size"]]
            ax.bar([s + (i - (len(kinds) - 1) / 2) * width for s in sizes], list(info["clusters_by_size"].values()),
                   width=width, label=kind, color=[BLUE, ORANGE, GREY, RED][i % 4])
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("documents per cluster")
        ax.set_ylabel("clusters")
        ax.legend(frameon=False)

    return _render("clusters", "Duplicate cluster sizes", draw)


def toxicity(series: dict[str, Any] | None) -> Plot | None:
    stages = {k: v for k, v in (series or {}).items() if v["before"]}
    if not stages:
        return None
    bins = [i / 20 for i in range(21)]

    def draw(fig: Any) -> None:
        axes = fig.subplots(1, len(stages), squeeze=False)[0]
        for ax, (stage, data) in zip(axes, stages.items(), strict=True):
            ax.hist(data["before"], bins=bins, color=GREY, alpha=0.7, label="all scored")
            if data["after"]:
                ax.hist(data["after"], bins=bins, color=BLUE, alpha=0.7, label="kept")
            if data.get("threshold") is not None:
                ax.axvline(float(data["threshold"]), color=RED, linestyle="--", label="threshold")
            ax.set_yscale("log")
            _plain_log(ax.yaxis)
            ax.set_title(stage)
            ax.set_xlabel("document score (max over spans)")
            ax.set_ylabel("documents")
            ax.legend(frameon=False)

    return _render("toxicity", "Toxicity score distributions", draw, width=min(12.0, 4.5 * len(stages) + 2))


def identity(facts: dict[str, Any]) -> Plot | None:
    ident = facts.get("identity")
    if not ident or not ident["groups"]:
        return None
    labels = sorted(ident["groups"], key=lambda g: -(ident["groups"][g].get("share_before") or 0))
    before = [100 * (ident["groups"][g].get("share_before") or 0) for g in labels]
    after = [100 * (ident["groups"][g].get("share_after") or 0) for g in labels]

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        _barh(ax, labels, [("before", before, GREY), ("after (kept)", after, BLUE)])
        ax.set_xlabel("% of documents mentioning the group")

    return _render("identity", "Identity-group representation", draw, height=_rows_height(len(labels)))


def audit(facts: dict[str, Any], top: int = 30) -> Plot | None:
    aud = facts.get("audit")
    rows = [r for r in (aud or {}).get("rows", [])
            if r["level"] == "group" and r["ratio"] is not None and r["removed"] is not None][:top]
    if not rows:
        return None
    labels = [f"{r['stage']}: {r['group']}" for r in rows]

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        ratios = [r["ratio"] for r in rows]
        lower = [max(0.0, r["ratio"] - r["ci"][0]) if r.get("ci") else 0.0 for r in rows]
        upper = [max(0.0, r["ci"][1] - r["ratio"]) if r.get("ci") else 0.0 for r in rows]
        positions = list(range(len(rows) - 1, -1, -1))
        colours = [RED if r["flagged"] else BLUE for r in rows]
        ax.barh(positions, ratios, color=colours, xerr=[lower, upper], ecolor="#555", capsize=0)
        ax.set_yticks(positions)
        ax.set_yticklabels([_short(x) for x in labels])
        ax.axvline(1.0, color=GREY, linestyle=":")
        if aud and aud.get("factor"):
            ax.axvline(float(aud["factor"]), color=RED, linestyle="--", label=f"flag factor {aud['factor']}")
            ax.legend(frameon=False)
        limit = max(2.0 * float((aud or {}).get("factor") or 1.25), 1.2 * max(ratios, default=1.0))
        ax.set_xlim(0, limit)  # wide intervals of small groups would squash every bar otherwise
        ax.set_xlabel("group removal rate / stage removal rate (95% CI, axis clipped)")

    return _render("audit", "Disparate removal by group", draw, height=_rows_height(len(rows)))


def pii(facts: dict[str, Any]) -> Plot | None:
    data = facts.get("pii")
    if not data or not data["counts"]:
        return None
    labels = list(data["counts"])

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        _barh(ax, labels, [("found", [data["counts"][k] for k in labels], ORANGE)])
        ax.set_xlabel("occurrences found")

    return _render("pii", "Personal data found", draw, height=_rows_height(len(labels)))


def statuses(facts: dict[str, Any]) -> Plot | None:
    crawl = facts.get("crawl")
    if not crawl or not crawl["statuses"]:
        return None
    labels = list(crawl["statuses"])

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        _barh(ax, labels, [("responses", [crawl["statuses"][k] for k in labels], BLUE)])
        ax.set_xlabel("responses")

    return _render("statuses", "HTTP responses by status", draw, height=_rows_height(len(labels)))


def all_plots(facts: dict[str, Any], series: dict[str, Any]) -> dict[str, Plot]:
    """Every plot the facts support, by key (sections without data get none)."""
    made = [statuses(facts), funnel(facts), reasons(facts), languages(facts), lengths(series.get("lengths")),
            domains(facts), cluster_sizes(facts), toxicity(series.get("toxicity")), identity(facts), audit(facts),
            pii(facts)]
    return {p.key: p for p in made if p is not None}


def compare_funnel(names: tuple[str, str], funnels: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> Plot | None:
    """Documents after each stage for two runs (stages matched by id)."""
    a, b = funnels
    if not a and not b:
        return None
    order = list(dict.fromkeys([r["stage"] for r in a] + [r["stage"] for r in b]))
    kept_a = {r["stage"]: r["kept"] for r in a}
    kept_b = {r["stage"]: r["kept"] for r in b}
    labels = ["input", *order]
    series = [(names[0], [a[0]["in"] if a else 0] + [kept_a.get(s, 0) for s in order], GREY),
              (names[1], [b[0]["in"] if b else 0] + [kept_b.get(s, 0) for s in order], BLUE)]

    def draw(fig: Any) -> None:
        ax = fig.subplots()
        _barh(ax, labels, series)
        ax.set_xlabel("documents after the stage")

    return _render("compare_funnel", "Funnel, side by side", draw, height=_rows_height(len(labels)))
