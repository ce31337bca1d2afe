"""Platform-neutral retry arithmetic: exponential backoff with jitter, and rate-limit waits from headers."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # tries per request for 5xx, timeouts and malformed answers (first try included)
    base_delay: float = 1.0  # seconds; the backoff ceiling doubles with each failed try
    max_delay: float = 60.0  # the backoff ceiling never grows past this
    max_rate_limit_wait: float = 900.0  # a rate limit asking for a longer wait fails the run instead
    max_rate_limit_waits: int = 20  # rate-limit waits per request before giving up


def backoff_delay(failures: int, policy: RetryPolicy, rng: random.Random | None = None) -> float:
    """Seconds to wait after `failures` consecutive failures: "full jitter" (uniform up to the ceiling).

    Jitter keeps many clients that failed together from retrying together. analysis/llm_stance.py
    has a copy of this formula for the LLM backend (analysis may not import collectors): change both.
    """
    ceiling = min(policy.max_delay, policy.base_delay * 2 ** max(failures - 1, 0))
    return (rng or random).uniform(ceiling / 2, ceiling)


def rate_limit_wait(headers: Mapping[str, str], now: float | None = None, default: float = 60.0) -> float:
    """Seconds to wait before retrying a rate-limited request.

    `Retry-After` (seconds or an HTTP date) wins; else `ratelimit-reset` (epoch seconds, as Bluesky
    sends it); else `default`. Header names are matched case-insensitively; never negative.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    now = time.time() if now is None else now
    retry_after = lowered.get("retry-after")
    if retry_after:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            try:
                return max(parsedate_to_datetime(retry_after).timestamp() - now, 0.0)
            except (TypeError, ValueError):
                pass
    reset = lowered.get("ratelimit-reset")  # epoch seconds (Reddit's x-ratelimit-reset is relative: not this)
    if reset:
        try:
            return max(float(reset) - now, 0.0)
        except ValueError:
            pass
    return default
