"""Output folders that know they are ours: a run marker, and the rules that keep users' files safe.

Every command that writes an output folder (crawl, curate, pretrain, demo...) claims it first with
`claim_output`. The claim writes a small hidden marker, `OUT/.corpus-run.json`, that says which kind of run
owns the folder, which top-level entries the tool writes there, and one record per run (started, finished,
status, command line). Why: `--overwrite` must never delete what a user put in a folder (a thesis.txt, the
input shards, another tool's model), and a second run must never replace a finished run's record.

The rules `claim_output` enforces, for every command:
- OUT equal to, inside, or containing an input is refused (`check_separate`): writing there could destroy
  the input, and an input inside OUT would be removed by `--overwrite`.
- A folder that holds another kind of run (a crawl output given to `corpus train pretrain -o`) is refused.
- A non-empty folder without a marker is refused: it is the user's, not ours. Old outputs written before
  markers existed are recognised by their layout (`LEGACY_LAYOUTS`) and adopted.
- `overwrite=True` removes only the entries this kind of run writes (`remove_owned`), never anything else in
  the folder; it needs a marker (or a recognised old layout). Inside a shard folder of ours (one with a
  manifest, such as `data/`), it removes only shards, manifests and temp files, so a file a user put there stays.
- Otherwise a folder of the same kind is resumed, and the new run is appended to the marker's `runs` list.

Use:
    run = claim_output(out, "curate", inputs=[input_dir], overwrite=overwrite,
                       writes=("data", "rejected", "stats.json"))
    ...work...
    run.finish(documents=123)        # or run.fail("0 documents kept")

`check_output(out, kind, inputs=...)` makes the same refusals without writing (to fail before long work);
`is_ours(folder)`, `read_marker(folder)` and `folder_kind(folder)` answer questions about a folder without
changing it.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus.core.errors import CorpusError

MARKER = ".corpus-run.json"

# Folders written before run markers existed, recognised by what only that kind of run leaves behind.
LEGACY_LAYOUTS: dict[str, tuple[str, ...]] = {
    "curate": ("_work/completions", "config.yaml"),
    "crawl": ("crawl_config.json",),
    "crawl-archive": ("_job/warc",),
    "model": ("train_config.json", "config.json"),
    "finetune": ("finetune_config.json", "config.json"),
}
# Names that never make a folder "the user's": hidden files editors and OSes drop, and our own lock/marker.
IGNORED = {".DS_Store", "Thumbs.db", MARKER}
# In a shard folder, the names our writers give: shards (`part-00003-000.parquet`, `main.exact-00003-000.jsonl`,
# crawl's `pages-00003.jsonl.gz` and `.warc.gz` archives), manifests, and temp files of a killed writer.
OUR_SHARD_FILES = re.compile(r"[\w.-]+-\d{5}(?:-\d{3})?\.(?:parquet|jsonl|jsonl\.gz|warc\.gz)"
                             r"|\.?manifest\.json|\..+\.tmp-\d+")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("corpus")
    except PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def read_marker(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's run marker, or None when it has none (or it is unreadable)."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == "corpus" else None


def folder_kind(folder: str | os.PathLike) -> str | None:
    """Which kind of run owns `folder`: from its marker, else from an old layout; None for anything else."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker:
        return str(marker.get("kind"))
    for kind, signs in LEGACY_LAYOUTS.items():
        if all((folder / sign).exists() for sign in signs):
            return "crawl" if kind == "crawl-archive" else kind
    return None


def is_ours(folder: str | os.PathLike) -> bool:
    """True when `folder` carries a corpus run marker (or an old corpus output layout)."""
    return folder_kind(folder) is not None


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path)))).resolve()


def check_separate(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], option: str = "-o") -> None:
    """Refuse an output folder equal to, inside, or containing any input (files or folders)."""
    target = _resolved(out)
    for item in inputs:
        if item is None:
            continue
        source = _resolved(item)
        if target == source:
            raise CorpusError(f"{option} {out}: the output folder is the input {item}; choose another folder")
        if source in target.parents:
            raise CorpusError(f"{option} {out}: the output folder is inside the input {item}; "
                              "choose a folder outside it")
        if target in source.parents:
            raise CorpusError(f"{option} {out}: the output folder contains the input {item}; "
                              "choose a folder that does not hold your input")


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in IGNORED)


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:4])
    return shown + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def _edited_card(path: Path) -> bool:
    """A README.md whose "written by corpus..." line a person removed, as the card asks to keep their edits."""
    if path.name != "README.md" or path.is_symlink():
        return False
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return not any(line.startswith("<!-- written by") for line in lines)


def _remove_shard_folder(path: Path) -> list[str]:
    """Remove our files from a shard folder (manifest-listed or named as our writers name them); the folder goes
    too once empty. Returns what stays: files a user put there."""
    from corpus.core.io import LEGACY_MANIFEST, MANIFEST

    listed: set[str] = set()
    for name in (MANIFEST, LEGACY_MANIFEST):
        try:
            listed |= {shard["name"] for shard in json.loads((path / name).read_text())["shards"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    kept = []
    for child in sorted(path.iterdir()):
        if (child.is_file() or child.is_symlink()) and (child.name in listed or OUR_SHARD_FILES.fullmatch(child.name)):
            child.unlink()
        else:
            kept.append(f"{path.name}/{child.name}")
    if not kept:
        path.rmdir()
    return kept


def remove_owned(folder: str | os.PathLike, writes: Iterable[str] = ()) -> list[str]:
    """Delete what a run of ours wrote in `folder` (the marker's `writes` plus `writes`), nothing else.

    A shard folder (one holding a manifest) loses only our shards, manifests and temp files. Returns what was
    kept: names in `folder` that a user put there, top-level or inside a shard folder. Raises CorpusError when the
    folder is not ours: then nothing is deleted.
    """
    from corpus.core.io import LEGACY_MANIFEST, MANIFEST

    folder = Path(folder)
    if not folder.exists():
        return []
    marker = read_marker(folder)
    if marker is None and folder_kind(folder) is None:
        raise CorpusError(f"{folder}: not written by corpus (no {MARKER}); refusing to delete anything in it")
    owned = set(writes) | set((marker or {}).get("writes", []))
    kept = []
    for name in sorted(owned):
        if not name or "/" in name or name in (".", ".."):
            continue
        path = folder / name
        if path.is_symlink() or path.is_file():
            if _edited_card(path):
                kept.append(name)
            else:
                path.unlink()
        elif (path / MANIFEST).exists() or (path / LEGACY_MANIFEST).exists():
            kept += _remove_shard_folder(path)
        elif path.is_dir():
            shutil.rmtree(path)
    (folder / MARKER).unlink(missing_ok=True)
    return kept + [name for name in _entries(folder) if name not in owned and name not in kept]


@dataclass
class Run:
    """One run's record in a claimed folder; `finish` or `fail` closes it."""

    folder: Path
    index: int

    def _update(self, **fields: Any) -> None:
        marker = read_marker(self.folder) or {}
        runs = marker.setdefault("runs", [])
        if self.index < len(runs):
            runs[self.index].update(fields)
            _write_marker(self.folder, marker)

    def finish(self, **summary: Any) -> None:
        """Mark the run finished and keep a few numbers from it (they survive later runs)."""
        self._update(status="finished", finished=_now(), **summary)

    def fail(self, reason: str, **summary: Any) -> None:
        self._update(status="failed", finished=_now(), reason=reason, **summary)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: object) -> None:
        """An exception fails the run (with its first words as the reason); a clean exit finishes it unless
        `finish` or `fail` was called already."""
        if err is not None:
            self.fail(f"{type(err).__name__}: {err}"[:300])
        elif self.record.get("status") == "running":
            self.finish()

    @property
    def record(self) -> dict[str, Any]:
        return ((read_marker(self.folder) or {}).get("runs") or [{}])[self.index]

    @property
    def previous(self) -> list[dict[str, Any]]:
        """Records of the runs before this one in the same folder."""
        return ((read_marker(self.folder) or {}).get("runs") or [])[: self.index]


def _write_marker(folder: Path, marker: dict[str, Any]) -> None:
    from corpus.core.io import atomic_write_json

    atomic_write_json(folder / MARKER, marker)


def check_output(out: str | os.PathLike, kind: str, *, inputs: Iterable[str | os.PathLike | None] = (),
                 option: str = "-o") -> str | None:
    """The refusals of `claim_output`, without writing anything (to fail before long work); returns the folder's
    kind (None for a new or empty folder)."""
    out = Path(out)
    check_separate(out, inputs, option)
    if out.exists() and not out.is_dir():
        raise CorpusError(f"{option} {out}: exists and is a file, not a folder")
    if not out.is_dir():
        return None
    owner = folder_kind(out)
    if owner is not None and owner != kind:
        raise CorpusError(f"{option} {out}: holds a {owner} run, not a {kind} run; choose another folder")
    existing = _entries(out)
    if owner is None and existing:
        raise CorpusError(f"{option} {out}: folder is not empty and was not written by corpus "
                          f"(holds {_listing(existing)}); choose a new or empty folder")
    return owner


def refuse_finished(out: str | os.PathLike, kind: str, what: str, overwrite: bool, option: str = "-o") -> None:
    """Results a finished run left in `out` are replaced only with `--overwrite`; a run that failed or was killed
    may be run again. (Old outputs without a marker count as finished.)"""
    if overwrite or not Path(out).is_dir():
        return
    marker = read_marker(out)
    runs = (marker or {}).get("runs", [])
    if any(r.get("status") == "finished" for r in runs) or (marker is None and folder_kind(out) == kind):
        raise CorpusError(f"{option} {out}: holds {what} already; pass --overwrite to replace it (only files "
                          f"{kind} writes are removed) or choose another folder")


def claim_output(
    out: str | os.PathLike,
    kind: str,
    *,
    inputs: Iterable[str | os.PathLike | None] = (),
    overwrite: bool = False,
    writes: Iterable[str] = (),
    option: str = "-o",
    argv: Sequence[str] | None = None,
) -> Run:
    """Check `out` against the rules in this module's docstring, then record a new run of `kind` in it.

    `writes`: the top-level names this run creates in `out` (what `--overwrite` may delete next time).
    """
    out = Path(out)
    owner = check_output(out, kind, inputs=inputs, option=option)
    writes = sorted(set(writes))
    if out.is_dir():
        if overwrite and owner is not None:
            leftover = remove_owned(out, writes)
            if leftover:
                print(f"--overwrite: kept {_listing(leftover)} in {out} (not written by corpus)", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    marker = read_marker(out) or {"tool": "corpus", "kind": kind, "created": _now(), "writes": [], "runs": []}
    marker["writes"] = sorted(set(marker.get("writes", [])) | set(writes))
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    marker["runs"].append({"started": _now(), "status": "running", "version": _version(), "pid": os.getpid(),
                           "user": user, "argv": list(argv if argv is not None else sys.argv)})
    _write_marker(out, marker)
    return Run(out, len(marker["runs"]) - 1)


__all__ = ["MARKER", "Run", "check_output", "check_separate", "claim_output", "folder_kind", "is_ours", "read_marker",
           "refuse_finished", "remove_owned"]
