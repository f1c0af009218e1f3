"""Evaluation suites: fine-tune one model on several tasks (or score a fine-tuned one) and print one table.

A suite is a YAML file (or the name of one in `train/suites/`):

    name: mine
    data_root: data            # relative to the suite file; --data-root / CORPUS_DATA_ROOT override it
    defaults: {epochs: 3}      # fine-tuning options for every task
    tasks:
      sentiment: {task: classify, train: s/train.jsonl, eval: s/dev.jsonl, test: s/test.jsonl,
                  options: {max_train_examples: 4000}}
      entities:  {task: ner, train: ner/train.conll, test: ner/test.conll}
      offensive: {test: olid/test.jsonl}   # no train: the model is already fine-tuned for it; only scored

With `train`, the model is fine-tuned (the eval file, or a held-out share of train, picks the best epoch) and
the row reports the test file (or eval when there is no test). Without `train`, the model is scored as it is.
"""

from __future__ import annotations

import os
import time
from importlib import resources
from pathlib import Path
from typing import Any

from corpus.core.errors import CorpusError

TASK_KEYS = {"task", "train", "eval", "test", "options"}
COLUMNS = ("accuracy", "macro_f1", "f1")


def suites_dir() -> Path:
    return Path(str(resources.files("corpus.train") / "suites"))


def list_suites() -> list[str]:
    return sorted(p.stem for p in suites_dir().glob("*.yaml"))


def load_suite(spec: str | Path, data_root: str | Path | None = None) -> dict[str, Any]:
    """Read and check a suite; every data path is made absolute (and must exist)."""
    import yaml

    path = Path(spec)
    if not path.is_file():
        if str(spec) in list_suites():
            path = suites_dir() / f"{spec}.yaml"
        else:
            raise CorpusError(f"{spec}: no such suite file; built-in suites: {', '.join(list_suites())}")
    from corpus.core.config import parse_value

    try:  # YAML 1.2 booleans: a label `no` stays the string "no"
        suite = parse_value(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise CorpusError(f"{path}: invalid YAML ({err})") from err
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not a UTF-8 text file ({err.reason})") from err
    except OSError as err:
        raise CorpusError(f"{path}: cannot read the suite ({err.strerror})") from err
    if not isinstance(suite, dict) or not isinstance(suite.get("tasks"), dict) or not suite["tasks"]:
        raise CorpusError(f"{path}: a suite needs a 'tasks' mapping of name -> task")
    root = Path(data_root or os.environ.get("CORPUS_DATA_ROOT") or path.parent / suite.get("data_root", ".")).resolve()
    built_in = path.resolve().parent == suites_dir().resolve()
    tasks: dict[str, dict[str, Any]] = {}
    for name, entry in suite["tasks"].items():
        where = f"{path}: task {name!r}"
        if not isinstance(entry, dict):
            raise CorpusError(f"{where}: expected a mapping with train/eval/test")
        unknown = sorted(set(entry) - TASK_KEYS)
        if unknown:
            raise CorpusError(f"{where}: unknown key(s) {', '.join(unknown)}; use {', '.join(sorted(TASK_KEYS))}")
        if not entry.get("test") and not entry.get("train"):
            raise CorpusError(f"{where}: needs a test file (and a train file to fine-tune on)")
        resolved = {"task": entry.get("task", "classify"), "options": dict(entry.get("options") or {})}
        for key in ("train", "eval", "test"):
            if entry.get(key):
                file = root / entry[key]
                if not file.is_file() and built_in:
                    # The built-in suites name public data sets that corpus does not ship (licences, size).
                    folders = sorted({str(Path(e[k]).parts[0]) for e in suite["tasks"].values()
                                      if isinstance(e, dict) for k in ("train", "eval", "test") if e.get(k)})
                    raise CorpusError(f"suite {suite.get('name', path.stem)!r}: its data does not ship with corpus "
                                      f"(no {file}); put the task files ({', '.join(folders)}/...) under one "
                                      f"folder and pass --data-root FOLDER or set CORPUS_DATA_ROOT; {path} lists "
                                      "the files each task needs")
                if not file.is_file():
                    raise CorpusError(f"{where}: {key} file {file} does not exist (set --data-root?)")
                resolved[key] = str(file)
        tasks[str(name)] = resolved
    from corpus.core.config import check_options
    from corpus.train.finetune import FinetuneConfig

    for name, task in tasks.items():  # every task's options, checked before the first one trains
        check_options(FinetuneConfig, {**dict(suite.get("defaults") or {}), **task["options"]},
                      f"{path}: task {name!r}")
    return {"name": suite.get("name", path.stem), "path": str(path), "data_root": str(root),
            "defaults": dict(suite.get("defaults") or {}), "tasks": tasks}


def run_suite(model: str | Path, suite: dict[str, Any] | str | Path, out: str | Path,
              only: list[str] | None = None, **overrides: Any) -> list[dict[str, Any]]:
    """One row per task: the metrics on its test file (fine-tuned copies of the model go to `out/<task>`)."""
    from corpus.train.finetune import finetune
    from corpus.train.predict import Predictor

    if not isinstance(suite, dict):
        suite = load_suite(suite)
    rows = []
    for name, task in suite["tasks"].items():
        if only and name not in only:
            continue
        started = time.perf_counter()
        if "train" in task:
            options = {**suite["defaults"], **task["options"], **overrides}
            summary = finetune(model, task["train"], Path(out) / name, task=task["task"], eval=task.get("eval"),
                               test=task.get("test"), **options)
            result = summary["test"] or summary["eval"]
            split = "test" if summary["test"] else "eval"
            extra = {"train_examples": summary["train_examples"], "best_step": summary["best_step"],
                     "model_path": summary["model_path"]}
        else:
            result = Predictor(model).evaluate_file(task["test"])
            split, extra = "test", {}
        row = {"task": name, "kind": task["task"], "split": split, "examples": result["examples"],
               **{k: result[k] for k in COLUMNS if k in result}, **extra,
               "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
    if not rows:
        raise CorpusError(f"no task of suite {suite['name']!r} selected (tasks: {', '.join(suite['tasks'])})")
    return rows


def print_rows(title: str, rows: list[dict[str, Any]], models: list[str] | None = None) -> None:
    """One table: a row per task (and model, when several are compared)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    keys = (["model"] if models or any("model" in r for r in rows) else []) + ["task", "split", "examples"]
    shown = [c for c in COLUMNS if any(c in r for r in rows)]
    for key in keys + shown + ["seconds"]:
        table.add_column(key, justify="left" if key in ("model", "task", "split") else "right")
    for row in rows:
        cells = [str(row.get(k, "")) for k in keys]
        cells += [f"{row[c]:.4f}" if c in row else "" for c in shown]
        table.add_row(*cells, f"{row.get('seconds', 0):.0f}")
    Console().print(table)
