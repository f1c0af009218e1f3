"""Shared by the benchmark scripts: replace one `## Section` of docs/benchmarks.md, leaving the others alone."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def replace_section(heading: str, body: str, path: Path = BENCHMARKS_MD) -> Path:
    """`body` starts with `heading`; an existing section of that heading is replaced, else appended."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(f"\n{heading}\n")
    body = body.rstrip("\n") + "\n"  # one blank line before the next section, however the body ends
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + body
    else:
        end = text.find("\n## ", start + 1)
        text = text[: start + 1] + body + (text[end:] if end != -1 else "")
    path.write_text(text.rstrip("\n") + "\n")
    return path
