"""One import namespace: the distribution installs `corpus` and nothing else, and users' own `train.py`,
`crawl/` or `curate.py` beside them cannot shadow any part of it."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Repository folder -> the import package it installs as.
FOLDERS = {"corpus": "corpus", "crawl": "corpus.crawl", "curate": "corpus.curate", "train": "corpus.train"}


def packages_in_repository() -> set[str]:
    found = set()
    for folder, package in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            found.add(".".join((package, *relative)))
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # A copy of the sources: setuptools leaves a build/ folder behind, whose stale files a later build would pack.
    source = tmp_path_factory.mktemp("source") / "corpus"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", ".ci-venv", "build", "dist", "runs", "*.egg-info", "__pycache__", "tests", "benchmarks"))
    # No build isolation: the dev extra carries setuptools, so this needs no network.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, cwd=source)
    (path,) = out.glob("corpus-*.whl")
    return path


def test_the_wheel_installs_one_top_level_package_and_all_of_it(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"corpus"}
    assert len([t for t in top_level if t.endswith(".dist-info")]) == 1
    packaged = {os.path.dirname(n).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert packaged == packages_in_repository()  # pyproject's package list misses no folder of the repository
    for data in ("corpus/curate/presets/default.yaml", "corpus/train/suites/shared.yaml",
                 "corpus/report/templates/report.html", "corpus/demo/site/robots.txt",
                 "corpus/curate/lexicons/identity_en.yaml"):
        assert data in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[corpus.stages]" in text and "language = corpus.curate.language:LanguageFilter" in text


def test_imports_point_one_way() -> None:
    """app (cli, demo, report) -> capabilities (crawl, curate, train) -> core; see docs/architecture.md."""
    app = ("corpus.cli", "corpus.demo", "corpus.report")
    capabilities = ("corpus.crawl", "corpus.curate", "corpus.train")
    # The one edge between capabilities: a curation stage that scores with a model fine-tuned by `train`.
    allowed = {("curate/hf_classifier.py", "corpus.train.predict")}
    layers = {"corpus/core": app + capabilities, "crawl": app, "curate": app, "train": app}
    broken = []
    for folder, forbidden in layers.items():
        for path in (REPO / folder).rglob("*.py"):
            own = FOLDERS.get(folder, "corpus.core")
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                           else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                for module in modules:
                    where = str(path.relative_to(REPO))
                    other_capability = (module.startswith(capabilities) and not module.startswith(own)
                                        and folder != "corpus/core" and (where, module) not in allowed)
                    if module.startswith(forbidden) or other_capability:
                        broken.append(f"{where}:{node.lineno} imports {module}")
    assert not broken


def test_users_own_train_crawl_and_curate_do_not_shadow_us(tmp_path: Path) -> None:
    """The torchrun recipe (`python -m corpus.cli train pretrain ...`) run from a user's project folder."""
    project = tmp_path / "project"
    (project / "crawl").mkdir(parents=True)
    (project / "crawl" / "__init__.py").write_text("raise SystemExit('the user crawl package was imported')\n")
    (project / "train.py").write_text("raise SystemExit('the user train.py was imported')\n")
    (project / "curate.py").write_text("raise SystemExit('the user curate.py was imported')\n")
    data = project / "data"
    data.mkdir()
    topics = ["rivers", "bread", "planets", "bicycles", "compost", "libraries", "clouds", "markets"]
    (data / "docs.jsonl").write_text("".join(
        json.dumps({"id": topic, "text": f"This is a short text about {topic}. It has two sentences about {topic}.\n"
                                         f"A second paragraph says more about {topic} and why people like them."})
        + "\n" for topic in topics))
    env = {**os.environ, "PYTHONPATH": ""}
    help_run = subprocess.run([sys.executable, "-m", "corpus.cli", "--help"], cwd=project, env=env,
                              capture_output=True, text=True)
    assert help_run.returncode == 0, help_run.stderr
    assert "pretrain" in subprocess.run([sys.executable, "-m", "corpus.cli", "train", "--help"], cwd=project,
                                        env=env, capture_output=True, text=True).stdout
    run = subprocess.run([sys.executable, "-m", "corpus.cli", "train", "pretrain", "--data", "data", "-o", "model",
                          "--steps", "2", "--preset", "tiny", "--vocab-size", "128", "--seq-len", "32",
                          "--batch-size", "4", "--device", "cpu"], cwd=project, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (project / "model" / "config.json").exists() and (project / "model" / "tokenizer.json").exists()
