"""Settings every source shares: on/off, queries, schedule interval and the retry vocabulary.

A source's settings model subclasses `SourceSettings` and sets its own defaults in `DEFAULTS`, so
the shared fields (and their checks) are declared once and spelled the same for every platform.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError


class SourceSettings(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")

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
    interval_minutes: float = Field(gt=0)  # how often `leakwatch run` collects this source
    # Retries after 5xx answers, timeouts and malformed answers, with exponential backoff and jitter.
    retries: int = Field(ge=0, le=50)
    backoff_seconds: float = Field(ge=0)  # the first backoff; it doubles per retry
    max_rate_limit_wait_seconds: float = Field(ge=0)  # a rate limit asking for longer fails the run

    @model_validator(mode="before")
    @classmethod
    def _defaults_and_renames(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for old, new in cls.RENAMED.items():
            if old in data:
                raise PydanticCustomError("renamed_key", f"{old} was renamed to {new}; use {new} = ...")
        return {**cls.DEFAULTS, **data}
