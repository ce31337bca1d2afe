"""User-facing errors of the analysis package: one base, kept free of heavy imports for the CLI."""


class AnalysisError(Exception):
    """A problem in analysis the user can act on; the message is one line saying what to change."""


class DatasetError(AnalysisError):
    """A labelled CSV is missing, malformed or lacks a needed column; the message says where."""


class ModelError(AnalysisError):
    """A model is missing, unreadable or unsuitable; the message says what to do."""


class TrendsError(AnalysisError):
    """A trends or report request that cannot be answered as asked; the message says what to change."""


class ExportError(AnalysisError):
    """An export cannot be made as asked; the message says what to change."""
