"""The rules every command keeps (issue 17), one test per rule, each driven through the real `corpus` command in
a subprocess: users' files are never deleted, finished runs keep their record, the exit status tells the truth,
options are checked before any work, mistakes never show a traceback, the documented `datasets` calls work,
inputs are found as users lay them out, and the CLI reads like one program."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from corpus.core.document import Document
from corpus.core.io import read_documents, write_shard
from corpus.core.runs import MARKER, read_marker

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.crawl.faultserver import FaultServer, Reply, html  # noqa: E402

EN = ("The village library opened its doors in the spring of that year, and the people who lived nearby came to "
      "borrow books about gardening, history and the stars. The librarian kept a careful record of every loan and "
      "noticed that the most popular books were the ones with pictures of the river and the old mill. Children came "
      "after school to read with their friends, and on Saturday mornings there was a story hour that filled the "
      "small room with laughter.")
NO = ("Biblioteket i landsbyen åpnet dørene om våren, og folk som bodde i nærheten kom for å låne bøker om hagearbeid, "
      "historie og stjernene. Bibliotekaren førte nøye oversikt over hvert utlån og la merke til at de mest populære "
      "bøkene var de med bilder av elven og den gamle mølla.")
FAST = ["--workers", "1"]


def corpus(*args: str | Path, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the real command, as a user would."""
    return subprocess.run([sys.executable, "-m", "corpus.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The run failed with `code`, said why in one line and showed no traceback; returns the message."""
    assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def small_site() -> FaultServer:
    pages = [f"/p{i}.html" for i in range(3)]
    routes = {"/": Reply(body=html("Home", f"<p>{EN}</p>", pages).encode())}
    for i, page in enumerate(pages):
        routes[page] = Reply(body=html(f"Page {i}", f"<p>{EN.replace('village', f'village {i}')}</p>", ["/"]).encode())
    return FaultServer(routes)


@pytest.fixture
def docs_in(tmp_path: Path) -> Path:
    folder = tmp_path / "run" / "raw"
    write_shard(folder / "a.jsonl", [Document(f"en-{i}", EN.replace("village", f"village {i}")) for i in range(3)])
    write_shard(folder / "b.jsonl", [Document("no-1", NO)])
    return folder


def test_rule1_nothing_outside_our_own_output_is_deleted(docs_in: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in docs_in.iterdir())
    run = docs_in.parent
    for out in (docs_in, run, docs_in / "sub"):  # OUT equal to, containing, inside the input
        message = one_line_error(corpus("curate", docs_in, "-o", out, "--overwrite", *FAST))
        assert "the output folder" in message and str(docs_in) in message
    assert sorted(p.name for p in docs_in.iterdir()) == before
    user = tmp_path / "thesis"
    user.mkdir()
    (user / "thesis.txt").write_text("four years of work")
    for args in (["curate", docs_in, "-o", user, "--overwrite", *FAST],
                 ["crawl", "http://127.0.0.1:9/", "-o", user, "--overwrite"], ["demo", "-o", user]):
        assert "not written by corpus" in one_line_error(corpus(*args))
    assert (user / "thesis.txt").read_text() == "four years of work" and len(list(user.iterdir())) == 1
    # --overwrite on our own folder removes what we wrote there, and only that.
    out = tmp_path / "curated"
    assert corpus("curate", docs_in, "-o", out, *FAST).returncode == 0
    (out / "notes.txt").write_text("mine")
    result = corpus("curate", docs_in, "-o", out, "--overwrite", "--set", "lang.threshold=0.3", *FAST)
    assert result.returncode == 0, result.stderr
    assert (out / "notes.txt").read_text() == "mine" and "kept notes.txt" in result.stderr
    assert yaml.safe_load((out / "config.yaml").read_text())["jobs"][0]["stages"][1]["threshold"] == 0.3


def test_rule2_a_finished_runs_record_is_never_overwritten(docs_in: Path, tmp_path: Path) -> None:
    curated = tmp_path / "curated"
    assert corpus("curate", docs_in, "-o", curated, *FAST).returncode == 0
    stats = (curated / "stats.json").read_bytes()
    message = one_line_error(corpus("crawl", "http://127.0.0.1:9/", "-o", curated))
    assert "holds a curate run" in message
    assert (curated / "stats.json").read_bytes() == stats
    out = tmp_path / "crawl"
    with small_site() as site:
        first = corpus("crawl", site.url + "/", "-o", out, "--fast", "--no-sitemaps")
        assert first.returncode == 0, first.stderr
        pages = json.loads((out / "stats.json").read_text())["pages"]
        again = corpus("crawl", site.url + "/", "-o", out, "--fast", "--no-sitemaps")
        assert again.returncode == 0, again.stderr
    summary = json.loads((out / "stats.json").read_text())
    assert summary["runs"] == 2 and summary["pages"] >= pages == 4  # counts add up; nothing is forgotten
    assert summary["documents_in_folder"] == 4 == len(list(read_documents(out / "data")))
    runs = read_marker(out)["runs"]
    assert [r["status"] for r in runs] == ["finished", "finished"] and runs[0]["documents"] == 4


def test_rule3_the_exit_status_tells_the_truth(tmp_path: Path) -> None:
    result = corpus("crawl", "http://127.0.0.1:9/", "http://127.0.0.1:9/other", "-o", tmp_path / "c", "--fast")
    message = one_line_error(result)
    assert "produced no documents" in message and "2 seed(s) failed" in message
    assert [line for line in result.stderr.splitlines() if line.startswith("seed failed:")] == [
        "seed failed: http://127.0.0.1:9/: connection refused",
        "seed failed: http://127.0.0.1:9/other: connection refused"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jsonl").write_text(json.dumps({"text": EN}) + "\n" + "{not json\n" * 3)
    message = one_line_error(corpus("curate", broken, "-o", tmp_path / "o1", *FAST))
    assert "3 unreadable record(s)" in message and "--max-error-share" in message
    assert corpus("curate", broken, "-o", tmp_path / "o2", "--max-error-share", "0.9", *FAST).returncode == 0
    fine = tmp_path / "fine"
    write_shard(fine / "a.jsonl", [Document("en", EN)])
    message = one_line_error(corpus("curate", fine, "-o", tmp_path / "o3", "--set", "lang.languages=[de]", *FAST))
    assert "0 of 1 documents kept" in message


def test_rule4_options_and_stage_parameters_are_checked_before_any_work(docs_in: Path, tmp_path: Path) -> None:
    out = tmp_path / "never"
    cases = {
        ("--set", "lang.threshold=high"): "threshold 'high': input should be a valid number",
        ("--set", "lang.threshold=2.5"): "threshold 2.5: must be between 0 and 1",
        ("--set", "lang.languages=en"): "languages 'en': input should be a valid list",
        ("--set", "lang.languages=[english]"): "language code(s) english unknown to the model",
        ("--set", "max_docs_per_shard=abc"): "max_docs_per_shard 'abc'",
    }
    for args, expected in cases.items():
        assert expected in one_line_error(corpus("curate", docs_in, "-o", out, *args, *FAST)), args
    for args in (["curate", docs_in, "-o", out, "--limit", "-1"],
                 ["crawl", "http://x.test/", "-o", out, "--depth", "-1"],
                 ["crawl", "http://x.test/", "-o", out, "--max-pages", "-1"]):
        result = corpus(*args)
        assert result.returncode == 2 and "Invalid value" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()  # nothing was started
    config = tmp_path / "nordic.yaml"
    config.write_text("stages:\n  - stage: language\n    id: lang\n    languages: [no, en]\n    threshold: 0.3\n")
    result = corpus("curate", docs_in, "-o", tmp_path / "nordic", "-c", config, *FAST)
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((tmp_path / "nordic" / "config.yaml").read_text())
    assert saved["jobs"][0]["stages"][0]["languages"] == ["no", "en"]  # YAML 1.1 would read `no` as False
    kept = {d.id for d in read_documents(tmp_path / "nordic" / "data")}
    assert "no-1" in kept


def test_rule5_no_traceback_for_a_user_mistake(docs_in: Path, tmp_path: Path) -> None:
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00 not text")
    (tmp_path / "empty.yaml").write_text("stages: []\n")
    (tmp_path / "folder").mkdir()
    out = tmp_path / "o"
    cases = [
        ["curate", docs_in, "-o", out, "-c", tmp_path / "binary.yaml"],
        ["curate", docs_in, "-o", out, "-c", tmp_path / "empty.yaml"],
        ["curate", docs_in, "-o", out, "-c", tmp_path / "folder"],
        ["curate", docs_in, "-o", out, "--set", "lang.threshold=[1"],
        ["curate", tmp_path / "missing", "-o", out],
        ["curate", tmp_path / "folder", "-o", out],
        ["crawl", "http://127.0.0.1:9/", "-o", out, "--redis-url", "localhost:6379"],
        ["crawl", "http://127.0.0.1:9/", "-o", out, "--max-size", "lots"],
        ["eval", "--model", tmp_path / "folder", "--suite", tmp_path / "binary.yaml"],
        ["eval", "--model", tmp_path / "folder", "--suite", "shared", "--set", "epochs=abc"],
        ["predict", docs_in / "a.jsonl", "--model", tmp_path / "folder", "-o", tmp_path / "no/such/dir/p.jsonl"],
        ["train", "finetune", "--model", tmp_path / "folder", "--train", docs_in / "a.jsonl", "-o", docs_in],
        ["report", tmp_path / "folder"],
    ]
    procs = [subprocess.Popen([sys.executable, "-m", "corpus.cli", *map(str, args)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args in cases]
    for args, proc in zip(cases, procs, strict=True):
        stdout, stderr = proc.communicate(timeout=180)
        result = subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)
        assert one_line_error(result), args
    assert not (tmp_path / "no").exists()


def test_rule6_the_documented_datasets_calls_work_as_written(docs_in: Path, tmp_path: Path) -> None:
    out = tmp_path / "curated"
    assert corpus("curate", docs_in, "-o", out, "--set", "lang.threshold=0.3", *FAST).returncode == 0
    script = ("import datasets, sys\n"
              "a = datasets.load_dataset('parquet', data_dir=sys.argv[1] + '/data', split='train')\n"
              "b = datasets.load_dataset(sys.argv[1], split='train')\n"
              "print(len(a), len(b), sorted(a.column_names))\n")
    result = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, timeout=180,
                            env={**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    kept = json.loads((out / "stats.json").read_text())["documents_kept"]
    assert result.stdout.split()[:2] == [str(kept), str(kept)] and "'text'" in result.stdout
    message = one_line_error(corpus("eval", "--model", out, "--suite", "shared", "--data-root", tmp_path / "none"))
    assert "its data does not ship with corpus" in message and "--data-root" in message


def test_rule7_inputs_are_found_as_users_lay_them_out(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    (folder / "en").mkdir(parents=True)
    (folder / "fr" / "deep").mkdir(parents=True)
    texts = [EN.replace("village", f"town {i}") for i in range(6)]
    (folder / "en" / "a.json").write_text(json.dumps([{"text": texts[0]}, {"text": texts[1]}]))
    (folder / "en" / "b.ndjson").write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": texts[2]}).encode() + b"\n")
    with pa.output_stream(str(folder / "fr" / "deep" / "c.jsonl.zst"), compression="zstd") as handle:
        handle.write((json.dumps({"text": texts[3]}) + "\n").encode())
    with gzip.open(folder / "fr" / "d.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"text": texts[4]}) + "\n")
    pq.write_table(pa.table({"content": [texts[5]], "doc": ["p-1"]}), folder / "e.parquet")
    result = corpus("curate", folder, "-o", tmp_path / "o1", "--max-error-share", "0.5", *FAST)
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "o1" / "stats.json").read_text())
    assert stats["documents_in"] == 5 and stats["malformed"] == 1  # the BOM costs nothing; the Parquet: once
    (quarantined,) = stats["quarantined"]
    assert "e.parquet: no 'text' column" in quarantined and "use --text-field content" in quarantined
    only_parquet = tmp_path / "pq"
    only_parquet.mkdir()
    pq.write_table(pa.table({"content": [texts[5]], "doc": ["p-1"]}), only_parquet / "e.parquet")
    result = corpus("curate", only_parquet, "-o", tmp_path / "o2", "--text-field", "content", "--id-field", "doc",
                    "--set", "lang.threshold=0.3", *FAST)
    assert result.returncode == 0, result.stderr
    assert [d.id for d in read_documents(tmp_path / "o2" / "data")] == ["p-1"]


def test_rule8_the_cli_reads_like_one_program() -> None:
    import typer.main

    from corpus.cli import app

    version = corpus("--version")
    assert version.returncode == 0 and version.stdout.startswith("corpus ")
    root = typer.main.get_command(app)
    commands: dict[str, Any] = {}
    for name, command in root.commands.items():
        for sub, leaf in getattr(command, "commands", {name: command}).items():
            commands[sub if sub == name else f"{name} {sub}"] = leaf
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    from corpus.clidoc import render

    assert docs == render(), "docs/cli.md is stale: run python -m corpus.clidoc"
    options = {name: {opt for p in c.params if p.param_type_name == "option" for opt in p.opts + p.secondary_opts}
               for name, c in commands.items()}
    for name, command in commands.items():
        assert "Example" in (command.help or "") + (command.epilog or ""), f"corpus {name}: no example in its help"
        section = docs.split(f"## corpus {name}\n", 1)
        assert len(section) == 2, f"docs/cli.md has no section for corpus {name}"
        text = section[1].split("\n## ", 1)[0]
        missing = [opt for opt in options[name] if f"`{opt}`" not in text]
        assert not missing, f"docs/cli.md, corpus {name}: {missing}"
    for name, command in commands.items():  # boolean options are flags, never --x true
        for p in command.params:
            if p.param_type_name == "option" and isinstance(p.default, bool):
                assert p.is_flag, f"corpus {name} {p.opts}"
    # One name for one idea: crawl's shard format is --output-format, report's --format is the report's.
    assert "--output-format" in options["crawl"] and "--format" not in options["crawl"]
    assert "--epochs" in options["train classifier"] and "--epochs" in options["train finetune"]
    for name in ("curate", "crawl", "eval", "ablate", "train finetune"):
        assert "--set" in options[name], name


def test_the_marker_is_hidden_from_datasets_and_shard_listing(docs_in: Path, tmp_path: Path) -> None:
    out = tmp_path / "curated"
    assert corpus("curate", docs_in, "-o", out, "--set", "lang.threshold=0.3", *FAST).returncode == 0
    assert (out / MARKER).exists() and (out / "data" / ".manifest.json").exists()
    assert not (out / "data" / "manifest.json").exists()
