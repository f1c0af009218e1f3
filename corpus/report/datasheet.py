"""datasheet.md: the questions of "Datasheets for Datasets" (Gebru et al., 2021), answered from the run where
a measurement answers them, and left as marked questions for a person where only a person can answer.
"""

from __future__ import annotations

from typing import Any

ASK = "**[Question for a person]**"


def _num(value: Any) -> str:
    if value is None:
        return "unknown"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pct(value: float | None) -> str:
    return "unknown" if value is None else f"{100 * value:.1f}%"


def _inline(value: Any) -> str:
    """A value safe inside Markdown running text: one line, no backticks breaking our code spans."""
    return str(value).replace("`", "'").replace("\n", " ")


class _Sheet:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.open_questions = 0

    def section(self, title: str) -> None:
        self.lines += ["", f"## {title}", ""]

    def q(self, question: str, answer: str | None = None, person: str | None = None) -> None:
        """A question with its measured answer; `person` adds what a person still has to say."""
        text = f"- **{question}**"
        if answer:
            text += f" {answer}"
        if person is not None or not answer:
            self.open_questions += 1
            text += f" {ASK}" + (f" {person}" if person else "")
        self.lines.append(text)

    def text(self, *lines: str) -> None:
        self.lines += list(lines)


def _stage_line(stage: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={_inline(v)}" for k, v in stage["params"].items() if v is not None)
    return f"  - `{_inline(stage['id'])}` ({_inline(stage['stage'])}): {params or 'defaults'}"


def datasheet(facts: dict[str, Any]) -> str:
    """The datasheet as Markdown."""
    f = facts
    s = f["summary"]
    crawl = f.get("crawl")
    config = f.get("config")
    languages = f.get("languages")
    sheet = _Sheet()
    missing = ", ".join(m["part"] for m in f["missing"]) or "none"
    sheet.text(f"# Datasheet: {_inline(f['run']['name'])}", "",
               'Following "Datasheets for Datasets" (Gebru et al., 2021). Answers measured from the run were '
               f"filled in by `corpus report` on {f['run']['generated']} from `{_inline(f['run']['path'])}`; "
               f"questions only a person can answer are marked {ASK}.", "",
               f"Parts of the pipeline not in this run (so not measured): {missing}. "
               f"Token counts are {f['tokens_method']}.")

    sheet.section("Motivation")
    description = config.get("description") if config else None
    sheet.q("For what purpose was the dataset created?",
            f"Curation pipeline used: `{_inline(config['name'])}` ({_inline(description)})." if config else None,
            "Say which task or gap the dataset is for.")
    sheet.q("Who created the dataset, and on behalf of which entity?")
    sheet.q("Who funded the creation of the dataset?")
    sheet.q("Any other comments?")

    sheet.section("Composition")
    sheet.q("What do the instances represent?",
            "Text documents: the main text extracted from one web page each (boilerplate removed)"
            if crawl else "Text documents read from the curate input shards.",
            "Confirm, and say whether the pages are of any particular kind.")
    if s.get("documents_kept") is not None:
        size = (f"{_num(s['documents_kept'])} documents kept of {_num(s['documents_in'])} read "
                f"({_pct(s.get('kept_share'))})")
        if s.get("tokens_kept") is not None:
            size += f"; about {_num(s['tokens_kept'])} tokens ({f['tokens_method']})"
        if s.get("chars_kept") is not None:
            size += f", {_num(s['chars_kept'])} characters"
        if s.get("words_kept") is not None:
            size += f", {_num(s['words_kept'])} whitespace-separated words"
        sheet.q("How many instances are there in total?", size + ".")
    else:
        sheet.q("How many instances are there in total?",
                f"{_num(crawl['documents'])} documents extracted by the crawl (not curated)." if crawl else None)
    if crawl:
        limits = ", ".join(f"{k}={_inline(v)}" for k, v in crawl["limits"].items() if v not in (None, []))
        sheet.q("Does the dataset contain all possible instances or is it a sample?",
                f"A sample of the web reachable from the seeds ({', '.join(map(_inline, crawl['seeds'] or []))}), "
                f"bounded by: {limits or 'no recorded limits'}; the crawl finished with reason "
                f"`{_inline(crawl['finish_reason'])}`.", "Is it representative of a larger population?")
    else:
        sheet.q("Does the dataset contain all possible instances or is it a sample?")
    quality = f.get("quality")
    if quality:
        sheet.q("What data does each instance consist of?",
                "`id`, `text` and `metadata` with keys: " + ", ".join(f"`{_inline(k)}`"
                                                                     for k in quality["metadata_keys"]) + ".")
    else:
        sheet.q("What data does each instance consist of?")
    sheet.q("Is there a label or target associated with each instance?",
            "No task labels. Machine annotations in metadata: " + ", ".join(
                x for x, present in (("language and its score", languages), ("quality signals", True),
                                     ("toxicity scores", f.get("toxicity")),
                                     ("identity-group mentions", f.get("identity")),
                                     ("PII counts", f.get("pii")),
                                     ("duplicate cluster ids", f.get("duplicates"))) if present) + ".")
    if quality:
        gaps = ", ".join(f"`{k}` missing in {_num(n)}" for k, n in quality["missing_fields"].items())
        sheet.q("Is any information missing from individual instances?",
                f"Among {_num(quality['documents'])} kept documents read: {gaps or 'no gaps in common fields'}.")
    else:
        sheet.q("Is any information missing from individual instances?")
    dup = f.get("duplicates")
    sheet.q("Are relationships between individual instances made explicit?",
            "Duplicate clusters: kept documents that had duplicates carry the cluster id; removed duplicates carry "
            "`duplicate_of` (in `rejected/`)." if dup else "No (deduplication was not in this run).")
    sheet.q("Are there recommended data splits?", "None made: all kept documents are in `data/` (one split).",
            "Recommend splits if any.")
    noise = []
    if s.get("malformed") is not None:
        noise.append(f"{_num(s['malformed'])} malformed input records quarantined, {_num(s.get('stage_errors'))} "
                     "stage errors")
    if dup:
        removed = sum(r["removed"] for r in dup["stages"])
        noise.append(f"{_num(removed)} duplicates removed by {', '.join(r['stage'] for r in dup['stages'])}")
    else:
        noise.append("duplicates were not looked for")
    sheet.q("Are there any errors, sources of noise, or redundancies in the dataset?", "; ".join(noise) + ".",
            "Describe known extraction errors or noise.")
    domains = f.get("domains")
    sheet.q("Is the dataset self-contained, or does it link to or rely on external resources?",
            "Self-contained text; each document records its source URL"
            + (f" ({_num(domains['distinct_after'])} distinct domains among kept documents)." if domains else "."),
            "Are the sources guaranteed to stay available? Are there licences attached to them?")
    pii = f.get("pii")
    if pii:
        counts = ", ".join(f"{k}: {_num(v)}" for k, v in pii["counts"].items()) or "none found"
        modes = ", ".join(f"{st['stage']} ({st['mode'] or 'redact'})" for st in pii["stages"])
        pii_answer = (f"Personal data detected by {modes}: {counts}, in {_num(pii['documents'])} documents "
                      "(redacted unless the stage ran in tag mode).")
    else:
        pii_answer = "Not measured (no PII stage in this run)."
    sheet.q("Does the dataset contain data that might be considered confidential?", pii_answer,
            "Detection is pattern-based and misses names and addresses; judge what remains.")
    tox = f.get("toxicity")
    if tox:
        parts = []
        for r in tox["stages"]:
            parts.append(f"stage `{r['stage']}` ({r['scorer']}, threshold {r['threshold']}): {_num(r['scored'])} "
                         f"scored, {_num(r['toxic'])} marked toxic, {_num(r['removed'])} removed, "
                         f"{_num(r['toxic_kept'])} toxic documents kept"
                         + (" (not scored, the scorer does not read their language: "
                            + ", ".join(f"{k} {_num(v)}" for k, v in r["unsupported_languages"].items()) + ")"
                            if r["unsupported_languages"] else ""))
        tox_answer = "; ".join(parts) + "."
    else:
        tox_answer = "Not measured (no toxicity stage in this run)."
    sheet.q("Does the dataset contain data that might be offensive, insulting, threatening, or cause anxiety?",
            tox_answer, "Review the samples in report.html.")
    identity = f.get("identity")
    if identity and identity["groups"]:
        shares = ", ".join(f"{g} {_pct(r.get('share_after'))}" for g, r in identity["groups"].items())
        sheet.q("Does the dataset identify any subpopulations?",
                f"Share of kept documents mentioning each identity group (lexicon-based): {shares}.",
                "Are subpopulations identified in a way that matters for its uses?")
    else:
        sheet.q("Does the dataset identify any subpopulations?", "Not measured (no bias stage in this run).")
    sheet.q("Is it possible to identify individuals from the dataset?",
            "Pattern-based PII was " + ("redacted (see above)." if pii else "not looked for."),
            "Names, photos' captions and quoted posts may still identify people.")
    sheet.q("Does the dataset contain data that might be considered sensitive?", None,
            "Health, religion, politics, sexual orientation... (the identity-group counts above are a start).")
    if languages:
        after = languages.get("after") or {}
        listed = ", ".join(f"{k} ({_num(v)})" for k, v in (after or languages["before"]).items())
        sheet.q("Which languages does it contain?",
                f"Kept documents by detected language: {listed} (stage `{languages['stage']}`).")
    else:
        sheet.q("Which languages does it contain?", "Not measured (no language identification in this run).")

    sheet.section("Collection process")
    if crawl:
        statuses = ", ".join(f"{k}: {_num(v)}" for k, v in crawl["statuses"].items())
        sheet.q("How was the data associated with each instance acquired?",
                f"Crawled from the web with `corpus crawl` (Scrapy, text extracted with trafilatura): "
                f"{_num(crawl['pages_fetched'])} responses ({statuses}), {_num(crawl['documents'])} documents "
                f"extracted.")
        sheet.q("What mechanisms or procedures were used to collect the data?",
                f"User agent `{_inline(crawl['user_agent'])}`; robots.txt obeyed: {crawl['obey_robots']} "
                f"({_num(crawl['robots_blocked'])} requests blocked by it); retries: {_num(crawl['retries'])}.")
        sheet.q("What was the sampling strategy?",
                "Breadth-first from the seeds and sitemaps within the limits: " + (
                    ", ".join(f"{k}={_inline(v)}" for k, v in crawl["limits"].items()) or "none recorded") + ".")
        window = crawl.get("fetched_range") or [crawl.get("start_time"), crawl.get("finish_time")]
        sheet.q("Over what timeframe was the data collected?",
                f"Crawled from {window[0]} to {window[1]}.",
                "Does it match the creation timeframe of the content (pages may be older)?")
        sheet.q("Was the data collected from the individuals in question directly, or obtained via third parties?",
                "From public web sites (third parties), not from individuals directly.")
    else:
        source = ("the curate input shards" if s.get("documents_in") is not None else "unknown")
        sheet.q("How was the data associated with each instance acquired?",
                f"Not recorded in this run (no crawl output); documents were read from {source}.",
                "Say where the input came from.")
        sheet.q("What mechanisms or procedures were used to collect the data?")
        sheet.q("What was the sampling strategy?")
        sheet.q("Over what timeframe was the data collected?")
        sheet.q("Was the data collected from the individuals in question directly, or obtained via third parties?")
    sheet.q("Who was involved in the data collection process, and how were they compensated?")
    sheet.q("Were any ethical review processes conducted?")
    sheet.q("Were the individuals in question notified about the data collection, and did they consent?")
    audit = f.get("audit")
    sheet.q("Has an analysis of the potential impact of the dataset and its use on data subjects been conducted?",
            (f"A disparate-removal audit ran: {len(audit['flags'])} flag(s) at factor {audit['factor']} "
             "(see report.html)." if audit else "No disparate-removal audit in this run."),
            "Describe any wider impact analysis.")

    sheet.section("Preprocessing / cleaning / labeling")
    if config:
        sheet.q("Was any preprocessing/cleaning/labeling of the data done?",
                f"Yes, pipeline `{_inline(config['name'])}` with these stages and parameters (thresholds):")
        sheet.text(*[_stage_line(st) for st in config["stages"]])
    else:
        sheet.q("Was any preprocessing/cleaning/labeling of the data done?",
                "No curation run found." if not f.get("funnel") else "Yes (configuration not saved with the run).")
    if f.get("funnel"):
        sheet.text("", "  Documents kept and removed at each stage:", "",
                   "  | stage | in | kept | removed | removed % | reasons |", "  |---|---:|---:|---:|---:|---|")
        for r in f["funnel"]:
            reasons = ", ".join(f"{k}: {_num(v)}" for k, v in r["reasons"].items())
            sheet.text(f"  | `{r['stage']}` | {_num(r['in'])} | {_num(r['kept'])} | {_num(r['removed'])} | "
                       f"{_pct(r['removed_share'])} | {reasons} |")
        sheet.text("")
    sheet.q("Was the raw data saved in addition to the cleaned data?",
            "Removed documents are kept with their stage and reason in `rejected/`"
            + (f"; the crawled documents in `{_inline(crawl['folder'])}`" if crawl else "")
            + (f"; {_num(crawl['warc_records'])} WARC records" if crawl and crawl.get("warc_records") else "")
            + "." if f.get("funnel") or crawl else None)
    sheet.q("Is the software used to preprocess/clean/label the instances available?",
            "Yes: `corpus` (`corpus curate`), with the resolved configuration saved as `config.yaml` next to the "
            "output." if config else None, "Give the version or commit.")

    sheet.section("Uses")
    model = f.get("model")
    sheet.q("Has the dataset been used for any tasks already?",
            (f"A `{model.get('preset')}` BERT ({model.get('objective')}) was trained on it for "
             f"{_num(model.get('steps'))} steps in this run." if model else None),
            "List other uses.")
    sheet.q("Is there a repository that links to any or all papers or systems that use the dataset?")
    sheet.q("What (other) tasks could the dataset be used for?")
    risks = []
    if audit and audit["flags"]:
        risks.append(f"{len(audit['flags'])} group(s) removed disproportionately by some stage (see the audit)")
    if languages and languages.get("after"):
        top, n = next(iter(languages["after"].items()))
        total = sum(languages["after"].values())
        risks.append(f"language mix: {top} is {_pct(n / total if total else None)} of kept documents")
    if tox:
        kept_toxic = sum(r["toxic_kept"] or 0 for r in tox["stages"])
        risks.append(f"{_num(kept_toxic)} kept documents are marked toxic")
    sheet.q("Is there anything about the composition or collection that might impact future uses?",
            ("Measured: " + "; ".join(risks) + ".") if risks else None, "Describe risks to groups or uses.")
    sheet.q("Are there tasks for which the dataset should not be used?")

    sheet.section("Distribution")
    sheet.q("Will the dataset be distributed to third parties?")
    fmt = config.get("output_format") if config else None
    sheet.q("How will the dataset be distributed?",
            f"As {fmt or 'sharded'} files in `data/` with a checksummed `.manifest.json` and a Hugging Face dataset "
            "card (`README.md`) so the folder loads with `datasets.load_dataset`." if f.get("funnel") else None,
            "Say where it will be published.")
    sheet.q("When will the dataset be distributed?")
    sheet.q("Will the dataset be distributed under a copyright or other intellectual property license?", None,
            "The source pages' own terms apply; nothing in the run records them.")
    sheet.q("Have any third parties imposed IP-based or other restrictions on the data?")
    sheet.q("Do any export controls or other regulatory restrictions apply?")

    sheet.section("Maintenance")
    sheet.q("Who will be supporting/hosting/maintaining the dataset?")
    sheet.q("How can the owner/curator/manager be contacted?")
    sheet.q("Is there an erratum?")
    sheet.q("Will the dataset be updated?", "It can be rebuilt: rerun the saved configuration on a new crawl."
            if config else None, "Say how often and by whom.")
    sheet.q("Are there limits on the retention of the data associated with individuals?")
    sheet.q("Will older versions continue to be supported?")
    sheet.q("Can others extend, augment, or contribute to the dataset?")
    sheet.text("", "---", f"{sheet.open_questions} questions are left for a person to answer.", "")
    return "\n".join(sheet.lines)
