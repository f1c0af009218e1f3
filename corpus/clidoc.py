"""docs/cli.md, written from the command definitions so the page lists every command and option as they are.

Run `python -m corpus.clidoc` after changing an option; `tests/test_rules.py` fails while the page is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ORDER = ["crawl", "curate", "train tokenize", "train pretrain", "train finetune", "train classifier", "predict", "eval",
         "ablate", "report", "demo"]
INTRO = """# The `corpus` command line

One page listing every command and every option. `corpus COMMAND --help` prints the same, with examples.
`corpus --version` prints the version.

## What every command does the same way

- **Output folders are claimed, never taken.** A command writes its output folder (`-o OUT`) only when OUT is new,
  empty, or already holds a run of the same kind (then it resumes, or with `--overwrite` starts again). Each claimed
  folder carries a hidden run marker, `OUT/.corpus-run.json`: which kind of run owns it, which top-level entries
  corpus writes there, and one record per run (started, finished, status, command line). `--overwrite` removes only
  those entries, never a file of yours (it says which ones it kept). OUT equal to, inside, or containing an input is
  refused. A folder that is not empty and has no marker is refused. A folder holding another kind of run (a crawl
  output given to `curate -o`) is refused. (`corpus.core.runs`.)
- **A finished run's record is kept.** Running a crawl again into the same OUT resumes and adds its counts to the
  earlier ones (`stats.json` has `runs`; every run's record stays in the marker).
- **The exit status tells the truth.** `0`: the run produced something usable. `1`: a mistake in the input, the
  options or the data (one line starting with `error:`), or a run that produced nothing usable: a crawl with no
  documents (each failed seed named on its own line), a curate run that kept nothing or where more than
  `--max-error-share` of the records were unreadable or raised. `2`: an option of the wrong type or out of range
  (checked before any work). `130`: interrupted; run the same command again to resume.
- **Options are checked before any work**, with their types and ranges; pipeline files and `--set` values too
  (pydantic models derived from each stage's constructor; language codes against the fastText model's labels;
  YAML booleans are only `true`/`false`, so `languages: [no, en]` means Norwegian and English).
- **`--set KEY=VALUE`** sets what has no flag of its own: stage parameters and pipeline settings (`curate`),
  Scrapy settings (`crawl`), fine-tuning options (`train finetune`, `eval`, `ablate`), training settings
  (`train pretrain`). Values are read as YAML 1.2 (`0.8`, `[en, fr]`, `true`).
- **Inputs** are folders of shards as users lay them out: `.parquet`, `.jsonl`/`.ndjson`/`.json` (JSON lines or a
  JSON array), each optionally `.gz` or `.zst`, in sub-folders too; a UTF-8 byte order mark is ignored. A file whose
  records have no `text` field is reported once, with the fields it has (use `--text-field`).
"""


def commands() -> dict[str, Any]:
    """Every leaf command by its full name ("train pretrain")."""
    import typer.main

    from corpus.cli import app

    found: dict[str, Any] = {}
    for name, command in typer.main.get_command(app).commands.items():
        for sub, leaf in getattr(command, "commands", {name: command}).items():
            found[sub if sub == name else f"{name} {sub}"] = leaf
    return found


def _default(option: Any) -> str:
    value = option.default
    if option.is_flag:
        return "on" if value else "off"
    if value is None or value == "" or (isinstance(value, list | tuple) and not value):
        return ""
    return f"`{value}`"


def render() -> str:
    """The whole page."""
    found = commands()
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    out = [INTRO.rstrip() + "\n"]
    for name in names:
        command = found[name]
        text = (command.help or "").strip()
        out.append(f"## corpus {name}\n\n{text.split(chr(10) * 2)[0].replace(chr(10), ' ')}\n")
        arguments = [p for p in command.params if p.param_type_name != "option"]
        if arguments:
            out.append("Arguments: " + "; ".join(f"`{p.name.upper()}`: {getattr(p, 'help', '') or ''}"
                                                 for p in arguments) + "\n")
        out.append("| option | default | what it does |\n|---|---|---|")
        for p in command.params:
            if p.param_type_name != "option":
                continue
            names_ = ", ".join(f"`{o}`" for o in p.opts + p.secondary_opts)
            limits = [f">= {p.min}" for _ in [0] if getattr(p, "min", None) is not None]
            limits += [f"<= {p.max}" for _ in [0] if getattr(p, "max", None) is not None]
            meaning = (p.help or "").replace("|", "\\|") + (f" ({', '.join(limits)})" if limits else "")
            out.append(f"| {names_}{' (required)' if p.required else ''} | {_default(p)} | {meaning} |")
        examples = []
        for line in ((command.epilog or "") + "\n" + text).splitlines():
            line = line.strip()
            if line.startswith("$ "):
                examples.append(line[2:])
            elif line.startswith("Example: "):
                examples.append(line[9:])
        if examples:
            out.append("\n```bash\n" + "\n".join(examples) + "\n```")
        out.append("")
    return "\n".join(out)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/cli.md")
    path.write_text(render(), encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
