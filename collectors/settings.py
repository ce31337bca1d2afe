"""Settings every source shares: on/off, queries, schedule interval and the retry vocabulary.

A source's settings model subclasses `SourceSettings` and sets its own defaults in `DEFAULTS`, so
the shared fields (and their checks) are declared once and spelled the same for every platform.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

MAX_INTERVAL_MINUTES = 7 * 24 * 60  # a week


def no_blank_entries(values: list[str]) -> list[str]:
    """A blank query or community would search for everything (or fail at the API): refuse it."""
    for number, value in enumerate(values, 1):
        if not value.strip():
            raise ValueError(f"entry {number} is blank; remove it or write something to search for")
    return values


class SourceSettings(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default. No number may be
    # inf or nan (they pass `gt=0` and then overflow timers and sleeps).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # Per-source defaults of the shared fields below (a platform's own fields carry their defaults).
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    # Keys of older releases -> their new name, so an old config gets a clear error, not a guess.
    RENAMED: ClassVar[dict[str, str]] = {
        "max_retries": "retries",
        "retry_base_seconds": "backoff_seconds",
        "max_wait_seconds": "max_rate_limit_wait_seconds",
    }

    enabled: bool = True
    queries: list[str] = Field(min_length=1)
    # How often `leakwatch run` collects this source: at most weekly (longer would also outgrow the
    # weekly exports' schedule-gap record, and 1e12 minutes overflows the scheduler's clock).
    interval_minutes: float = Field(gt=0, le=MAX_INTERVAL_MINUTES)
    # Retries after 5xx answers, timeouts and malformed answers, with exponential backoff and jitter.
    retries: int = Field(ge=0, le=50)
    backoff_seconds: float = Field(ge=0, le=3600)  # the first backoff; it doubles per retry
    # A rate limit asking for longer fails the run; a day at most.
    max_rate_limit_wait_seconds: float = Field(ge=0, le=86400)

    @field_validator("queries")
    @classmethod
    def _no_blank_queries(cls, value: list[str]) -> list[str]:
        return no_blank_entries(value)

    @model_validator(mode="before")
    @classmethod
    def _defaults_and_renames(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for old, new in cls.RENAMED.items():
            if old in data:
                raise PydanticCustomError("renamed_key", f"{old} was renamed to {new}; use {new} = ...")
        return {**cls.DEFAULTS, **data}
