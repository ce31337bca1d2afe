"""User-facing errors of the analysis package (kept free of heavy imports for the CLI)."""


class DatasetError(Exception):
    """A labelled CSV is missing, malformed or lacks a needed column; the message says where."""


class ModelError(Exception):
    """A model is missing, unreadable or unsuitable; the message says what to do."""
