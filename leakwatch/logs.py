"""Logging set-up: human-readable console logs, with secrets scrubbed from every record."""

from __future__ import annotations

import logging
import os

from .config import SECRET_ENV_VARS


class RedactSecrets(logging.Filter):
    """Replace the values of secret environment variables wherever they appear in a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [os.environ.get(name, "") for name in SECRET_ENV_VARS]
        secrets = [s for s in secrets if len(s) >= 4]
        if secrets:
            message = record.getMessage()
            for secret in secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def setup_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    # Client libraries are chatty at DEBUG; keep them at INFO unless asked.
    for noisy in ("urllib3", "httpx", "httpcore", "prawcore", "filelock"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.WARNING)
