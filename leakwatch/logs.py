"""Logging set-up: human-readable console logs and a rotating file, with secrets scrubbed everywhere."""

from __future__ import annotations

import logging
import os
from logging.handlers import RotatingFileHandler
from pathlib import Path

from .config import secret_env_vars

_FORMAT = "%(levelname)s %(name)s: %(message)s"
_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"
LOG_FILE_BYTES = 5_000_000
LOG_FILE_BACKUPS = 5
# A record with this attribute set (via `extra`) goes to the log file, not the console.
FILE_ONLY = "file_only"


def _secrets() -> list[str]:
    values = [os.environ.get(name, "") for name in secret_env_vars()]
    return [v for v in values if len(v) >= 4]


def redact(text: str) -> str:
    for secret in _secrets():
        text = text.replace(secret, "***")
    return text


class RedactSecrets(logging.Filter):
    """Replace the values of secret environment variables wherever they appear in a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets():
            record.msg, record.args = redact(record.getMessage()), None
        return True


class RedactingFormatter(logging.Formatter):
    """Scrubs the whole formatted line, so tracebacks and exception texts are covered too."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _not_file_only(record: logging.LogRecord) -> bool:
    return not getattr(record, FILE_ONLY, False)


def setup_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(_FORMAT))
    handler.addFilter(RedactSecrets())
    if not verbose:
        handler.addFilter(_not_file_only)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    # Client libraries are chatty at DEBUG; keep them at INFO unless asked.
    for noisy in ("urllib3", "httpx", "httpcore", "prawcore", "filelock"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)


def add_file_logging(path: Path, verbose: bool = False) -> Path:
    """Also log to a rotating file (5 files of 5 MB) and show leakwatch's INFO lines: for the daemon."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8")
    handler.setFormatter(RedactingFormatter(_FILE_FORMAT))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.addHandler(handler)
    if not verbose:
        root.setLevel(logging.INFO)
        # Third-party INFO lines (APScheduler's "Added job", HTTP requests) only in verbose mode.
        for name in ("apscheduler", "urllib3", "httpx", "httpcore", "prawcore", "filelock", "atproto"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return path
