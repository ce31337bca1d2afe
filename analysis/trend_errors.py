"""The trends and report error type, importable without numpy or matplotlib (the CLI lists it)."""


class TrendsError(Exception):
    """A trends or report request that cannot be answered as asked; the message says what to change."""
