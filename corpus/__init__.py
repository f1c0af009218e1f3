"""corpus: crawl, curate and train on web text, with every decision accounted for."""

from corpus.core.document import Document, stable_id
from corpus.core.errors import CorpusError

__all__ = ["CorpusError", "Document", "stable_id"]
__version__ = "0.1.0"
