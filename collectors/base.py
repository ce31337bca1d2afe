"""What every collector is: a source of pages of normalized posts, resumable from checkpoints.

A collector knows its platform's API and nothing of DuckDB; the driver in `leakwatch.collect`
commits each page and its checkpoint together as they arrive.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from warehouse.records import Checkpoint, Page


class CollectorError(Exception):
    """Collection cannot go on (rejected credentials, a fault that outlasted the retries...).

    The message is one line for the user. Pages already handed over stay committed.
    """


class AuthError(CollectorError):
    """Credentials are missing or rejected: nothing was collected."""


class Collector(Protocol):
    platform: str

    def query_keys(self) -> list[str]:
        """The checkpoint keys this collector will use, for the run record."""
        ...

    def authenticate(self) -> None:
        """Check the credentials before anything is written; raise AuthError if rejected."""
        ...

    def pages(self, checkpoints: Mapping[str, Checkpoint]) -> Iterator[Page]:
        """Yield pages newest first per query, stopping at each query's checkpoint."""
        ...
