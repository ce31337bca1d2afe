"""Author pseudonyms for exports: a keyed hash, stable across weeks, not reversible without the key."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymizer:
    """HMAC-SHA256 of author ids and handles, shortened: `anon-` + 20 hex digits."""

    def __init__(self, key: str):
        self._key = key.encode()

    def __call__(self, value: str | None) -> str | None:
        if value is None:
            return None
        return "anon-" + hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:20]
