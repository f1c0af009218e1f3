"""A Hugging Face dataset card (README.md with YAML front matter) for a curate output folder.

With the card's `configs` pointing at `data/`, the folder loads with `datasets.load_dataset(folder)` and can be
pushed to a hub as it is (rejected/, quarantine/ and _work/ are left out of the dataset).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MARKER = "<!-- written by `corpus report`; edit freely, then remove this line to keep your edits -->"
TODO = "[More Information Needed]"
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
         (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T"))
SUFFIX = {"parquet": "parquet", "jsonl": "jsonl", "jsonl.gz": "jsonl.gz"}


def size_category(n: int) -> str:
    return next((label for limit, label in SIZES if n < limit), "n>1T")


def _languages(facts: dict[str, Any]) -> list[str]:
    lang = facts.get("languages") or {}
    counts = lang.get("after") or lang.get("before") or {}
    # Hub metadata wants ISO 639 codes; lid.176 gives ISO 639-1/-3 codes, plus the odd "unknown".
    return [code for code in counts if re.fullmatch(r"[a-z]{2,3}", code)]


def front_matter(facts: dict[str, Any], data_format: str) -> dict[str, Any]:
    languages = _languages(facts)
    kept = facts["summary"].get("documents_kept") or 0
    meta: dict[str, Any] = {"pretty_name": facts["run"]["name"]}
    if languages:
        meta["language"] = languages
        meta["multilinguality"] = "multilingual" if len(languages) > 1 else "monolingual"
    meta.update({
        "license": "unknown",
        "size_categories": [size_category(kept)],
        "task_categories": ["text-generation", "fill-mask"],
        "task_ids": ["language-modeling", "masked-language-modeling"],
        "source_datasets": ["original"],
        "annotations_creators": ["machine-generated"],
        "language_creators": ["found"],
        "tags": ["web", "corpus-report"],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": "train", "path": f"data/*.{SUFFIX.get(data_format, 'parquet')}"}]}],
    })
    return meta


def _n(value: Any) -> str:
    return "unknown" if value is None else (f"{value:,}" if isinstance(value, int) else str(value))


def dataset_card(facts: dict[str, Any]) -> str:
    """The card as Markdown text (front matter first)."""
    config = facts.get("config") or {}
    data_format = config.get("output_format") or "parquet"
    s = facts["summary"]
    name = facts["run"]["name"]
    lines = ["---", yaml.safe_dump(front_matter(facts, data_format), sort_keys=False, allow_unicode=True).strip(),
             "---", MARKER, "", f"# Dataset card for {name}", "",
             f"Web text curated with `corpus` (pipeline `{config.get('name', '?')}`: "
             f"{config.get('description') or 'no description'}). {_n(s.get('documents_kept'))} documents "
             f"(about {_n(s.get('tokens_kept'))} tokens, {facts['tokens_method']}) kept of "
             f"{_n(s.get('documents_in'))} read.", "",
             "## Dataset Structure", "",
             "One split, `train`, in `data/` (with a checksummed `.manifest.json`). Each row: `id` (stable hash), "
             "`text`, and `metadata` (a JSON string) with these keys: "
             + ", ".join(f"`{k}`" for k in (facts.get("quality") or {}).get("metadata_keys", [])) + ".", "",
             "```python", "from datasets import load_dataset", "", 'ds = load_dataset("path/to/this/folder")', "```",
             "", "## Dataset Creation", "", "### Curation Rationale", "", TODO, "", "### Source Data", ""]
    crawl = facts.get("crawl")
    if crawl:
        lines.append(f"Crawled from {', '.join(map(str, crawl['seeds'] or ['(seeds not recorded)']))} between "
                     f"{crawl.get('start_time')} and {crawl.get('finish_time')}: {_n(crawl['pages_fetched'])} "
                     f"responses, {_n(crawl['documents'])} documents extracted, robots.txt obeyed: "
                     f"{crawl['obey_robots']}.")
    else:
        lines.append(f"Input shards: `{(facts.get('parts') or {}).get('curated')}` stats record the input; "
                     f"its origin is not part of this run. {TODO}")
    lines += ["", "### Data Processing", "", "| stage | in | kept | removed by reason |", "|---|---:|---:|---|"]
    for row in facts.get("funnel") or []:
        reasons = ", ".join(f"{k}: {v:,}" for k, v in row["reasons"].items())
        lines.append(f"| `{row['stage']}` | {row['in']:,} | {row['kept']:,} | {reasons} |")
    lines += ["", "### Personal and Sensitive Information", ""]
    pii = facts.get("pii")
    if pii:
        counts = ", ".join(f"{k}: {v:,}" for k, v in pii["counts"].items()) or "none"
        lines.append(f"Pattern-based PII detection found {counts} (in {pii['documents']:,} documents); "
                     "found items are replaced by placeholders unless the stage ran in tag mode. Names and postal "
                     "addresses are not detected.")
    else:
        lines.append("Not checked: the pipeline had no PII stage.")
    lines += ["", "## Bias, Risks, and Limitations", ""]
    audit = facts.get("audit")
    if audit:
        lines.append(f"A disparate-removal audit ran on identity-group mentions: {len(audit['flags'])} flag(s) "
                     f"(removal rate over {audit['factor']}x the stage's rate).")
    tox = facts.get("toxicity")
    if tox:
        for r in tox["stages"]:
            lines.append(f"Toxicity (`{r['stage']}`, {r['scorer']}): {_n(r['toxic'])} of {_n(r['scored'])} scored "
                         f"documents marked toxic; {_n(r['removed'])} removed.")
    missing = [m["part"] for m in facts.get("missing", [])]
    if missing:
        lines.append(f"Not measured in this run: {', '.join(missing)}.")
    lines += ["", TODO, "", "## Licensing Information", "", TODO, "", "## Citation Information", "", TODO, "",
              "See `datasheet.md` and `report.html` written by `corpus report` for the full audit.", ""]
    return "\n".join(lines)


def write_card(folder: Path, text: str) -> Path | None:
    """Write README.md into `folder` unless a README there was written (or edited) by a person: then None."""
    path = folder / "README.md"
    from corpus.core.io import CARD_MARKER, atomic_write_bytes

    if path.exists() and not {MARKER, CARD_MARKER} & set(path.read_text(encoding="utf-8", errors="replace")
                                                        .splitlines()):
        return None

    atomic_write_bytes(path, text.encode("utf-8"))
    return path
