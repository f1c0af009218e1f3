"""User-facing errors: the CLI prints these as one line and exits non-zero, never a traceback."""


class CorpusError(Exception):
    """A mistake in the user's input, files or configuration; the message says what and where."""
