"""corpus: crawl, curate and train on web text, with every decision accounted for."""

from corpus.document import Document, stable_id
from corpus.errors import CorpusError

__all__ = ["CorpusError", "Document", "stable_id"]
__version__ = "0.1.0"
