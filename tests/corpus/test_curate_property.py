"""Property: whatever records `corpus curate` is fed, every valid record ends in data/, rejected/ or quarantine/
exactly once, every invalid one in quarantine/, and the command never crashes (exit 0, or 1 with one line)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from corpus.cli import app
from corpus.core.io import read_documents

runner = CliRunner()
# A pipeline that needs no model, so each example runs in well under a second.
PIPELINE = """stages:
  - stage: normalize
  - stage: gopher_quality
    min_doc_words: 3
    min_stop_words: 0
  - stage: exact_dedup
"""

words = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=40)
metadata = st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(st.integers(), st.text(max_size=10),
                                                                      st.booleans(), st.none()), max_size=3)
valid = st.fixed_dictionaries({"text": st.one_of(words, st.lists(words, max_size=6).map(" ".join))},
                              optional={"metadata": metadata, "url": st.text(max_size=20)})
invalid = st.one_of(
    st.just("{not json"),
    st.just("[1, 2, 3]"),
    st.just('"a string"'),
    st.builds(lambda v: json.dumps({"text": v}), st.one_of(st.integers(), st.none(), st.lists(st.integers()))),
    st.builds(lambda m: json.dumps({"body": m}), st.text(max_size=10)),
    st.just('{"text": "truncated'),
)
lines = st.lists(st.one_of(valid.map(lambda r: ("valid", r)), invalid.map(lambda r: ("invalid", r))),
                 min_size=1, max_size=12)


def _ids(folder: Path) -> list[str]:
    return [d.id for d in read_documents(folder)] if list(folder.glob("*.parquet")) else []


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=lines, first_bad=st.booleans())
def test_every_record_ends_somewhere_exactly_once_and_curate_never_crashes(records: list[tuple[str, Any]],
                                                                            first_bad: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        config = root / "pipeline.yaml"
        config.write_text(PIPELINE)
        written: list[str] = []
        expected_valid = []
        for index, (kind, record) in enumerate(records):
            if kind == "valid":
                record = {**record, "id": f"doc-{index}"}
                expected_valid.append(f"doc-{index}")
                written.append(json.dumps(record, ensure_ascii=False))
            else:
                written.append(record)
        if not first_bad and records[0][0] == "invalid" and "body" in records[0][1]:
            written.insert(0, json.dumps({"text": "a first record with its text", "id": "doc-first"}))
            expected_valid.insert(0, "doc-first")
        (root / "in" / "records.jsonl").write_text("\n".join(written) + "\n", encoding="utf-8")
        result = runner.invoke(app, ["curate", str(root / "in"), "-o", str(root / "out"), "-c", str(config),
                                     "--workers", "1"])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output
        stats = json.loads((root / "out" / "stats.json").read_text())
        kept, rejected = _ids(root / "out" / "data"), _ids(root / "out" / "rejected")
        quarantine = root / "out" / "quarantine"
        quarantined = [json.loads(line) for f in sorted(quarantine.glob("*.jsonl")) for line in f.open()] \
            if quarantine.is_dir() else []
        whole_file = [q for q in quarantined if q["line"] is None]
        if whole_file:  # the first record had no text field: the file is reported once and not read further
            assert len(quarantined) == 1 and not kept and not rejected
            return
        # Every valid record exactly once in data/ or rejected/; every bad line exactly once in quarantine/.
        assert sorted(kept + rejected) == sorted(expected_valid)
        assert len(set(kept) | set(rejected)) == len(kept) + len(rejected)
        assert len(quarantined) == len(written) - len(expected_valid) == stats["malformed"]
        assert len({q["line"] for q in quarantined}) == len(quarantined)
        assert stats["documents_kept"] == len(kept) and stats["documents_rejected"] == len(rejected)
